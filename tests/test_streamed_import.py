"""The streamed bulk import: many chunks store exactly what one chunk stores.

A slice of the real DansMaRue file, shuffled (so its rows are not in time order) with
repeated ids in later chunks, is imported once in one chunk and once in chunks of 337
rows (spilled, sorted and merged back, ``services.timeorder``) into two fresh stores of
the same backend, which reserve the same ids: the summaries, the report layer (with each
report's incident) and the incident layer must be identical.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clirunner import run_voirie

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import (
    read_csv,
    read_open311_json,
    stream_csv,
    stream_open311_json,
)
from voirie.services.imports import REPEATED
from voirie.services.pipeline import Pipeline
from voirie.services.timeorder import SortedRuns
from voirie.store.base import Store

REPORTS = Path(__file__).parents[1] / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
CHICAGO = Path(__file__).parent / "data/chicago_100.json"
ROWS = 2_400
CHUNK = 337
BATCH = 250
WALL_CLOCK = ["received_at", "updated_at", "linked_at", "assigned_at"]
"""Columns that say when the import ran, not what it stored."""


def _shuffled_file(folder: Path) -> Path:
    """ROWS rows of the real file in random order, then an identical repeat of one row and
    a repeat of another with a changed description (both in the last chunk)."""
    rows = pd.read_csv(REPORTS, dtype=str, keep_default_na=False).iloc[:ROWS]
    rows = rows.sample(frac=1, random_state=7, ignore_index=True)
    same, changed = rows.iloc[[3]], rows.iloc[[4]].copy()
    changed["adresse"] = "1 rue de Rivoli, 75001 Paris"
    path = folder / "shuffled.csv"
    pd.concat([rows, same, changed], ignore_index=True).to_csv(path, index=False)
    return path


def _layer(layer: pd.DataFrame, key: str) -> pd.DataFrame:
    kept = layer.drop(columns=["geometry", *WALL_CLOCK], errors="ignore")
    return pd.DataFrame(kept).sort_values(key, ignore_index=True)


def _layers(pipeline: Pipeline) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The report and incident layers, without the instants of the import itself."""
    return (
        _layer(pipeline.reads.reports(), "report_id"),
        _layer(pipeline.reads.incidents(), "incident_id"),
    )


@pytest.mark.slow
def test_many_chunks_store_what_one_chunk_stores(
    two_stores: tuple[Store, Store], tmp_path: Path, paris: City, paris_gis: CityGIS
) -> None:
    path = _shuffled_file(tmp_path)
    times = pd.to_datetime(read_csv(path).rows["datedecl"])
    assert not times.is_monotonic_increasing  # the point: the file is not in time order
    whole, streamed = (Pipeline(paris, store, paris_gis) for store in two_stores)
    one = whole.imports.import_table(read_csv(path), DANSMARUE, batch_size=BATCH)
    many = streamed.imports.import_chunks(
        stream_csv(path, CHUNK), DANSMARUE, batch_size=BATCH, spill_dir=tmp_path
    )
    assert len(list(stream_csv(path, CHUNK))) == -(-(ROWS + 2) // CHUNK) > 7
    counts = ("read", "imported", "new_incidents", "attached_in_batch", "attached_existing")
    assert [getattr(many, c) for c in counts] == [getattr(one, c) for c in counts]
    assert one.read == ROWS + 2
    assert one.imported > 0.9 * ROWS
    assert one.attached_in_batch > 0  # deduplication had work to do across batches
    pd.testing.assert_frame_equal(many.quarantine, one.quarantine, check_dtype=False)
    assert REPEATED in set(many.quarantine["reason"])  # the repeat with other content
    for streamed_layer, whole_layer in zip(_layers(streamed), _layers(whole), strict=True):
        pd.testing.assert_frame_equal(streamed_layer, whole_layer)
    assert list(tmp_path.glob("voirie-import-*")) == []  # the runs are removed

    again = streamed.imports.import_chunks(stream_csv(path, CHUNK), DANSMARUE, batch_size=BATCH)
    assert (again.imported, again.already_imported) == (0, one.imported)


def test_chunks_of_a_source_are_the_source_read_at_once() -> None:
    whole = read_csv(REPORTS)
    chunks = list(stream_csv(REPORTS, 5_000))
    assert [len(c.rows) for c in chunks] == [5_000] * 4 + [len(whole.rows) - 20_000]
    pd.testing.assert_frame_equal(
        pd.concat([c.rows for c in chunks], ignore_index=True), whole.rows
    )
    requests = read_open311_json(CHICAGO)
    parts = list(stream_open311_json(CHICAGO, 30))
    assert [len(p.rows) for p in parts] == [30, 30, 30, 10]
    assert all(p.columns == requests.columns for p in parts)
    pd.testing.assert_frame_equal(
        pd.concat([p.rows for p in parts], ignore_index=True), requests.rows
    )


def test_the_merge_of_sorted_runs_is_the_global_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 5_000
    frame = pd.DataFrame(
        {
            "row": np.arange(1, n + 1),
            # few distinct instants: ties are broken by the row, as the import needs
            "requested_at": pd.Timestamp("2024-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 40, n), unit="h"),
            "value": rng.normal(size=n),
        }
    )
    expected = frame.sort_values(["requested_at", "row"], ignore_index=True)
    with SortedRuns(tmp_path, block_rows=17) as runs:
        for start in range(0, n, 613):
            runs.add(frame.iloc[start : start + 613])
        batches = list(runs.merged(batch_rows=128))
    assert [len(b) for b in batches] == [128] * (n // 128) + [n % 128]
    assert all(isinstance(b.index, pd.RangeIndex) for b in batches)
    pd.testing.assert_frame_equal(pd.concat(batches, ignore_index=True), expected)


def test_import_fails_when_every_row_is_quarantined(tmp_path: Path) -> None:
    rows = pd.read_csv(REPORTS, dtype=str, keep_default_na=False).iloc[:30]
    rows["latitude"] = "not a number"
    rows.to_csv(tmp_path / "bad.csv", index=False)
    run = run_voirie(tmp_path, "import", "bad.csv", "--city", "paris", "--format", "dansmarue")
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "nothing was imported: all 30 rows were quarantined" in output
    assert "latitude: not a number" in output  # the reasons, counted
    quarantined = pd.read_csv(tmp_path / "bad.csv.quarantine.csv", dtype=str)
    assert len(quarantined) == 30
    assert (quarantined["id_dmr"] == rows["id_dmr"]).all()
