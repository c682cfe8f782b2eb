"""The first pass of a bulk import on a thread, the store pass storing behind it (issue 14;
``services.overlap``), on PostGIS.

What must hold: with the chunks' earliest dates scanned first, the import stores exactly
what the import with one pass after the other stores (every table, row for row, ids
included) whatever the order of the file, with reports joining incidents opened before
the frontier passed them; a chronological file is stored while its later chunks are
still being prepared, a file going back in time only once its last chunk is; a source
that is not what the scan read (it changed) stops the import with whole batches stored,
a prefix of the file in time order, and importing it again stores the rest as one
import would have; a file that cannot be read fails in the scan, before anything is
written; the progress counts every row of both passes.
"""

from __future__ import annotations

import gzip
import io
import threading
from pathlib import Path

import pandas as pd
import pytest
from datafiles import PARIS_REPORTS
from rich.console import Console
from rich.progress import Progress

from tests.services.test_import_inflight import TABLES, _rows, _store
from voirie.city import City
from voirie.cli.data import _Bar, run_import
from voirie.errors import SourceError
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import scan_csv, stream_csv
from voirie.services.imports import ImportSummary
from voirie.services.overlap import chunk_starts
from voirie.services.pipeline import Pipeline

ROWS = 3_000
CHUNK = 250
BATCH = 100
"""Small chunks and batches: the frontier moves a dozen times, over thirty batches."""
WAIT_S = 60
"""How long the first pass is held for a batch to be stored (none comes if it never is)."""


class _Progress:
    """The import's progress as a list of events (from both passes' threads). With
    ``hold``, the first pass is held after that many chunks until a batch is stored: it
    goes on at once when the store pass stores behind it, and after ``WAIT_S`` if not."""

    def __init__(self, hold: int | None = None) -> None:
        self.events: list[tuple[str, int]] = []
        self.hold = hold
        self.first_stored = threading.Event()

    def prepared(self, rows: int) -> None:
        self.events.append(("prepared", rows))
        if sum(kind == "prepared" for kind, _ in self.events) == self.hold:
            self.first_stored.wait(WAIT_S)

    def storing(self, total: int) -> None:
        self.events.append(("storing", total))

    def stored(self, rows: int) -> None:
        self.events.append(("stored", rows))
        self.first_stored.set()

    def total(self, kind: str) -> int:
        return sum(rows for name, rows in self.events if name == kind)

    def stored_before_prepared(self) -> int:
        """Rows stored before the first pass's last chunk was prepared."""
        last = max(i for i, (kind, _) in enumerate(self.events) if kind == "prepared")
        return sum(rows for kind, rows in self.events[:last] if kind == "stored")


def _file(tmp_path: Path, order: str, rows: int = ROWS) -> Path:
    """The bundled file's first rows (sorted by date) as they are, newest first, or
    shuffled."""
    table = pd.read_csv(PARIS_REPORTS, dtype=str, keep_default_na=False).iloc[:rows]
    if order == "reverse":
        table = table.iloc[::-1]
    elif order == "shuffled":
        table = table.sample(frac=1, random_state=7)
    path = tmp_path / f"{order}.csv"
    table.to_csv(path, index=False)
    return path


def _import(
    pipeline: Pipeline, path: Path, progress: _Progress, scanned: Path | None
) -> ImportSummary:
    """Import ``path`` in chunks; with ``scanned``, with the chunks' dates read from it."""
    starts = None
    if scanned is not None:
        starts = chunk_starts(scan_csv(scanned, "datedecl", CHUNK), DANSMARUE, pipeline.city)
    return pipeline.imports.import_chunks(
        stream_csv(path, CHUNK), DANSMARUE, batch_size=BATCH, progress=progress, starts=starts
    )


@pytest.mark.postgis
@pytest.mark.slow
@pytest.mark.parametrize("order", ["chronological", "reverse", "shuffled"])
def test_stored_behind_the_first_pass_as_one_pass_after_the_other(
    postgis_server: str, paris: City, paris_gis: CityGIS, tmp_path: Path, order: str
) -> None:
    path = _file(tmp_path, order)
    with (
        _store(postgis_server, 4) as (serial_url, serial),
        _store(postgis_server, 4) as (url, store),
    ):
        first = _import(Pipeline(paris, serial, paris_gis), path, _Progress(), None)
        progress = _Progress(hold=3 if order == "chronological" else None)
        second = _import(Pipeline(paris, store, paris_gis), path, progress, path)
        counts = ("read", "imported", "new_incidents", "attached_in_batch", "quarantined")
        assert [getattr(second, c) for c in counts] == [getattr(first, c) for c in counts]
        assert first.imported > 0.9 * ROWS
        for name in TABLES:
            pd.testing.assert_frame_equal(_rows(url, name), _rows(serial_url, name))
        assert progress.total("prepared") == ROWS
        assert progress.total("stored") == progress.total("storing") == first.imported
        if order == "chronological":
            # Stored while the first pass went on, and reports joined incidents opened by
            # reports of earlier chunks, stored before theirs were prepared.
            assert progress.stored_before_prepared() >= BATCH
            assert _joined_across_chunks(url, path) > 10
        if order == "reverse":
            assert progress.stored_before_prepared() == 0


