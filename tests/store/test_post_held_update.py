"""A report attached to an incident counts on it inside the statement gathering its rows
(``GatheredTables.hold``, issue 20): the incident ends as ``add_report`` run alone leaves
it, on both backends.

Two incidents opened alike by the real per-report path each take the same attached
reports, one with ``add_report`` run as its own statement, the other inside a gathering
block: their counts and their first-, last-reported and updated times are equal after,
for a later report (moves the last), an earlier one (moves the first) and one in between
(moves neither). On PostGIS the held change is sent when the block ends (a read inside it
does not see it yet) and is rolled back with the block's rows when one of them fails.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.model import Report
from voirie.services.pipeline import Pipeline
from voirie.store.base import Store, UnitOfWork

SERVICE = "Autres objets encombrants abandonnés"
T0 = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)
PARIS_WINTER = timezone(timedelta(hours=1))
HERE, THERE = (2.34858, 48.87053), (2.35300, 48.87053)  # 320 m apart: two incidents
MOMENTS = ("report_count", "first_reported_at", "last_reported_at", "updated_at")


@pytest.fixture
def pipeline(store: Store, paris: City, paris_gis: CityGIS) -> Pipeline:
    return Pipeline(paris, store, paris_gis)


def _open(pipeline: Pipeline, name: str, where: tuple[float, float]) -> int:
    """A new incident of one report at ``where``, reported at ``T0``; its id."""
    code = pipeline.city.services_by_name[SERVICE.casefold()].code
    lon, lat = where
    report = Report(
        external_id=name, source="app", service_code=code, lon=lon, lat=lat, requested_at=T0
    )
    return pipeline.intake.submit(report).incident_id


def _moments(pipeline: Pipeline, incident_id: int) -> tuple[object, ...]:
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        row = uow.incidents.get(incident_id) or {}
    return tuple(row[name] for name in MOMENTS)


@pytest.mark.parametrize(
    "reported",
    [
        datetime(2024, 3, 4, 12, 0, tzinfo=PARIS_WINTER),  # later: moves the last
        datetime(2024, 3, 3, 8, 15, 30, 250000, tzinfo=PARIS_WINTER),  # earlier: the first
        T0,  # neither
    ],
)
def test_a_held_count_leaves_the_incident_as_add_report_does(
    pipeline: Pipeline, reported: datetime
) -> None:
    alone, held = _open(pipeline, "alone", HERE), _open(pipeline, "held", THERE)
    assert _moments(pipeline, alone)[:3] == _moments(pipeline, held)[:3]  # updated: now
    at = datetime(2024, 3, 5, 8, 1, 2, 3, tzinfo=UTC)
    j = pipeline.city.jurisdiction_id
    with pipeline.store.transaction(j) as uow:
        uow.incidents.add_report(alone, reported, at)
        before = _count(uow, held)
        with uow.tables.gathering():
            uow.incidents.add_report(held, reported, at)
            inside = _count(uow, held)
        after = _count(uow, held)
    assert _moments(pipeline, held) == _moments(pipeline, alone)
    assert _moments(pipeline, held)[0] == 2
    assert after == before + 1
    assert inside == (before if pipeline.store.backend == "postgis" else after)


def _count(uow: UnitOfWork, incident_id: int) -> int:
    """An incident's report count as the transaction sees it now."""
    row = uow.session.run("SELECT report_count FROM incidents WHERE id = ?", (incident_id,))
    return int(row.fetchone()[0])


def _count_and_fail(pipeline: Pipeline, incident_id: int) -> None:
    """A held count, then a row its table refuses (no id), in one gathering block."""
    j = pipeline.city.jurisdiction_id
    with pipeline.store.transaction(j) as uow, uow.tables.gathering():
        uow.incidents.add_report(incident_id, T0 + timedelta(hours=1), T0)
        uow.tables.insert_rows("events", [{"jurisdiction_id": j}])


def test_a_held_count_is_rolled_back_with_the_rows_of_its_block(pipeline: Pipeline) -> None:
    incident_id = _open(pipeline, "one", HERE)
    before = _moments(pipeline, incident_id)
    with pytest.raises((psycopg.errors.NotNullViolation, sqlite3.IntegrityError)):
        _count_and_fail(pipeline, incident_id)
    assert _moments(pipeline, incident_id) == before
