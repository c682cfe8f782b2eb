"""The ``voirie`` command as a user runs it: the installed console script, in a subprocess,
on an sqlite store in a temporary folder.

Each command loads the city (seconds), so independent commands are started together and
each test waits for the one it checks.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from clirunner import run_voirie
from datafiles import PARIS_REPORTS, REPORT_COLUMNS, SAMPLE_200

from voirie.city import TRIAGE_TEAM, City
from voirie.store.sqlite import SqliteStore

JURISDICTION = "paris.fr"
TABLES = [
    "reports",
    "enrichments",
    "report_zones",
    "incidents",
    "incident_reports",
    "assignments",
    "events",
]
PERSONAL = re.compile(r"contact|email|phone|device", re.IGNORECASE)

Run = subprocess.CompletedProcess[str]


def _ensure_data() -> Path:
    """The committed 200-row DansMaRue extract (first rows of the developers' sample)."""
    assert SAMPLE_200.is_file(), f"missing test data {SAMPLE_200}"
    return SAMPLE_200


def _ok(run: Run) -> str:
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "Traceback" not in output
    return output


def _summary(output: str) -> dict[str, int]:
    """The counts of the import summary table."""
    pattern = r"^\W*(rows read|imported|already imported \(skipped\)|quarantined)\W+(\d+)\W*$"
    return {label: int(n) for label, n in re.findall(pattern, output, re.MULTILINE)}


def _counts(folder: Path) -> dict[str, int]:
    store = SqliteStore(folder / "t.gpkg")
    try:
        return {table: store.count(table, JURISDICTION) for table in TABLES}
    finally:
        store.close()


def _stored_reports(folder: Path) -> pd.DataFrame:
    store = SqliteStore(folder / "t.gpkg")
    try:
        return store.read("reports", JURISDICTION)
    finally:
        store.close()


def _import(folder: Path, path: str, fmt: str, *more: str) -> Run:
    return run_voirie(folder, "import", path, "--city", "paris", "--format", fmt, *more)


@dataclass
class Other:
    """An import in another format, on a store of its own."""

    folder: Path
    run: Future[Run]
    expected: pd.DataFrame  # external_id, service_code, requested_at (UTC), lon, lat


def _rows(start: int, stop: int, paris: City) -> pd.DataFrame:
    rows = pd.read_csv(_ensure_data(), dtype=str, keep_default_na=False).iloc[start:stop]
    rows = rows.reset_index(drop=True)
    rows["service_code"] = [paris.services_by_name[n.casefold()].code for n in rows["soustype"]]
    return rows


def _start_mapped_csv(pool: ThreadPoolExecutor, folder: Path, paris: City) -> Other:
    """A partner's CSV: DansMaRue content under other column names, ';', French dates."""
    rows = _rows(0, 20, paris)
    dates = pd.to_datetime(rows["datedecl"])
    partner = pd.DataFrame(
        {
            "ref": "P-" + rows["id_dmr"],
            "famille": rows["type"],
            "categorie": rows["soustype"],
            "lieu": rows["adresse"],
            "date_signalement": dates.dt.strftime("%d/%m/%Y"),
            "y": rows["latitude"],
            "x": rows["longitude"],
        }
    )
    partner.to_csv(folder / "partenaire.csv", sep=";", index=False)
    (folder / "mapping.yaml").write_text(
        "source: partenaire\nexternal_id: ref\nlat: y\nlon: x\n"
        "requested_at: date_signalement\ndate_format: '%d/%m/%Y'\n"
        "service_name: categorie\ngroup_name: famille\naddress: lieu\n",
        encoding="utf-8",
    )
    run = pool.submit(_import, folder, "partenaire.csv", "csv", "--mapping", "mapping.yaml")
    expected = pd.DataFrame(
        {
            "external_id": partner["ref"],
            "service_code": rows["service_code"],
            "requested_at": dates.dt.tz_localize(paris.config.timezone).dt.tz_convert("UTC"),
            "lon": rows["longitude"].astype(float),
            "lat": rows["latitude"].astype(float),
        }
    )
    return Other(folder, run, expected)


def _start_geojson(pool: ThreadPoolExecutor, folder: Path, paris: City) -> Other:
    """Point features with Open311 property names."""
    rows = _rows(20, 23, paris)
    times = ["2024-01-05T10:00:00+01:00", "2024-01-05T11:30:00+01:00", "2024-02-01T08:00:00Z"]
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [float(r.longitude), float(r.latitude)]},
            "properties": {
                "service_request_id": f"geo-{i}",
                "service_code": r.service_code,
                "requested_datetime": times[i],
            },
        }
        for i, r in enumerate(rows.itertuples())
    ]
    (folder / "requests.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8"
    )
    run = pool.submit(_import, folder, "requests.geojson", "geojson")
    expected = pd.DataFrame(
        {
            "external_id": [f"geo-{i}" for i in range(3)],
            "service_code": rows["service_code"],
            "requested_at": pd.to_datetime(times, utc=True),
            "lon": rows["longitude"].astype(float),
            "lat": rows["latitude"].astype(float),
        }
    )
    return Other(folder, run, expected)


