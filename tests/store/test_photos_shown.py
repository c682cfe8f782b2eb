"""Moderation's "shown elsewhere" (migration 0022): which photos another report still shows,
as its media_url or on its tracking page, by index look-ups (the name a media_url ends with;
``report_photos``), exact names (no ``LIKE`` wildcards), kept when moderation hides a
photo, and backfilled from the tracking links stored before the migration. Both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from voirie.city import City
from voirie.model import Report
from voirie.services.pipeline import Pipeline
from voirie.store import Store
from voirie.store.base import ModerationRecord, migrations
from voirie.store.statements.moderation import MEDIA_NAME
from voirie.store.statements.unit import SqlUnitOfWork

J = "paris.fr"
AT = datetime(2024, 5, 2, 9, 30, tzinfo=UTC)
MEDIA = "https://voirie.example.org/media/"


@pytest.fixture
def reports(paris: City, store: Store) -> list[int]:
    """Four reports: the first sent with photos a.jpg and b.jpg (media_url a.jpg), the second
    with b.jpg only on its tracking page, the third with abc.jpg as media_url (no
    tracking link), the fourth with none."""
    pipeline = Pipeline(paris, store)
    media = [f"{MEDIA}a.jpg", None, f"{MEDIA}abc.jpg", None]
    ids = [
        pipeline.intake.submit(
            Report(
                external_id=f"photo-{k}",
                source="test",
                service_code="graffitis-tags-a-914fea",
                lon=2.30 + 0.01 * k,  # apart: four incidents
                lat=48.85,
                requested_at=AT,
                media_url=url,
            )
        ).report_id
        for k, url in enumerate(media)
    ]
    with store.transaction(J) as uow:
        uow.tracking.add("hash-0", ids[0], ["a.jpg", "b.jpg"], AT)
        uow.tracking.add("hash-0-again", ids[0], ["a.jpg", "b.jpg"], AT)  # a second link
        uow.tracking.add("hash-1", ids[1], ["x.jpg", "b.jpg"], AT)
    return ids


def _shown(store: Store, report_id: int, names: list[str]) -> tuple[str, ...]:
    with store.transaction(J) as uow:
        return uow.moderation.shown_elsewhere(report_id, names)


def test_shown_elsewhere_as_media_url_or_on_a_tracking_page(
    store: Store, reports: list[int]
) -> None:
    first, second, third, fourth = reports
    # b.jpg: on the second report's tracking page; a.jpg: the first's only.
    assert _shown(store, first, ["a.jpg", "b.jpg"]) == ("b.jpg",)
    assert _shown(store, second, ["b.jpg", "x.jpg"]) == ("b.jpg",)
    # a.jpg is the first report's media_url and on its tracking page.
    assert _shown(store, fourth, ["a.jpg", "abc.jpg"]) == ("a.jpg", "abc.jpg")
    assert _shown(store, third, ["abc.jpg"]) == ()
    # Exact names: "a_c.jpg" is no pattern matching "abc.jpg", "B.JPG" is not "b.jpg",
    # "bc.jpg" is not the end of "abc.jpg".
    assert _shown(store, fourth, ["a_c.jpg", "B.JPG", "bc.jpg"]) == ()
    assert _shown(store, first, []) == ()


def test_a_photo_moderation_hides_is_no_longer_shown_by_that_report(
    store: Store, reports: list[int]
) -> None:
    first, second, *_ = reports
    with store.transaction(J) as uow:
        record = ModerationRecord(second, None, None, "shown", ("b.jpg",))
        uow.moderation.save(record, None, None, AT)
    assert _shown(store, first, ["b.jpg"]) == ()
    assert _shown(store, second, ["b.jpg", "x.jpg"]) == ("b.jpg",)  # the first still has it


def _plan(store: Store, sql: str, params: tuple[object, ...]) -> str:
    """The query plan of ``sql`` (PostgreSQL's with sequential scans priced out: the test's
    tables are tiny, the point is that an index can answer)."""
    with store.transaction(J) as uow:
        assert isinstance(uow, SqlUnitOfWork)
        s = uow.session
        if store.backend == "sqlite":
            rows = s.run(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
            return "\n".join(str(row[-1]) for row in rows)
        s.run("SET LOCAL enable_seqscan = off")
        return "\n".join(str(row[0]) for row in s.run(f"EXPLAIN {sql}", params).fetchall())


def test_both_look_ups_go_through_an_index(store: Store, reports: list[int]) -> None:
    with store.transaction(J) as uow:
        assert isinstance(uow, SqlUnitOfWork)
        d = uow.session.dialect
    by_media = _plan(
        store,
        f"SELECT id FROM reports WHERE jurisdiction_id = ? AND media_url IS NOT NULL "
        f"AND {d.in_array(MEDIA_NAME, 'text')} AND id <> ?",
        (J, d.array(["a.jpg"]), reports[0]),
    )
    assert "reports_by_media_name" in by_media
    by_tracking = _plan(
        store,
        f"SELECT name FROM report_photos WHERE jurisdiction_id = ? "
        f"AND {d.in_array('name', 'text')} AND report_id <> ?",
        (J, d.array(["a.jpg"]), reports[0]),
    )
    assert "report_photos" in by_tracking
    assert ("INDEX" if store.backend == "sqlite" else "Index") in by_tracking


def test_migration_0022_backfills_the_photos_of_earlier_links(
    store: Store, reports: list[int]
) -> None:
    with store.transaction(J) as uow:
        kept = sorted(uow.session.run("SELECT * FROM report_photos").fetchall())
    assert len(kept) == 4  # a.jpg, b.jpg of the first; x.jpg, b.jpg of the second
    migration = next(text for version, _, text in migrations(store.backend) if version == 22)
    with store.transaction(J) as uow:
        assert isinstance(uow, SqlUnitOfWork)
        conn = uow.session.conn
        conn.execute("DROP INDEX reports_by_media_name")
        conn.execute("DROP TABLE report_photos")
        if store.backend == "sqlite":
            from voirie.store.sqlite import _statements

            for statement in _statements(migration):
                conn.execute(statement)
        else:
            conn.execute(migration)
    with store.transaction(J) as uow:
        assert sorted(uow.session.run("SELECT * FROM report_photos").fetchall()) == kept
