"""The dashboard's figures (``voirie.services.stats``) on both backends, against the same
figures computed another way: from the incidents layer and the raw history in pandas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from datafiles import SAMPLE_200

from voirie.city import City
from voirie.errors import Conflict
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import RawTable, read_csv
from voirie.model import OPEN_STATUSES
from voirie.services.auth import Principal, Role
from voirie.services.demo import relive, simulate_work
from voirie.services.pipeline import Pipeline
from voirie.services.stats import DIMENSIONS, dashboard
from voirie.services.workflow import StatusChange, change_status
from voirie.store import Store
from voirie.store.base import migrations
from voirie.store.statements.unit import SqlUnitOfWork

NOW = datetime(2026, 12, 4, 15, 30, tzinfo=UTC)
DISPATCHER = Principal("Dominique", Role.DISPATCHER)


@pytest.fixture
def worked(store: Store, paris: City, paris_gis: CityGIS) -> Pipeline:
    """The 200 real reports moved up to NOW and worked on, as in the demo."""
    raw = read_csv(SAMPLE_200)
    moved = relive(raw.rows[raw.columns], NOW, paris.config.timezone)
    pipeline = Pipeline(paris, store, paris_gis)
    pipeline.imports.import_table(RawTable(raw.rows.assign(**moved), raw.columns), DANSMARUE)
    simulate_work(store, paris, pipeline.reads, NOW)
    return pipeline


def _expected(pipeline: Pipeline, weeks: int) -> pd.DataFrame:
    """Per incident: team, open, overdue, reported in the period, hours to resolve and
    whether the SLA was met, from the incidents layer and the status events."""
    incidents = pipeline.reads.incidents().set_index("incident_id")
    events = pipeline.reads.events_between("status_changed", NOW - timedelta(days=800), NOW)
    changes = [StatusChange.parse(str(r)) for r in events["reason"]]
    events["resolving"] = [c is not None and c.status in ("resolved", "closed") for c in changes]
    events["at"] = pd.to_datetime(events["at"], utc=True)
    resolved = events[events["resolving"]].groupby("entity_id")["at"].min()
    first = pd.to_datetime(incidents["first_reported_at"], utc=True)
    due = pd.to_datetime(incidents["due_at"], utc=True)
    done = resolved.reindex(incidents.index)
    is_open = incidents["status"].isin([s.value for s in OPEN_STATUSES])
    reported = first >= NOW - timedelta(weeks=weeks)
    known = reported & due.notna() & (done.notna() | (due < NOW))
    return pd.DataFrame(
        {
            "team": incidents["team"],
            "open": is_open,
            "reported": reported,
            "overdue": is_open & (due < NOW),
            "resolve_h": ((done - first).dt.total_seconds() / 3600).where(reported),
            "known": known,
            "met": known & (done <= due),
        }
    )


@pytest.mark.parametrize("weeks", [4, 12])
def test_figures_match_the_history(worked: Pipeline, weeks: int) -> None:
    figures = dashboard(worked, DISPATCHER, NOW, weeks)
    expected = _expected(worked, weeks)
    assert figures.totals["backlog"] == expected["open"].sum() > 0
    assert figures.totals["overdue"] == expected["overdue"].sum() > 0
    assert figures.totals["sla_known"] == expected["known"].sum() > 0
    assert figures.totals["sla_pct"] == round(
        100 * expected["met"].sum() / expected["known"].sum(), 1
    )
    teams = figures.tables["team"].set_index("key")
    # The dashboard counts the open incidents and those reported in the period.
    by_team = expected[expected["open"] | expected["reported"]].groupby("team")
    assert teams["backlog"].to_dict() == by_team["open"].sum().to_dict()
    median = by_team["resolve_h"].median().round(1).dropna()
    assert teams["resolve_median_h"].dropna().to_dict() == pytest.approx(median.to_dict())
    # Open incidents reported before the period count in the backlog (counted by the
    # database, not read one by one): the 200 reports span about 12 weeks, so a 4-week
    # period leaves an older backlog.
    assert (expected["open"] & ~expected["reported"]).any() == (weeks == 4)
    for dimension in DIMENSIONS:
        table = figures.tables[dimension]
        # Every counted incident has one team, one zone ("?" outside the territory), one
        # service; the weeks are those of the period's incidents only.
        counted = expected["open"] & (expected["reported"] if dimension == "week" else True)
        assert table["backlog"].sum() == counted.sum()
        assert table["key"].is_unique


def _moments(store: Store) -> dict[int, tuple[object, object]]:
    """Each incident's kept first acknowledgement and first resolution (migration 0019)."""
    with store.transaction("paris.fr") as uow:
        assert isinstance(uow, SqlUnitOfWork)
        rows = uow.session.run(
            "SELECT id, acknowledged_at, resolved_at FROM incidents WHERE jurisdiction_id = ?",
            ("paris.fr",),
        ).fetchall()
    return {int(i): (ack, res) for i, ack, res in rows}


def test_status_changes_keep_the_first_acknowledgement_and_resolution(
    worked: Pipeline,
) -> None:
    incidents = worked.reads.incidents()
    chosen = int(incidents[incidents["status"] == "new"]["incident_id"].iloc[0])
    assert _moments(worked.store)[chosen] == (None, None)
    steps = [("acknowledged", 1), ("in_progress", 2), ("resolved", 3), ("closed", 4)]
    for status, hours in steps:
        moment = NOW + timedelta(hours=hours)
        change_status(worked.store, worked.city, chosen, DISPATCHER, status, "vu", at=moment)
    ack, res = _moments(worked.store)[chosen]
    as_utc = pd.to_datetime([str(ack), str(res)], utc=True, format="ISO8601").tolist()
    assert as_utc == [NOW + timedelta(hours=1), NOW + timedelta(hours=3)]
    # A refused change writes nothing: the moments stay.
    with pytest.raises(Conflict):
        change_status(worked.store, worked.city, chosen, DISPATCHER, "new", at=NOW)
    assert _moments(worked.store)[chosen] == (ack, res)


def test_migration_0019_finds_the_moments_the_writers_keep(worked: Pipeline) -> None:
    kept = _moments(worked.store)
    assert sum(ack is not None for ack, _ in kept.values()) > 0
    assert sum(res is not None for _, res in kept.values()) > 0
    migration = next(text for version, _, text in migrations(worked.store.backend) if version == 19)
    # Undo it, then run it again on a database with incidents and their history: its
    # backfill must agree with the upkeep, and its index must build after the backfill's
    # row updates (PostgreSQL's deferred change-counter triggers are pending by then).
    with worked.store.transaction("paris.fr") as uow:
        assert isinstance(uow, SqlUnitOfWork)
        conn = uow.session.conn
        conn.execute("DROP INDEX incidents_by_status_age")
        for column in ("acknowledged_at", "resolved_at"):
            conn.execute(f"ALTER TABLE incidents DROP COLUMN {column}")
        if worked.store.backend == "sqlite":
            code = "".join(line for line in migration.splitlines(True) if not line.startswith("--"))
            for statement in filter(str.strip, code.split(";")):
                conn.execute(statement)
        else:
            conn.execute(migration)
    assert _moments(worked.store) == kept
