"""The overlapped bulk import on PostGIS (issue 14 items 1-2): batch n+1 is read and
attached while batch n commits, batch n's incidents taken from memory (``inflight``).

What must hold: it stores exactly what the serial import stores (same rows, same ids),
including reports that join incidents opened or moved by the batch before theirs;
another writer committing between a batch's reads and its lock makes the batch read
again under the lock (its report joins that writer's incident, as with the serial
import); an error stops the import with every batch before it committed and nothing of
the failed one; a re-import adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from databases import scratch_database
from datafiles import PARIS_REPORTS
from psycopg import sql

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import RawTable, read_csv
from voirie.model import Report
from voirie.services import imports
from voirie.services.pipeline import Pipeline
from voirie.settings import StoreSettings
from voirie.store import open_store
from voirie.store.postgis import PostgisStore

ROWS = 3_000
BATCH = 150
"""Small batches: many reports join an incident of the batch before theirs."""
WALL_CLOCK = {"received_at", "updated_at", "linked_at", "assigned_at", "at", "loaded_at"}
TABLES = ("reports", "incidents", "incident_reports", "events", "assignments", "report_zones")
J = "paris.fr"


@contextmanager
def _store(server: str, pool: int) -> Iterator[tuple[str, PostgisStore]]:
    """A fresh PostGIS store; a pool of one connection keeps the import serial."""
    with ExitStack() as stack:
        url = stack.enter_context(contextmanager(scratch_database)(server))
        store = open_store(StoreSettings(database_url=url, pool_min_size=1, pool_max_size=pool))
        stack.callback(store.close)
        store.upgrade()
        assert isinstance(store, PostgisStore)
        yield url, store


def _table(tmp_path: Path, rows: int = ROWS) -> RawTable:
    path = tmp_path / "reports.csv"
    pd.read_csv(PARIS_REPORTS, dtype=str, keep_default_na=False).iloc[:rows].to_csv(
        path, index=False
    )
    return read_csv(path)


def _rows(url: str, table: str) -> pd.DataFrame:
    """Every row of a table but its wall-clock instants, in a stable order."""
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {table}")
        assert cur.description is not None
        names = [c.name for c in cur.description]
        frame = pd.DataFrame(cur.fetchall(), columns=names, dtype=object)
    kept = [name for name in names if name not in WALL_CLOCK and name != "geom"]
    return frame[kept].astype(str).sort_values(kept, ignore_index=True)


@pytest.mark.postgis
@pytest.mark.slow
def test_overlapped_import_stores_what_the_serial_import_stores(
    postgis_server: str, paris: City, paris_gis: CityGIS, tmp_path: Path
) -> None:
    table = _table(tmp_path)
    with (
        _store(postgis_server, 1) as (serial_url, serial),
        _store(postgis_server, 4) as (
            url,
            store,
        ),
    ):
        assert not serial.concurrent_transactions
        assert store.concurrent_transactions
        first = Pipeline(paris, serial, paris_gis).imports.import_table(
            table, DANSMARUE, batch_size=BATCH
        )
        pipeline = Pipeline(paris, store, paris_gis)
        second = pipeline.imports.import_table(table, DANSMARUE, batch_size=BATCH)
        counts = ("read", "imported", "new_incidents", "attached_in_batch", "quarantined")
        assert [getattr(second, c) for c in counts] == [getattr(first, c) for c in counts]
        assert first.imported > 0.9 * ROWS
        for name in TABLES:
            pd.testing.assert_frame_equal(_rows(url, name), _rows(serial_url, name))
        # Reports joined incidents opened by the batch just before theirs, which the
        # overlapped import had only in memory (the serial one read them from the store).
        links = _rows(url, "incident_reports").astype({"report_id": int, "incident_id": int})
        incidents = _rows(url, "incidents").astype({"id": int, "origin_report_id": int})
        opener = links.merge(incidents, left_on="incident_id", right_on="id")
        batch_of = {r: i // BATCH for i, r in enumerate(sorted(links["report_id"]))}
        after = opener["report_id"].map(batch_of) - opener["origin_report_id"].map(batch_of)
        assert (after == 1).sum() > 10
        again = pipeline.imports.import_table(table, DANSMARUE, batch_size=BATCH)
        assert (again.imported, again.already_imported) == (0, first.imported)


class _Interloper:
    """Progress that, when the first batch is stored (the second batch read, not yet
    locked), submits through the per-report path a report on the spot of the second
    batch's first report, a minute before it, so that this report should join it."""

    def __init__(self, pipeline: Pipeline, second: pd.Series) -> None:
        self.pipeline = pipeline
        self.second = second
        self.incident_id = 0

    def prepared(self, rows: int) -> None:
        pass

    def storing(self, total: int) -> None:
        pass

    def stored(self, rows: int) -> None:
        if self.incident_id:
            return
        submitted = self.pipeline.intake.submit(
            Report(
                external_id="passer-by-1",
                source="app",
                service_code=str(self.second["service_code"]),
                lon=float(self.second["lon"]),
                lat=float(self.second["lat"]),
                requested_at=self.second["requested_at"].to_pydatetime() - timedelta(minutes=1),
            )
        )
        self.incident_id = submitted.incident_id


