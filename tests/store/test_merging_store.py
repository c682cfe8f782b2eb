"""Contract tests of the store methods behind merging and re-clustering, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.model import Report
from voirie.services.pipeline import Pipeline
from voirie.store.base import MEMBER_COLUMNS, Store

SERVICE = "Autres objets encombrants abandonnés"
T0 = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)
HERE, THERE = (2.34858, 48.87053), (2.35300, 48.87053)  # Bonne-Nouvelle, 320 m apart


@pytest.fixture
def pipeline(store: Store, paris: City, paris_gis: CityGIS) -> Pipeline:
    return Pipeline(paris, store, paris_gis)


def _submit(
    pipeline: Pipeline, name: str, where: tuple[float, float], hours: float
) -> tuple[int, int]:
    code = pipeline.city.services_by_name[SERVICE.casefold()].code
    done = pipeline.intake.submit(
        Report(
            external_id=name,
            source="app",
            service_code=code,
            lon=where[0],
            lat=where[1],
            requested_at=T0 + timedelta(hours=hours),
        )
    )
    return done.report_id, done.incident_id


def test_members_lists_reports_of_incidents_or_of_every_open_one(pipeline: Pipeline) -> None:
    r1, a = _submit(pipeline, "1", HERE, 1)
    r0, a0 = _submit(pipeline, "0", HERE, 0)  # earlier, arrives later: listed first
    r2, b = _submit(pipeline, "2", THERE, 2)
    assert a0 == a != b
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        one = uow.links.members([a])
        assert list(one.columns) == MEMBER_COLUMNS
        assert one["report_id"].tolist() == [r0, r1]
        assert one["segment_id"].notna().all()
        assert uow.links.members(None)["report_id"].tolist() == [r0, r1, r2]
        uow.incidents.update(b, {"status": "resolved"})
        assert uow.links.members(None)["report_id"].tolist() == [r0, r1]
        assert uow.links.members([]).empty


def test_relink_points_reports_at_another_incident(pipeline: Pipeline) -> None:
    r1, _ = _submit(pipeline, "1", HERE, 0)
    _, b = _submit(pipeline, "2", THERE, 1)
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        uow.links.relink(
            pd.DataFrame(
                {
                    "report_id": [r1],
                    "incident_id": [b],
                    "score": [0.5],
                    "reason": ["moved"],
                    "linked_at": [pd.Timestamp(T0)],
                }
            )
        )
        moved = uow.links.members([b])
    row = moved.set_index("report_id").loc[r1]
    assert (row["incident_id"], row["score"], row["reason"]) == (b, 0.5, "moved")


def test_absorb_moves_supporters_followers_and_merge_pointers(pipeline: Pipeline) -> None:
    _, a = _submit(pipeline, "1", HERE, 0)
    _, b = _submit(pipeline, "2", THERE, 1)
    _, c = _submit(pipeline, "3", (2.34400, 48.87053), 2)
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        uow.citizens.add_supporter(a, "both@example.org", T0)
        uow.citizens.add_supporter(b, "both@example.org", T0)
        uow.citizens.add_supporter(b, None, T0)
        uow.citizens.add_supporter(b, None, T0)
        uow.citizens.add_follower(a, "f@example.org", T0)
        uow.citizens.add_follower(b, "f@example.org", T0)
        uow.citizens.add_follower(b, "g@example.org", T0)
        uow.incidents.update(c, {"status": "duplicate", "merged_into": b})
        assert uow.incidents.absorb(b, a) == 3  # both@ once, and the two anonymous ones
        assert uow.citizens.add_supporter(b, "new@example.org", T0) == (True, 1)  # b starts afresh
        assert not uow.citizens.add_follower(a, "g@example.org", T0)
        assert uow.citizens.remove_follower(b, "g@example.org") is False
        assert uow.incidents.get(c) is not None
        assert (uow.incidents.get(c) or {})["merged_into"] == a


def test_not_duplicate_pairs_are_kept_once_in_order(pipeline: Pipeline) -> None:
    _, a = _submit(pipeline, "1", HERE, 0)
    _, b = _submit(pipeline, "2", THERE, 1)
    _, c = _submit(pipeline, "3", (2.34400, 48.87053), 2)
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        assert uow.links.mark_not_duplicates(b, a, "agent", "two piles", T0)
        assert not uow.links.mark_not_duplicates(a, b, "agent", "again", T0)
        assert uow.links.mark_not_duplicates(c, b, "agent", "two piles", T0)
        assert uow.links.not_duplicates().values.tolist() == [[a, b], [b, c]]
        assert uow.links.not_duplicates([c]).values.tolist() == [[b, c]]
        assert uow.links.not_duplicates([]).empty
