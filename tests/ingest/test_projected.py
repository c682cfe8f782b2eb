"""Reports whose coordinates are in Lambert-93, as French GIS layers are: a GeoJSON saved
by GDAL (what QGIS's "Save as" runs) with its ``crs`` member, and a CSV of X/Y columns
whose mapping names the system. Real Paris reports, converted by pyproj, must read back
where they were, through the reader, validation and the real ``voirie import``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

from tests.clirunner import run_voirie
from voirie.city import City, service_code_for
from voirie.errors import SourceError
from voirie.ingest.mapping import DANSMARUE, load_mapping
from voirie.ingest.sources import read_csv, read_geojson
from voirie.ingest.validate import validate

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
CITY = ROOT / "cities/paris"
ROWS = 400
TO_L93 = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True)
NANODEGREES = 1e-8  # ~1 mm: what a round trip through Lambert-93 may move a point


@pytest.fixture(scope="module")
def reports() -> pd.DataFrame:
    """The first ``ROWS`` bundled reports, with the Open311 service code of each."""
    with gzip.open(REPORTS, "rt", encoding="utf-8") as text:
        frame = pd.read_csv(text, nrows=ROWS, dtype=str, keep_default_na=False)
    frame["service_code"] = [
        service_code_for(g, s) for g, s in zip(frame["type"], frame["soustype"], strict=True)
    ]
    return frame


def _lambert93_geojson(frame: pd.DataFrame, path: Path) -> None:
    """The reports as Open311 point features, saved by GDAL in EPSG:2154 (with ``crs``)."""
    points = gpd.GeoDataFrame(
        {
            "service_request_id": frame["id_dmr"],
            "service_code": frame["service_code"],
            "requested_datetime": frame["datedecl"] + "T09:30:00+01:00",
            "description": frame["soustype"],
        },
        geometry=gpd.points_from_xy(
            frame["longitude"].astype(float), frame["latitude"].astype(float)
        ),
        crs="EPSG:4326",
    )
    points.to_crs("EPSG:2154").to_file(path, driver="GeoJSON", engine="pyogrio")


def test_a_lambert93_geojson_reads_as_longitude_and_latitude(
    tmp_path: Path, reports: pd.DataFrame
) -> None:
    path = tmp_path / "l93.geojson"
    _lambert93_geojson(reports, path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::2154"
    assert saved["features"][0]["geometry"]["coordinates"][0] > 100_000  # metres
    rows = read_geojson(path).rows
    lon, lat = rows["lon"].astype(float).to_numpy(), rows["lat"].astype(float).to_numpy()
    assert np.abs(lon - reports["longitude"].astype(float).to_numpy()).max() < NANODEGREES
    assert np.abs(lat - reports["latitude"].astype(float).to_numpy()).max() < NANODEGREES


def test_a_crs84_or_absent_crs_member_leaves_the_numbers_as_they_are(tmp_path: Path) -> None:
    feature = {"type": "Feature", "properties": {}, "geometry": {"type": "Point"}}
    feature["geometry"]["coordinates"] = [2.35, 48.85]  # type: ignore[index]
    for crs in ({"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}, None):
        data: dict[str, object] = {"type": "FeatureCollection", "features": [feature]}
        if crs is not None:
            data["crs"] = crs
        path = tmp_path / "p.geojson"
        path.write_text(json.dumps(data), encoding="utf-8")
        assert read_geojson(path).rows[["lon", "lat"]].values.tolist() == [["2.35", "48.85"]]


@pytest.mark.parametrize(
    ("crs", "words"),
    [
        ({"type": "name", "properties": {"name": "EPSG:999999"}}, "unknown coordinate"),
        ({"type": "link", "properties": {"href": "http://x"}}, "expected a named system"),
        ("EPSG:2154", "expected a named system"),
    ],
)
def test_a_crs_member_naming_no_known_system_is_refused(
    tmp_path: Path, crs: object, words: str
) -> None:
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [], "crs": crs}))
    with pytest.raises(SourceError, match=rf"bad.geojson: crs: .*{words}"):
        read_geojson(path)


def _lambert93_csv(frame: pd.DataFrame, path: Path) -> None:
    """The reports with X/Y in Lambert-93 in place of their latitude and longitude."""
    x, y = TO_L93.transform(frame["longitude"].astype(float), frame["latitude"].astype(float))
    out = frame.drop(columns=["latitude", "longitude", "service_code"])
    out["x"], out["y"] = [f"{v:.3f}" for v in x], [f"{v:.3f}" for v in y]
    out.loc[0, "x"] = "est"  # a cell that is no number
    out.to_csv(path, index=False)


def test_csv_columns_in_the_mapping_crs_validate_as_degrees(
    tmp_path: Path, reports: pd.DataFrame, paris: City
) -> None:
    path = tmp_path / "l93.csv"
    _lambert93_csv(reports, path)
    mapping = DANSMARUE.model_copy(update={"lon": "x", "lat": "y", "crs": "EPSG:2154"})
    valid = validate(read_csv(path), mapping, paris)
    assert valid.quarantine[["field", "reason"]].values.tolist() == [["x", "not a number: est"]]
    expected = reports.iloc[1:]
    found = valid.reports.set_index("external_id").loc[expected["id_dmr"]]
    assert np.abs(found["lon"].to_numpy() - expected["longitude"].astype(float)).max() < 1e-7
    assert np.abs(found["lat"].to_numpy() - expected["latitude"].astype(float)).max() < 1e-7


def test_an_infinite_coordinate_is_refused_before_conversion(
    tmp_path: Path, reports: pd.DataFrame, paris: City
) -> None:
    first = reports.iloc[0]
    path = tmp_path / "inf.csv"
    path.write_text(
        f"id_dmr,type,soustype,datedecl,x,y\nA1,{first['type']},{first['soustype']},"
        "2024-01-05,652000,1e400\n",
        encoding="utf-8",
    )
    mapping = DANSMARUE.model_copy(update={"lon": "x", "lat": "y", "crs": "EPSG:2154"})
    quarantine = validate(read_csv(path), mapping, paris).quarantine
    assert quarantine[["field", "reason"]].values.tolist() == [["y", "not a finite number"]]


def test_a_mapping_naming_an_unknown_crs_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "source: s\nexternal_id: id\nlat: y\nlon: x\nrequested_at: t\nservice_code: c\n"
        "crs: Lambert-99\n",
        encoding="utf-8",
    )
    with pytest.raises(SourceError, match=r"--mapping .*m.yaml: crs: .*Lambert-99"):
        load_mapping(path)


def test_voirie_import_of_a_lambert93_layer_stores_the_points_in_degrees(
    tmp_path: Path, reports: pd.DataFrame
) -> None:
    """QGIS's Lambert-93 export, imported and exported again: the same points, every one
    snapped (inside the city), in WGS 84 in the export as the bundled file has them."""
    _lambert93_geojson(reports, tmp_path / "l93.geojson")
    imported = run_voirie(
        tmp_path, "import", "l93.geojson", "--city", str(CITY), "--format", "geojson"
    )
    said = imported.stdout + imported.stderr
    assert imported.returncode == 0, said
    assert f"imported                                 │ {ROWS}" in said, said
    exported = run_voirie(
        tmp_path, "export", "reports", "--city", str(CITY), "--format", "csv", "-o", "out.csv"
    )
    assert exported.returncode == 0, exported.stdout + exported.stderr
    out = pd.read_csv(tmp_path / "out.csv").set_index("external_id").loc[reports["id_dmr"]]
    assert np.abs(out["lon"].to_numpy() - reports["longitude"].astype(float)).max() < 1e-7
    assert np.abs(out["lat"].to_numpy() - reports["latitude"].astype(float)).max() < 1e-7
    assert out["segment_id"].notna().mean() > 0.95, out["segment_id"].isna().sum()


def test_a_point_layer_written_as_multipoints_reads_its_points(
    tmp_path: Path, reports: pd.DataFrame
) -> None:
    """GDAL writes a Shapefile's point layer as MultiPoint features of one point: each is
    that point; a MultiPoint of two points or a polygon is refused, naming the geometry."""
    path = tmp_path / "multi.geojson"
    points = gpd.GeoDataFrame(
        {"service_request_id": reports["id_dmr"].iloc[:3]},
        geometry=gpd.points_from_xy(
            reports["longitude"].astype(float).iloc[:3], reports["latitude"].astype(float).iloc[:3]
        ),
        crs="EPSG:4326",
    )
    points["geometry"] = [shapely.MultiPoint([p]) for p in points.geometry]
    points.loc[2, "geometry"] = shapely.MultiPoint([(2.3, 48.8), (2.4, 48.9)])
    points.to_file(path, driver="GeoJSON", engine="pyogrio")
    assert '"MultiPoint"' in path.read_text(encoding="utf-8")
    rows = read_geojson(path).rows
    assert rows["lon"].iloc[:2].astype(float).tolist() == pytest.approx(
        reports["longitude"].astype(float).iloc[:2].tolist(), abs=1e-12
    )
    assert rows["_problem"].tolist() == [
        None,
        None,
        "geometry: not a GeoJSON Point (nor a MultiPoint of one point)",
    ]


def test_a_feature_id_is_a_column_unless_a_property_has_that_name(tmp_path: Path) -> None:
    """RFC 7946 puts a feature's identifier beside its properties: it reads as column
    ``id`` (text, as every cell), which a mapping may name as the external id."""
    point = {"type": "Point", "coordinates": [2.35, 48.85]}
    features = [
        {"type": "Feature", "id": 17, "properties": {"a": "x"}, "geometry": point},
        {"type": "Feature", "id": "B-2", "properties": {"a": "y"}, "geometry": point},
        {"type": "Feature", "id": 3, "properties": {"id": "own"}, "geometry": point},
        {"type": "Feature", "properties": {"a": "z"}, "geometry": point},
    ]
    path = tmp_path / "ids.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    assert read_geojson(path).rows["id"].tolist() == ["17", "B-2", "own", ""]