@pytest.mark.postgis
def test_a_write_committed_after_a_batch_was_read_makes_it_read_again(
    postgis_server: str, paris: City, paris_gis: CityGIS, tmp_path: Path
) -> None:
    table = _table(tmp_path, 2 * BATCH)
    with _store(postgis_server, 4) as (url, store):
        pipeline = Pipeline(paris, store, paris_gis)
        prepared = _prepared(pipeline, table)
        interloper = _Interloper(pipeline, prepared.iloc[BATCH])
        summary = pipeline.imports.import_table(
            table, DANSMARUE, batch_size=BATCH, progress=interloper
        )
        assert interloper.incident_id
        assert summary.imported == len(prepared)
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT l.incident_id FROM incident_reports l JOIN reports r ON r.id = l.report_id"
                " WHERE r.external_id = %s",
                (str(prepared.iloc[BATCH]["external_id"]),),
            ).fetchone()
        assert row is not None
        assert row[0] == interloper.incident_id


def _prepared(pipeline: Pipeline, table: RawTable) -> pd.DataFrame:
    """The reports of ``table`` as the import orders them into batches (time, row)."""
    with imports.SortedRuns() as runs:
        reports, _ = pipeline.imports._prepare(
            table, DANSMARUE, imports._Repeats("external_id"), imports.ImportSummary()
        )
        runs.add(reports)
        return pd.concat(list(runs.merged(10**6)), ignore_index=True)


@pytest.mark.postgis
def test_an_error_stops_the_import_with_the_batches_before_it_committed(
    postgis_server: str, paris: City, paris_gis: CityGIS, tmp_path: Path
) -> None:
    table = _table(tmp_path, 3 * BATCH)
    with _store(postgis_server, 4) as (url, store):
        pipeline = Pipeline(paris, store, paris_gis)
        prepared = _prepared(pipeline, table)
        refused = str(prepared.iloc[2 * BATCH]["external_id"])  # the third batch's first
        with psycopg.connect(url) as conn:
            conn.execute(
                sql.SQL(
                    "ALTER TABLE reports ADD CONSTRAINT refused CHECK (external_id <> {})"
                ).format(sql.Literal(refused))
            )
        with pytest.raises(psycopg.errors.CheckViolation):
            pipeline.imports.import_table(table, DANSMARUE, batch_size=BATCH)
        with psycopg.connect(url) as conn:
            stored = {r for (r,) in conn.execute("SELECT external_id FROM reports")}
            conn.execute("ALTER TABLE reports DROP CONSTRAINT refused")
        assert stored == set(prepared["external_id"].iloc[: 2 * BATCH])
        again = pipeline.imports.import_table(table, DANSMARUE, batch_size=BATCH)
        assert (again.already_imported, again.imported) == (2 * BATCH, len(prepared) - 2 * BATCH)
