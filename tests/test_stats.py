"""The dashboard's figures (``voirie.services.stats``) on both backends, against the same
figures computed another way: from the incidents layer and the raw history in pandas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from datafiles import SAMPLE_200

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import RawTable, read_csv
from voirie.model import OPEN_STATUSES
from voirie.services.auth import Principal, Role
from voirie.services.demo import relive, simulate_work
from voirie.services.pipeline import Pipeline
from voirie.services.stats import DIMENSIONS, dashboard
from voirie.services.workflow import StatusChange
from voirie.store import Store

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
    for dimension in DIMENSIONS:
        table = figures.tables[dimension]
        assert table["backlog"].sum() <= figures.totals["backlog"]
        assert table["key"].is_unique


def test_an_agent_counts_only_their_teams(worked: Pipeline) -> None:
    team = str(worked.reads.incidents()["team"].value_counts().index[0])
    agent = Principal("Agnès", Role.AGENT, frozenset({team}))
    mine = dashboard(worked, agent, NOW)
    everyone = dashboard(worked, DISPATCHER, NOW)
    assert mine.tables["team"]["key"].tolist() == [team]
    row = everyone.tables["team"].set_index("key").loc[team]
    assert mine.totals["backlog"] == row["backlog"]
    assert mine.totals["reported"] == row["reported"] < everyone.totals["reported"]
