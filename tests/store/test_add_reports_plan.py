"""``Incidents.add_reports`` (the count of the stored incidents a batch joined) finds each
incident by its id on sqlite, even before the first ``ANALYZE`` of a load: with no
statistics sqlite planned it as a scan of the city's incidents through the jurisdiction
index, 320 ms for 8 rows on a 23.5k import against 0.7 ms once analyzed (issue 14, H1)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from datafiles import PARIS_REPORTS

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import RawTable, read_csv
from voirie.services.pipeline import Pipeline
from voirie.store.sqlite import SqliteStore

J = "paris.fr"


def test_incidents_are_found_by_id_without_statistics(
    tmp_path: Path, paris: City, paris_gis: CityGIS
) -> None:
    store = SqliteStore(tmp_path / "store.gpkg")
    store.upgrade()
    raw = read_csv(PARIS_REPORTS)
    Pipeline(paris, store, paris_gis).imports.import_table(
        RawTable(raw.rows.iloc[:300], raw.columns), DANSMARUE
    )
    # 300 rows are fewer than a batch: the import ran no ANALYZE, as a load before its first.
    assert not store.conn.execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'"
    ).fetchall()
    before = dict(store.conn.execute("SELECT id, report_count FROM incidents LIMIT 3"))
    ids = list(before)
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    now = pd.Timestamp("2026-12-07", tz="UTC")
    with store.transaction(J) as uow:
        uow.incidents.add_reports(
            pd.DataFrame(
                {
                    "incident_id": ids,
                    "added": [1, 2, 3],
                    "last_reported_at": now,
                    "updated_at": now,
                    "first_reported_at": now,
                }
            )
        )
    store.conn.set_trace_callback(None)
    updates = [s for s in statements if s.startswith("UPDATE incidents AS i")]
    (update,) = set(updates)  # the trace may list one statement twice
    plan = [row[3] for row in store.conn.execute(f"EXPLAIN QUERY PLAN {update}")]
    assert any("SEARCH i USING INTEGER PRIMARY KEY" in step for step in plan), plan
    assert not any(step.startswith("SCAN i") or "SEARCH i USING INDEX" in step for step in plan)
    after = dict(store.conn.execute("SELECT id, report_count FROM incidents"))
    assert [after[i] - before[i] for i in ids] == [1, 2, 3]
    store.close()