def _joined_across_chunks(url: str, path: Path) -> int:
    """Reports that joined an incident opened by a report of an earlier chunk."""
    chunk_of = {i: n // CHUNK for n, i in enumerate(pd.read_csv(path, dtype=str)["id_dmr"])}
    reports = _rows(url, "reports").astype({"id": int}).set_index("id")["external_id"]
    links = _rows(url, "incident_reports").astype({"report_id": int, "incident_id": int})
    incidents = _rows(url, "incidents").astype({"id": int, "origin_report_id": int})
    opener = links.merge(incidents, left_on="incident_id", right_on="id")
    mine = opener["report_id"].map(reports).map(chunk_of)
    theirs = opener["origin_report_id"].map(reports).map(chunk_of)
    return int((mine > theirs).sum())


@pytest.mark.postgis
@pytest.mark.slow
def test_a_source_changed_since_its_scan_stops_with_a_prefix_stored_and_a_rerun_finishes(
    postgis_server: str, paris: City, paris_gis: CityGIS, tmp_path: Path
) -> None:
    path = _file(tmp_path, "chronological")
    changed = tmp_path / "changed.csv"
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    late = slice(5 * CHUNK, 6 * CHUNK)  # the sixth chunk now dated a year earlier
    moved = pd.to_datetime(table["datedecl"].iloc[late]) - pd.Timedelta(days=365)
    table.loc[table.index[late], "datedecl"] = moved.dt.strftime("%Y-%m-%d").to_numpy()
    table.to_csv(changed, index=False)
    with (
        _store(postgis_server, 4) as (serial_url, serial),
        _store(postgis_server, 4) as (url, store),
    ):
        whole = _import(Pipeline(paris, serial, paris_gis), path, _Progress(), None)
        pipeline = Pipeline(paris, store, paris_gis)
        with pytest.raises(SourceError, match="changed while it was imported"):
            _import(pipeline, changed, _Progress(hold=3), path)
        stored = _rows(url, "reports")
        assert len(stored) > 0
        assert len(stored) % BATCH == 0  # whole batches
        expected = _rows(serial_url, "reports")
        in_order = expected.astype({"id": int}).sort_values("id")
        assert set(stored["id"]) == set(in_order["id"].astype(str).iloc[: len(stored)])
        pd.testing.assert_frame_equal(
            stored, expected[expected["id"].isin(stored["id"])].reset_index(drop=True)
        )
        again = _import(pipeline, path, _Progress(), path)
        assert (again.already_imported, again.imported) == (
            len(stored),
            whole.imported - len(stored),
        )
        for name in TABLES:
            pd.testing.assert_frame_equal(_rows(url, name), _rows(serial_url, name))


@pytest.mark.postgis
def test_a_file_that_cannot_be_read_fails_before_anything_is_written(
    postgis_server: str, paris: City, paris_gis: CityGIS, tmp_path: Path
) -> None:
    data = gzip.compress(_file(tmp_path, "chronological").read_bytes())
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(data[: int(len(data) * 0.9)])  # its last chunks cut off
    with _store(postgis_server, 4) as (url, store):
        with pytest.raises(SourceError, match="cannot read"):
            run_import(Pipeline(paris, store, paris_gis), broken, "dansmarue", None, tmp_path / "q")
        assert _rows(url, "reports").empty
        assert not (tmp_path / "q").exists()


def test_the_progress_bars_count_both_passes_when_storing_starts_before_reading_ends() -> None:
    with Progress(console=Console(file=io.StringIO())) as shown:
        bar = _Bar(shown, "reports.csv", 3 * CHUNK)  # the rows the scan counted
        read, store = shown.tasks
        bar.prepared(CHUNK)
        bar.stored(BATCH)  # stored behind the first pass, from another thread
        assert (store.total, store.completed, store.started) == (3 * CHUNK, BATCH, True)
        bar.prepared(CHUNK)
        bar.stored(BATCH)
        bar.prepared(CHUNK)
        bar.storing(3 * CHUNK - 40)  # the first pass is over: 40 rows set aside
        bar.stored(3 * CHUNK - 40 - 2 * BATCH)
    assert (read.completed, read.total) == (3 * CHUNK, 3 * CHUNK)
    assert (store.completed, store.total) == (3 * CHUNK - 40, 3 * CHUNK - 40)
