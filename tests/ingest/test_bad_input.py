"""Bad input, on real DansMaRue rows: each bad row is quarantined with one reason naming its
field, the good rows are all imported, and a file that cannot be read at all stops
``voirie import`` with one clear error line."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from clirunner import run_voirie

from voirie.city import TRIAGE_TEAM, City, service_code_for
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE, OPEN311, ColumnMapping
from voirie.ingest.sources import RawTable, read_csv, read_open311_json
from voirie.ingest.validate import MAX_FIELD_BYTES
from voirie.services.imports import ImportSummary
from voirie.services.pipeline import Pipeline
from voirie.store import Store
from voirie.store.sqlite import SqliteStore

ROOT = Path(__file__).parents[2]
REPORTS = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
N_REAL = 30
BAD_BYTES = b"\xff\xfe"
OUT_OF_RANGE = "out of range: before 1990-01-01 or more than a day in the future"


def _real_rows() -> tuple[list[str], list[dict[str, str]]]:
    frame = pd.read_csv(REPORTS, nrows=N_REAL, dtype=str, keep_default_na=False)
    return list(frame.columns), frame.to_dict("records")


def _line(values: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue().encode("utf-8")


@dataclass
class BadFile:
    """A DansMaRue file of real rows, some corrupted, and what the import should say."""

    path: Path
    expected: dict[int, tuple[str, list[str]]]  # row -> (field, words the reason must hold)
    good_ids: set[str]
    new_subcategory_id: str
    new_type_id: str
    identical_repeats: int
    rows: int


def _write_bad_file(path: Path) -> BadFile:
    header, rows = _real_rows()
    assert len({r["id_dmr"] for r in rows}) == N_REAL  # the repeats below are ours
    expected: dict[int, tuple[str, list[str]]] = {}

    def bad(index: int, field: str, *words: str) -> dict[str, str]:
        expected[index + 1] = (field, list(words))  # rows are numbered from 1
        return rows[index]

    bad(1, "latitude", "missing")["latitude"] = ""
    bad(2, "longitude", "not a number", "abc")["longitude"] = "abc"
    swapped = bad(3, "latitude/longitude", "swapped")
    swapped["latitude"], swapped["longitude"] = swapped["longitude"], swapped["latitude"]
    atlantic = bad(4, "latitude/longitude", "outside the territory")
    atlantic["latitude"], atlantic["longitude"] = "46.0", "-8.0"
    biscay = bad(12, "latitude/longitude", "outside the territory", "(-3.000000, 45.500000)")
    biscay["latitude"], biscay["longitude"] = "45.5", "-3.0"
    # A type and sub-type city.yaml has neither of: imported too, sent to triage.
    rows[5]["type"], rows[5]["soustype"] = "Catégorie apparue ensuite", "Sa sous-catégorie"
    bad(6, "row", "UTF-8", "adresse")["adresse"] = "12 Rue @BAD@ de la Paix, 75002 PARIS"
    bad(7, "row", "18 fields", "header has 19")
    bad(8, "datedecl", "not a date", "2023-02-30")["datedecl"] = "2023-02-30"
    # A known type with a sub-type city.yaml does not have yet: imported, sent to triage.
    rows[9]["soustype"] = "Nouvelle sous-catégorie apparue après la configuration"
    changed = dict(rows[10], adresse="1 Place de l'Hôtel de Ville, 75004 PARIS")
    expected[N_REAL + 1] = ("id_dmr", ["repeated in this file with different content"])
    same = dict(rows[11])

    lines = [_line(header)]
    for index, row in enumerate([*rows, changed, same]):
        values = [row[name] for name in header]
        if index == 7:
            values = values[:-1]  # a field short
        lines.append(_line(values).replace(b"@BAD@", BAD_BYTES))
    path.write_bytes(b"".join(lines))
    assert BAD_BYTES in path.read_bytes()
    good = [r["id_dmr"] for i, r in enumerate(rows) if i + 1 not in expected]
    return BadFile(
        path, expected, set(good), rows[9]["id_dmr"], rows[5]["id_dmr"], 1, len(lines) - 1
    )


@pytest.fixture(scope="module")
def bad_import(
    tmp_path_factory: pytest.TempPathFactory, paris: City, paris_gis: CityGIS
) -> Iterator[tuple[BadFile, ImportSummary, pd.DataFrame]]:
    folder = tmp_path_factory.mktemp("bad_input")
    bad_file = _write_bad_file(folder / "dansmarue_bad.csv")
    store = SqliteStore(folder / "t.gpkg")
    store.upgrade()
    try:
        pipeline = Pipeline(paris, store, paris_gis)
        summary = pipeline.imports.import_table(read_csv(bad_file.path), DANSMARUE)
        layer = pd.DataFrame(pipeline.reads.reports().drop(columns="geometry"))
        yield bad_file, summary, layer
    finally:
        store.close()


def test_every_bad_row_is_quarantined_with_one_reason_naming_field_and_problem(
    bad_import: tuple[BadFile, ImportSummary, pd.DataFrame],
) -> None:
    bad_file, summary, _ = bad_import
    quarantine = summary.quarantine
    assert quarantine["row"].is_unique, quarantine
    assert sorted(quarantine["row"]) == sorted(bad_file.expected)
    for row in quarantine.itertuples():
        field, words = bad_file.expected[row.row]
        assert row.field == field, (row.row, row.field, row.reason)
        for word in words:
            assert word in row.reason, (row.row, row.reason)
    # The summary counts them by field and kind of problem.
    reasons = summary.reasons()
    assert reasons.sum() == summary.quarantined
    assert reasons["datedecl: not a date"] == 1
    # Two points far apart are one kind: the place is not part of it.
    assert reasons["latitude/longitude: outside the territory of Paris"] == 2


def test_good_rows_are_all_imported_and_every_row_is_accounted_for(
    bad_import: tuple[BadFile, ImportSummary, pd.DataFrame],
) -> None:
    bad_file, summary, layer = bad_import
    assert summary.read == bad_file.rows == N_REAL + 2
    assert set(layer["external_id"]) == bad_file.good_ids
    assert layer["external_id"].is_unique  # the identical repeat was stored once
    assert summary.imported == len(bad_file.good_ids) == len(layer)
    assert summary.already_imported == 0
    assert summary.imported + summary.quarantined + bad_file.identical_repeats == summary.read


def test_new_categories_are_imported_and_routed_to_triage(
    bad_import: tuple[BadFile, ImportSummary, pd.DataFrame],
) -> None:
    """A new sub-type of a known type, and a new type: imported (a feed's categories grow),
    with codes derived from their names, sent to triage and counted in the summary."""
    bad_file, summary, layer = bad_import
    new = [bad_file.new_subcategory_id, bad_file.new_type_id]
    reports = layer.set_index("external_id").loc[new]
    assert (reports["team"] == TRIAGE_TEAM).all()
    assert reports["zone_arrondissement"].notna().all()  # enriched like any other report
    new_type = service_code_for("Catégorie apparue ensuite", "Sa sous-catégorie")
    assert reports.loc[new[1], "service_code"] == new_type
    assert summary.new_categories == {reports.loc[new[0], "service_code"]: 1, new_type: 1}
    assert summary.category_names == {
        reports.loc[
            new[0], "service_code"
        ]: "Nouvelle sous-catégorie apparue après la configuration",
        new_type: "Sa sous-catégorie",
    }
    others = layer[~layer["external_id"].isin(new)]
    assert TRIAGE_TEAM not in set(others["team"])  # known categories all have a rule


def test_a_city_whose_catalogue_must_be_complete_quarantines_new_categories(
    tmp_path: Path, paris: City, paris_gis: CityGIS
) -> None:
    bad_file = _write_bad_file(tmp_path / "dansmarue_bad.csv")
    strict = City(paris.folder, paris.config.model_copy(update={"new_categories": "quarantine"}))
    store = SqliteStore(tmp_path / "t.gpkg")
    store.upgrade()
    try:
        pipeline = Pipeline(strict, store, paris_gis)
        summary = pipeline.imports.import_table(read_csv(bad_file.path), DANSMARUE)
    finally:
        store.close()
    refused = summary.quarantine.set_index("external_id")
    assert refused.loc[[bad_file.new_subcategory_id, bad_file.new_type_id], "reason"].tolist() == [
        "unknown category: Nouvelle sous-catégorie apparue après la configuration",
        "unknown category: Sa sous-catégorie",
    ]
    assert refused.loc[bad_file.new_type_id, "field"] == "soustype"
    assert not summary.new_categories


# --- files that cannot be read at all, through the real command -------------------------


def _unreadable_files(folder: Path) -> dict[str, tuple[str, str]]:
    """Case name -> (file name, words the error must hold)."""
    real = (ROOT / "tests/data/dansmarue_200.csv").read_bytes()
    header, rest = real.split(b"\n", 1)
    packed = gzip.compress(real)
    files = {
        "empty": ("empty.csv", b"", "empty"),
        "no latitude column": (  # nor the portal's point column, which would stand for it
            "no_latitude.csv",
            header.replace(b",latitude,", b",lat,").replace(b"geo_point_2d", b"point")
            + b"\n"
            + rest,
            "'latitude' (or 'geo_point_2d')",
        ),
        "not gzip": ("garbage.csv.gz", bytes(range(256)) * 4, "cannot read"),
        "corrupt gzip": (
            "corrupt.csv.gz",
            packed[:20] + b"garbage" * 50 + packed[-8:],
            "cannot read",
        ),
        "truncated gzip": ("truncated.csv.gz", packed[: len(packed) // 2], "cannot read"),
    }
    for name, data, _ in files.values():
        (folder / name).write_bytes(data)
    return {case: (name, words) for case, (name, _, words) in files.items()}


@pytest.fixture(scope="module")
def cli_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, tuple[Future[subprocess.CompletedProcess[str]], str]]]:
    """Every command started at once (each loads the city for seconds), awaited per test."""
    unreadable = tmp_path_factory.mktemp("unreadable")
    cases = _unreadable_files(unreadable)
    header_only = tmp_path_factory.mktemp("header_only")
    (header_only / "header.csv").write_bytes(
        (ROOT / "tests/data/dansmarue_200.csv").read_bytes().split(b"\n", 1)[0] + b"\n"
    )
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        runs = {
            case: (
                pool.submit(
                    run_voirie,
                    unreadable,
                    "import",
                    name,
                    "--city",
                    "paris",
                    "--format",
                    "dansmarue",
                ),
                words,
            )
            for case, (name, words) in cases.items()
        }
        runs["header only"] = (
            pool.submit(
                run_voirie,
                header_only,
                "import",
                "header.csv",
                "--city",
                "paris",
                "--format",
                "dansmarue",
            ),
            "",
        )
        yield runs


@pytest.mark.parametrize(
    "case", ["empty", "no latitude column", "not gzip", "corrupt gzip", "truncated gzip"]
)
def test_unreadable_file_fails_with_one_clear_error_line(
    cli_runs: dict[str, tuple[Future[subprocess.CompletedProcess[str]], str]], case: str
) -> None:
    future, words = cli_runs[case]
    result = future.result()
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    # Only the progress bar may come before the error; the error is a single line.
    assert [line for line in lines if not line.startswith("importing ")] == [lines[-1]], output
    assert lines[-1].startswith("error: "), output
    assert words in lines[-1], output


def test_header_only_file_imports_nothing_and_succeeds(
    cli_runs: dict[str, tuple[Future[subprocess.CompletedProcess[str]], str]],
) -> None:
    result = cli_runs["header only"][0].result()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    assert "error" not in output
    counts = dict(re.findall(r"^\W*(rows read|imported|quarantined)\W+(\d+)\W*$", output, re.M))
    assert counts == {"rows read": "0", "imported": "0", "quarantined": "0"}, output


# --- cells that once aborted a whole import, on both backends ----------------------------


def _dansmarue_with(path: Path, changes: dict[int, dict[str, str]]) -> Path:
    """The first real rows, with ``changes`` (row number -> column -> value) made."""
    header, rows = _real_rows()
    for row, change in changes.items():
        rows[row - 1].update(change)
    lines = [_line(header), *(_line([r[name] for name in header]) for r in rows)]
    path.write_bytes(b"".join(lines))
    return path


def _open311_with(path: Path, paris: City, changes: dict[int, dict[str, str]]) -> Path:
    """The first real rows as an open311-json file, with ``changes`` made."""
    _, rows = _real_rows()
    requests = [
        {
            "service_request_id": row["id_dmr"],
            "service_code": paris.services_by_name[row["soustype"].casefold()].code,
            "service_name": row["soustype"],
            "description": f"{row['type']} : {row['soustype']}",
            "requested_datetime": row["datedecl"],
            "lat": row["latitude"],
            "long": row["longitude"],
            "address": row["adresse"],
        }
        for row in rows
    ]
    for row, change in changes.items():
        requests[row - 1].update(change)
    path.write_text(json.dumps(requests), encoding="utf-8")
    return path


def _quarantined(
    store: Store, paris: City, paris_gis: CityGIS, table: RawTable, mapping: ColumnMapping
) -> tuple[ImportSummary, dict[int, tuple[str, str]]]:
    summary = Pipeline(paris, store, paris_gis).imports.import_table(table, mapping)
    reasons = {int(r.row): (str(r.field), str(r.reason)) for r in summary.quarantine.itertuples()}
    return summary, reasons


def test_cells_that_aborted_an_import_are_quarantined_naming_their_column(
    store: Store, paris: City, paris_gis: CityGIS, tmp_path: Path
) -> None:
    """Blank category cells (float NaN under pandas 3), year 0001, a NUL byte (PostGIS
    refuses it), a control character, a time in the future: each row quarantined with its
    column and reason, every other row imported."""
    later = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S")
    changes = {
        2: {"type": "", "soustype": ""},
        3: {"soustype": ""},
        4: {"datedecl": "0001-01-01 10:00:00"},
        5: {"datedecl": "1989-12-31 23:00:00"},
        6: {"datedecl": later},
        7: {"adresse": "12 Rue\x00de la Paix, 75002 PARIS"},
        8: {"adresse": "12 Rue\x1bde la Paix, 75002 PARIS"},
    }
    path = _dansmarue_with(tmp_path / "cells.csv", changes)
    summary, reasons = _quarantined(store, paris, paris_gis, read_csv(path), DANSMARUE)
    assert reasons == {
        2: ("soustype", "missing category"),
        3: ("soustype", "missing category"),
        4: ("datedecl", OUT_OF_RANGE),
        5: ("datedecl", OUT_OF_RANGE),
        6: ("datedecl", OUT_OF_RANGE),
        7: ("adresse", "contains a NUL byte"),
        8: ("adresse", "contains a control character (U+001B)"),
    }
    assert summary.imported == N_REAL - len(changes)
    assert store.count("reports", paris.jurisdiction_id) == N_REAL - len(changes)


def test_oversized_and_unencodable_json_fields_are_quarantined(
    store: Store, paris: City, paris_gis: CityGIS, tmp_path: Path
) -> None:
    """An open311-json file: a description over 128 KiB, a lone surrogate, a NUL byte,
    year 0001; each row quarantined naming its field, the others imported."""
    changes = {
        1: {"description": "é" * (MAX_FIELD_BYTES // 2 + 1)},  # 2 bytes each in UTF-8
        2: {"description": "trou \ud800 dans la chaussée"},
        3: {"address": "\x00"},
        4: {"requested_datetime": "0001-01-01T00:00:00Z"},
    }
    path = _open311_with(tmp_path / "requests.json", paris, changes)
    summary, reasons = _quarantined(store, paris, paris_gis, read_open311_json(path), OPEN311)
    assert reasons == {
        1: ("description", "larger than 128 KiB"),
        2: ("description", "contains an unpaired surrogate (U+D800)"),
        3: ("address", "contains a NUL byte"),
        4: ("requested_datetime", OUT_OF_RANGE),
    }
    assert summary.imported == N_REAL - len(changes)
    # Just under the limit is imported whole (with the three other rows, now clean).
    fits = {1: {"service_request_id": "grand", "description": "é" * (MAX_FIELD_BYTES // 2)}}
    path = _open311_with(tmp_path / "fits.json", paris, fits)
    summary, reasons = _quarantined(store, paris, paris_gis, read_open311_json(path), OPEN311)
    assert reasons == {}
    assert summary.imported == len(changes)
