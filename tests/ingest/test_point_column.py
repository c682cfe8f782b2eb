"""A report's position in one column, as portals and GIS tools export it: Opendatasoft's
``geo_point_2d`` (the Paris portal's own DansMaRue export has no latitude/longitude columns),
Socrata's ``(lat, lon)``, QGIS's WKT (here in Lambert-93). Real Paris reports, each form
read back to the positions of the bundled file, through validation, ``voirie city init``
and ``voirie import``.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from clirunner import run_voirie
from pyproj import Transformer

from voirie.city import City, load_city
from voirie.errors import SourceError
from voirie.gis.layers import read_source
from voirie.ingest.digest import raw_digests
from voirie.ingest.mapping import DANSMARUE, OPEN311, ColumnMapping, load_mapping
from voirie.ingest.points import split_points
from voirie.ingest.sources import PROBLEM, ROW, RawTable, read_csv
from voirie.ingest.validate import positions, validate

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
ROWS = 300


@pytest.fixture(scope="module")
def bundled() -> pd.DataFrame:
    """The first ``ROWS`` bundled reports as text."""
    with gzip.open(REPORTS, "rt", encoding="utf-8") as text:
        return pd.read_csv(text, nrows=ROWS, dtype=str, keep_default_na=False)


def _saved(frame: pd.DataFrame, path: Path, **options: str) -> RawTable:
    frame.to_csv(path, index=False, **options)  # type: ignore[arg-type]
    return read_csv(path)


def _expected(bundled: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return bundled["longitude"].astype(float).to_numpy(), bundled["latitude"].astype(
        float
    ).to_numpy()


@pytest.mark.parametrize(
    ("cell", "x", "y"),
    [
        ("48.8699, 2.3493", "2.3493", "48.8699"),  # Opendatasoft CSV: latitude first
        ("(41.88, -87.63)", "-87.63", "41.88"),  # Socrata: latitude first
        ("POINT (2.34 48.86)", "2.34", "48.86"),  # WKT: x first
        ("Point Z (652000.5 6862000 35)", "652000.5", "6862000"),
        ("{'lon': 2.349, 'lat': 48.869}", "2.349", "48.869"),  # the bundled geo_point_2d
        ('{"lat": 48.1, "lng": -1.6}', "-1.6", "48.1"),
        ("48,85, 2,35", "2,35", "48,85"),  # decimal commas: the comma between separates
        ("48,85;2,35", "2,35", "48,85"),
        ("48.85; 2.35", "2.35", "48.85"),
        ("48,2,35", None, None),  # which comma separates: not told
        ("POINT (2.3)", None, None),
        ("nowhere", None, None),
        ("", None, None),
    ],
)
def test_each_form_gives_its_x_and_y(cell: str, x: str | None, y: str | None) -> None:
    xs, ys = split_points(pd.Series([cell, None]))
    assert [None if pd.isna(v) else v for v in (xs[0], ys[0], xs[1], ys[1])] == [x, y, None, None]


def test_the_portal_export_without_latitude_and_longitude_reads_its_geo_point(
    tmp_path: Path, bundled: pd.DataFrame, paris: City
) -> None:
    """The bundled reports (their geo_point_2d as the API gave it), as the Paris portal
    exports them (';', geo_point_2d as 'lat, lon') and as a French spreadsheet saves that
    (decimal commas, 'lat; lon'): the positions of the bundled file."""
    reference = validate(_saved(bundled, tmp_path / "ref.csv"), DANSMARUE, paris).reports
    api = bundled.drop(columns=["latitude", "longitude"])
    portal = api.assign(geo_point_2d=bundled["latitude"] + ", " + bundled["longitude"])
    comma = (
        bundled["latitude"].str.replace(".", ",")
        + "; "
        + bundled["longitude"].str.replace(".", ",")
    )
    spreadsheet = api.assign(geo_point_2d=comma)
    for name, frame, options in (
        ("api", api, {}),
        ("portal", portal, {"sep": ";"}),
        ("spreadsheet", spreadsheet, {"sep": ";"}),
    ):
        valid = validate(_saved(frame, tmp_path / f"{name}.csv", **options), DANSMARUE, paris)
        assert valid.quarantine.empty, name
        pd.testing.assert_frame_equal(valid.reports, reference)


def test_a_qgis_wkt_column_in_lambert93_validates_as_degrees(
    tmp_path: Path, bundled: pd.DataFrame, paris: City
) -> None:
    to_l93 = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True)
    x, y = to_l93.transform(*_expected(bundled))
    frame = bundled.drop(columns=["latitude", "longitude", "geo_point_2d"])
    frame["WKT"] = [f"POINT ({a:.3f} {b:.3f})" for a, b in zip(x, y, strict=True)]
    frame.loc[0, "WKT"] = "LINESTRING (0 0, 1 1)"
    mapping = DANSMARUE.model_copy(update={"lat": None, "lon": None, "point": "WKT"})
    mapping = mapping.model_copy(update={"crs": "EPSG:2154"})
    valid = validate(_saved(frame, tmp_path / "qgis.csv"), mapping, paris)
    assert valid.quarantine[["field", "reason"]].values.tolist() == [
        [
            "WKT",
            "not a point ('lat, lon', '(lat, lon)', 'POINT (lon lat)' or {'lon': x, 'lat': y}): "
            "LINESTRING (0 0, 1 1)",
        ]
    ]
    lon, lat = _expected(bundled)
    assert np.abs(valid.reports["lon"].to_numpy() - lon[1:]).max() < 1e-7
    assert np.abs(valid.reports["lat"].to_numpy() - lat[1:]).max() < 1e-7


def test_positions_are_what_validation_reads(tmp_path: Path, bundled: pd.DataFrame) -> None:
    frame = bundled.drop(columns=["latitude", "longitude"])
    frame.loc[3, "geo_point_2d"] = "somewhere"
    lon, lat = positions(_saved(frame, tmp_path / "p.csv"), DANSMARUE)
    expected_lon, expected_lat = _expected(bundled)
    assert np.isnan(lon[3])
    assert np.isnan(lat[3])
    keep = np.arange(ROWS) != 3
    assert np.abs(lon[keep] - expected_lon[keep]).max() < 1e-12
    assert np.abs(lat[keep] - expected_lat[keep]).max() < 1e-12
    with pytest.raises(SourceError, match=r"no column 'geo_point_2d' \(the mapping's position\)"):
        positions(_saved(frame.drop(columns=["geo_point_2d"]), tmp_path / "q.csv"), DANSMARUE)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("lat: y\n", "give 'lat' and 'lon' together"),
        ("", "give 'lat' and 'lon', or 'point'"),
    ],
)
def test_a_mapping_without_a_whole_position_is_refused(
    tmp_path: Path, keys: str, message: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(f"source: s\nexternal_id: id\nrequested_at: t\nservice_code: c\n{keys}")
    with pytest.raises(SourceError, match=message):
        load_mapping(path)


def test_digests_stored_before_the_point_and_crs_keys_still_match() -> None:
    """A re-import recognises rows by the digest stored with them (``ingest.digest``),
    keyed by the mapping: keys added later, left unset, must not change it, or every row
    stored before would be validated again. These are the digests voirie stored before
    ``crs`` and ``point`` existed (computed then, by the code of 939a3fb)."""
    rows = pd.DataFrame(
        {
            "service_request_id": ["a1"],
            "lat": ["48.85"],
            "long": ["2.35"],
            "requested_datetime": ["2024-01-05T10:00:00+01:00"],
            "service_code": ["x"],
            "description": ["trou"],
            ROW: [1],
            PROBLEM: [None],
        }
    )
    table = RawTable(rows, list(rows.columns))
    custom = ColumnMapping(
        source="s",
        external_id="service_request_id",
        lat="lat",
        lon="long",
        requested_at="requested_datetime",
        service_code="service_code",
    )
    assert raw_digests(table, OPEN311).tolist() == ["4793e351a47189ca"]
    assert raw_digests(table, custom).tolist() == ["1528c1fcc92e4982"]
    with_crs = custom.model_copy(update={"crs": "EPSG:4326"})
    assert raw_digests(table, with_crs).tolist() != ["1528c1fcc92e4982"]
    # DansMaRue names a point column, read only when latitude/longitude are absent.
    paris = read_csv(ROOT / "tests/data/dansmarue_200.csv")
    assert raw_digests(paris, DANSMARUE).tolist()[:3] == [
        "fe3d06afc72daa0d",
        "08694e134129a610",
        "bd1dbc858b15338a",
    ]


def test_city_init_and_import_of_a_socrata_location_column(
    tmp_path: Path, bundled: pd.DataFrame
) -> None:
    """A new city whose export gives positions as '(lat, lon)' only: the drafted territory
    holds every report, and every report imports."""
    frame = bundled.drop(columns=["latitude", "longitude", "geo_point_2d"])
    frame["location"] = "(" + bundled["latitude"] + ", " + bundled["longitude"] + ")"
    frame.to_csv(tmp_path / "r.csv", index=False)
    (tmp_path / "m.yaml").write_text(
        "source: portal\nexternal_id: id_dmr\npoint: location\nrequested_at: datedecl\n"
        "service_name: soustype\ngroup_name: type\naddress: adresse\n",
        encoding="utf-8",
    )
    init = run_voirie(
        tmp_path,
        *("city", "init", "Exemple", "--reports", "r.csv", "--format", "csv"),
        *("--mapping", "m.yaml", "--out", "exemple", "--locale", "fr"),
    )
    assert init.returncode == 0, init.stdout + init.stderr
    city = load_city(tmp_path / "exemple")
    territory = read_source(city.path(city.config.zones[0].path)).to_crs(4326)
    assert shapely.contains_xy(territory.geometry.iloc[0], *_expected(bundled)).all()
    done = run_voirie(
        tmp_path,
        *("import", "r.csv", "--city", "exemple", "--format", "csv", "--mapping", "m.yaml"),
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert f"imported                                 │ {ROWS}" in said, said
