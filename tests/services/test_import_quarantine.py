"""The quarantine of a streamed import, spilled as it comes (``services.quarantine``).

A streamed import with a quarantine file keeps in memory only the counts by kind; the
rows go to disk with their source rows as each chunk is prepared, and the file is written
at the end. What must hold: the file is, byte for byte, the one ``voirie import`` wrote
when it held every quarantined row until the end (the rows of the table in row order,
each merged with its source row, cells made safe for spreadsheets), with every row of an
import that quarantines many of them, and the counts by kind are those of that table.
"""

from __future__ import annotations

import codecs
import io
from pathlib import Path

import pandas as pd
import pytest
from datafiles import PARIS_REPORTS

from voirie.city import City
from voirie.codecs.csvsafe import safe_table
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import PROBLEM, ROW, read_csv, stream_csv
from voirie.ingest.validate import CHANGED_CONTENT
from voirie.services.pipeline import Pipeline
from voirie.services.quarantine import Quarantine, kinds
from voirie.store.base import Store

ROWS = 3_000
CHUNK = 337
BATCH = 500


def _file_with_bad_rows(folder: Path) -> Path:
    """ROWS rows of the real file, many of them bad in different ways (a number that is
    not one, a date before 1990, latitude and longitude swapped), a formula in some
    addresses, and the last chunk repeating ids of the first with other content."""
    rows = pd.read_csv(PARIS_REPORTS, dtype=str, keep_default_na=False).iloc[:ROWS]
    position = pd.RangeIndex(len(rows))
    rows.loc[position % 3 == 0, "latitude"] = "x"
    rows.loc[position % 7 == 1, "datedecl"] = "1980-01-01"
    swapped = position % 11 == 2
    rows.loc[swapped, ["latitude", "longitude"]] = rows.loc[
        swapped, ["longitude", "latitude"]
    ].to_numpy()
    rows.loc[position % 5 == 4, "adresse"] = '=HYPERLINK("http://example.org")'
    repeated = rows.iloc[10:40].assign(adresse="1 rue de Rivoli, 75001 Paris")
    path = folder / "bad.csv"
    pd.concat([rows, repeated], ignore_index=True).to_csv(path, index=False)
    return path


def _held_file(quarantine: pd.DataFrame, source: pd.DataFrame) -> bytes:
    """The quarantine file as ``voirie import`` wrote it from the whole table: the
    quarantined rows merged with the source rows of those that have one."""
    sources = source[source[ROW].isin(quarantine["row"])]
    table = quarantine
    if len(sources):
        table = quarantine.merge(
            sources.drop(columns=[PROBLEM]).rename(columns={ROW: "row"}),
            on="row",
            how="left",
            suffixes=("", "_source"),
        )
    out = io.StringIO()
    safe_table(table).to_csv(out, index=False)
    return codecs.BOM_UTF8 + out.getvalue().encode()  # for Excel


def test_an_import_spills_every_quarantined_row_to_its_file(
    two_stores: tuple[Store, Store], tmp_path: Path, paris: City, paris_gis: CityGIS
) -> None:
    path = _file_with_bad_rows(tmp_path)
    kept, spilled = (Pipeline(paris, store, paris_gis) for store in two_stores)
    held = kept.imports.import_table(read_csv(path), DANSMARUE, batch_size=BATCH)
    target = tmp_path / "bad.csv.quarantine.csv"
    streamed = spilled.imports.import_chunks(
        stream_csv(path, CHUNK),
        DANSMARUE,
        batch_size=BATCH,
        spill_dir=tmp_path,
        quarantine_file=target,
    )
    assert streamed.quarantined == held.quarantined > ROWS / 3
    assert streamed.imported == held.imported > 0
    assert target.read_bytes() == _held_file(held.quarantine, read_csv(path).rows)
    written = pd.read_csv(target, dtype=str, keep_default_na=False)
    assert len(written) == streamed.quarantined
    assert written["row"].astype(int).is_monotonic_increasing
    assert '\'=HYPERLINK("http://example.org")' in set(written["adresse"])
    pd.testing.assert_series_equal(streamed.reasons(), held.reasons())
    # The counts of the table, in its order (the index's dtype follows the table's).
    expected = kinds(held.quarantine).value_counts()
    pd.testing.assert_series_equal(held.reasons(), expected, check_index_type=False)
    with pytest.raises(RuntimeError, match="write_csv"):
        _ = streamed.quarantine  # the rows were not held
    assert list(tmp_path.glob("voirie-import-*")) == []  # the spilled pieces are removed


def test_rows_of_the_store_pass_are_written_in_their_row_order(tmp_path: Path) -> None:
    source = read_csv(PARIS_REPORTS).rows.iloc[:600]
    chunks = [source.iloc[start : start + 150] for start in range(0, 600, 150)]
    set_aside = Quarantine(tmp_path)
    prepared = []
    for chunk in chunks:
        bad = chunk.iloc[::4]
        rejected = pd.DataFrame(
            {
                "row": bad[ROW].to_numpy(),
                "external_id": bad["id_dmr"].to_numpy(),
                "field": ["latitude"] * (len(bad) - 1) + ["datedecl"],
                "reason": ["not a number: x"] * (len(bad) - 1) + ["out of range: 1980-01-01"],
            }
        ).iloc[::-1]  # in any order within the chunk
        set_aside.add(rejected, chunk)
        prepared.append(rejected)
    # Rows refused while storing: inside a chunk's rows, between chunks, after the last
    # (as many as the rows out of range: a tie, broken by the first row of each kind).
    late_at = [599, 5, 149, 151]
    late = pd.DataFrame(
        {
            "row": source[ROW].iloc[late_at].to_numpy(),
            "external_id": source["id_dmr"].iloc[late_at].to_numpy(),
            "field": "external_id",
            "reason": CHANGED_CONTENT,
        }
    )
    set_aside.add(late.iloc[:1])  # the last row first: a kind's first row can go down
    set_aside.add(late.iloc[1:])
    target = tmp_path / "q.csv"
    set_aside.write_csv(target)

    whole = pd.concat([*prepared, late], ignore_index=True)
    whole = whole.sort_values("row", kind="stable", ignore_index=True)
    prepared_rows = pd.concat(prepared)["row"]
    expected = _held_file(whole, source[source[ROW].isin(prepared_rows)])
    assert target.read_bytes() == expected
    assert set_aside.count == len(whole)
    expected_counts = kinds(whole).value_counts()
    assert list(expected_counts) == [148, 4, 4]
    assert list(expected_counts.index[1:]) == [kinds(late).iloc[0], "datedecl: out of range"]
    pd.testing.assert_series_equal(set_aside.reasons(), expected_counts, check_index_type=False)

    only_late = Quarantine(tmp_path)
    only_late.add(late)
    only_late.write_csv(target)
    assert target.read_bytes() == _held_file(
        late.sort_values("row", ignore_index=True), source.iloc[:0]
    )