def _start_open311_json(pool: ThreadPoolExecutor, folder: Path, paris: City) -> Other:
    """A JSON array of GeoReport v2 requests, as another Open311 server exports them."""
    rows = _rows(23, 26, paris)
    # Winter and summer time in one file, as any export spanning months has.
    times = ["2024-03-01T09:15:00+01:00", "2024-07-01T09:15:00+02:00", "2024-03-03T09:15:00Z"]
    requests = [
        {
            "service_request_id": f"o311-{i}",
            "service_code": r.service_code,
            "service_name": r.soustype,
            "description": "signalé par un habitant",
            "requested_datetime": times[i],
            "lat": float(r.latitude),
            "long": float(r.longitude),
            "address": r.adresse,
            "status": "open",
        }
        for i, r in enumerate(rows.itertuples())
    ]
    (folder / "requests.json").write_text(json.dumps(requests), encoding="utf-8")
    run = pool.submit(_import, folder, "requests.json", "open311-json")
    expected = pd.DataFrame(
        {
            "external_id": [r["service_request_id"] for r in requests],
            "service_code": rows["service_code"],
            "requested_at": pd.to_datetime([r["requested_datetime"] for r in requests], utc=True),
            "lon": rows["longitude"].astype(float),
            "lat": rows["latitude"].astype(float),
        }
    )
    return Other(folder, run, expected)


def _upgrade_twice(folder: Path) -> tuple[Run, Run]:
    return run_voirie(folder, "db", "upgrade"), run_voirie(folder, "db", "upgrade")


@dataclass
class Started:
    main: Path
    first: Future[Run]
    others: dict[str, Other]
    upgrades: Future[tuple[Run, Run]]


@pytest.fixture(scope="module")
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as executor:
        yield executor


@pytest.fixture(scope="module")
def started(
    pool: ThreadPoolExecutor, tmp_path_factory: pytest.TempPathFactory, paris: City
) -> Started:
    """The commands that need nothing else, all started."""
    main = tmp_path_factory.mktemp("main")
    first = pool.submit(_import, main, str(_ensure_data()), "dansmarue")
    others = {
        name: start(pool, tmp_path_factory.mktemp(name), paris)
        for name, start in [
            ("csv", _start_mapped_csv),
            ("geojson", _start_geojson),
            ("open311-json", _start_open311_json),
        ]
    }
    upgrades = pool.submit(_upgrade_twice, tmp_path_factory.mktemp("upgrade"))
    return Started(main, first, others, upgrades)


@dataclass
class Imported:
    folder: Path
    first: Run
    counts: dict[str, int]
    second: Future[Run]
    exports: dict[str, Future[Run]]


EXPORTS = {
    "reports.csv": ("reports", "--format", "csv"),
    "reports.geojson": ("reports", "--format", "geojson"),
    "reports.gpkg": ("reports", "--format", "gpkg"),
    "reports_2154.gpkg": ("reports", "--format", "gpkg", "--crs", "EPSG:2154"),
    "incidents.csv": ("incidents", "--format", "csv"),
}


@pytest.fixture(scope="module")
def imported(started: Started, pool: ThreadPoolExecutor) -> Imported:
    """After the first import: the second import and every export, started together."""
    first = started.first.result()
    _ok(first)
    folder = started.main
    counts = _counts(folder)
    second = pool.submit(_import, folder, str(SAMPLE_200), "dansmarue")
    exports = {
        name: pool.submit(
            run_voirie, folder, "export", layer, "--city", "paris", *options, "-o", name
        )
        for name, (layer, *options) in EXPORTS.items()
    }
    return Imported(folder, first, counts, second, exports)


def _exported(imported: Imported, name: str) -> Path:
    output = _ok(imported.exports[name].result())
    assert "wrote" in output
    return imported.folder / name


def _source_ids() -> set[str]:
    return set(pd.read_csv(SAMPLE_200, usecols=["id_dmr"], dtype=str)["id_dmr"])


