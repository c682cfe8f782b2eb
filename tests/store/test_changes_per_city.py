"""Migration 0021: the change counter behind HTTP validators is kept per jurisdiction, on
both backends. A city never written to reads the store's counter from before the
migration; a write counts in its own city only (once per transaction on PostGIS, once
per row on sqlite)."""

from __future__ import annotations

from voirie.services.pipeline import Pipeline

ELSEWHERE = "chicago.gov"  # a jurisdiction with no row in the store


def test_a_write_counts_in_its_own_city_only(pipeline: Pipeline) -> None:
    store = pipeline.store
    paris = pipeline.city.jurisdiction_id
    floor = store.change_mark(ELSEWHERE)
    before = store.change_mark(paris)
    # The import counted in Paris, starting above the store's counter from before 0021.
    assert before.version > floor.version
    first, second = sorted(int(i) for i in pipeline.reads.incidents()["incident_id"])[:2]
    with store.transaction(paris) as uow:
        uow.incidents.update(first, {"status": "resolved"})
        uow.incidents.update(second, {"status": "resolved"})
    after = store.change_mark(paris)
    if store.backend == "postgis":
        assert after.version == before.version + 1  # one transaction, one city: once
    else:
        assert after.version >= before.version + 2  # one per row written
    assert after.changed_at >= before.changed_at
    untouched = store.change_mark(ELSEWHERE)
    assert (untouched.version, untouched.changed_at) == (floor.version, floor.changed_at)
