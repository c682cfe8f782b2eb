"""The living demo: history moved up to today and the teams' work simulated over it, on
both backends (issue 16 item 7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
from datafiles import SAMPLE_200

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import RawTable, read_csv
from voirie.model import OPEN_STATUSES, Status
from voirie.services.demo import relive, simulate_work
from voirie.services.pipeline import Pipeline
from voirie.services.workflow import TRANSITIONS, StatusChange
from voirie.store import Store

NOW = datetime(2026, 12, 4, 15, 30, tzinfo=UTC)  # a Friday afternoon


def _relived() -> pd.DataFrame:
    raw = read_csv(SAMPLE_200)
    return relive(raw.rows[raw.columns], NOW, "Europe/Paris")


def test_history_ends_today_and_never_after_now() -> None:
    raw = read_csv(SAMPLE_200).rows
    moved = pd.to_datetime(_relived()["datedecl"], utc=True)
    assert moved.max() <= NOW
    assert moved.max() >= NOW - timedelta(days=1)
    before = pd.to_datetime(raw["datedecl"])
    # Whole days: the span and the order of the days are kept.
    assert (moved.max() - moved.min()).days == (before.max() - before.min()).days
    local = moved.dt.tz_convert("Europe/Paris")
    assert local.dt.hour.between(7, 21).all()
    assert (_relived()["mois_annee_decla"] == local.dt.strftime("%Y-%m")).all()


def test_simulated_work_follows_the_workflow_and_leaves_some_late(
    store: Store, paris: City, paris_gis: CityGIS
) -> None:
    raw = read_csv(SAMPLE_200)
    moved = raw.rows.assign(**{c: _relived()[c] for c in raw.columns})
    pipeline = Pipeline(paris, store, paris_gis)
    pipeline.imports.import_table(RawTable(moved, raw.columns), DANSMARUE)
    done = simulate_work(store, paris, pipeline.reads, NOW)
    incidents = pipeline.reads.incidents()
    assert done.statuses == incidents["status"].value_counts().to_dict()
    assert {"resolved", "closed", "acknowledged"} <= set(done.statuses)
    open_ = incidents[incidents["status"].isin([s.value for s in OPEN_STATUSES])]
    overdue = pd.to_datetime(open_["due_at"], utc=True) < NOW
    assert 0 < overdue.sum() < len(open_)
    events = pipeline.reads.events_between("status_changed", NOW - timedelta(days=400), NOW)
    assert len(events) == done.events
    for reason in events["reason"]:
        change = StatusChange.parse(str(reason))
        assert change is not None
        assert change.status in TRANSITIONS[change.previous]
    assert (pd.to_datetime(events["at"], utc=True) <= NOW).all()
    resolved = incidents[incidents["status"] == Status.RESOLVED.value]
    assert (pd.to_datetime(resolved["updated_at"], utc=True) <= NOW).all()