def test_import_prints_a_summary_and_stores_every_row(imported: Imported) -> None:
    output = _ok(imported.first)
    summary = _summary(output)
    assert summary["rows read"] == 200
    assert summary["imported"] == 200
    assert summary["quarantined"] == 0
    assert summary["already imported (skipped)"] == 0
    assert imported.counts["reports"] == 200
    assert 0 < imported.counts["incidents"] <= 200
    assert imported.counts["incident_reports"] == 200  # every report in one incident


def test_second_import_adds_nothing(imported: Imported) -> None:
    output = _ok(imported.second.result())
    assert "nothing new" in output
    summary = _summary(output)
    assert summary["imported"] == 0
    assert summary["already imported (skipped)"] == 200
    assert _counts(imported.folder) == imported.counts


def test_csv_export_has_the_contract_columns_and_city_teams(imported: Imported) -> None:
    table = pd.read_csv(_exported(imported, "reports.csv"), dtype={"external_id": str})
    assert set(REPORT_COLUMNS) <= set(table.columns)
    assert not [c for c in table.columns if PERSONAL.search(c)]  # no reporter data
    assert len(table) == 200
    assert set(table["external_id"]) == _source_ids()
    assert table["report_id"].is_unique
    assert table["incident_id"].notna().all()
    assert table["zone_arrondissement"].between(1, 20).all()
    assert table["lon"].between(2.2, 2.5).all()
    assert table["lat"].between(48.8, 48.91).all()
    # Timestamps carry their offset so every tool reads the same instant.
    assert table["requested_at"].str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$").all()
    intervenants = set(pd.read_csv(PARIS_REPORTS, usecols=["intervenant"])["intervenant"].dropna())
    assert set(table["team"]) <= intervenants | {TRIAGE_TEAM}
    assert len(set(table["team"])) > 5  # routed per category, not all to one queue


def test_incident_export_covers_every_report(imported: Imported) -> None:
    incidents = pd.read_csv(_exported(imported, "incidents.csv"))
    reports = pd.read_csv(_exported(imported, "reports.csv"))
    assert len(incidents) == imported.counts["incidents"]
    assert set(reports["incident_id"]) == set(incidents["incident_id"])
    assert incidents["report_count"].sum() == 200


@pytest.mark.parametrize("name", ["reports.geojson", "reports.gpkg"])
def test_gis_exports_read_back_with_the_same_rows(imported: Imported, name: str) -> None:
    layer = gpd.read_file(_exported(imported, name), engine="pyogrio")
    assert len(layer) == 200
    assert layer.crs.to_epsg() == 4326
    assert set(REPORT_COLUMNS) <= set(layer.columns)
    assert set(layer["external_id"]) == _source_ids()
    assert (layer.geometry.geom_type == "Point").all()
    assert ((layer.geometry.x - layer["lon"]).abs() < 1e-9).all()


def test_export_in_lambert_93(imported: Imported) -> None:
    layer = gpd.read_file(_exported(imported, "reports_2154.gpkg"), engine="pyogrio")
    assert len(layer) == 200
    assert layer.crs.to_epsg() == 2154
    x, y = layer.geometry.x, layer.geometry.y
    assert x.between(600_000, 700_000).all()
    assert y.between(6_800_000, 6_900_000).all()


@pytest.mark.parametrize("fmt", ["csv", "geojson", "open311-json"])
def test_import_other_formats(started: Started, fmt: str) -> None:
    other = started.others[fmt]
    output = _ok(other.run.result())
    n = len(other.expected)
    assert _summary(output) == {
        "rows read": n,
        "imported": n,
        "already imported (skipped)": 0,
        "quarantined": 0,
    }
    stored = _stored_reports(other.folder).set_index("external_id")
    expected = other.expected.set_index("external_id")
    assert sorted(stored.index) == sorted(expected.index)
    stored = stored.loc[expected.index]
    assert list(stored["service_code"]) == list(expected["service_code"])
    assert list(stored["requested_at"]) == list(expected["requested_at"])
    assert ((stored["lon"] - expected["lon"]).abs() < 1e-9).all()
    assert ((stored["lat"] - expected["lat"]).abs() < 1e-9).all()
    assert stored["street_name"].notna().all()  # snapped to a Paris street
    assert TRIAGE_TEAM not in set(stored["team"])  # known categories follow their rule


def test_db_upgrade_is_up_to_date_on_secondrun_voirie(started: Started) -> None:
    first, second = started.upgrades.result()
    assert "applied migrations" in _ok(first)
    assert "up to date" in _ok(second)
    assert "applied" not in _ok(second)
