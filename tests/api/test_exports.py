"""Downloads on both backends: filters, CRS, formats, streaming and the ``voirie export`` CLI."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely
from clirunner import run_voirie
from databases import BACKENDS
from datafiles import REPORT_COLUMNS
from fastapi.testclient import TestClient
from liveserver import load_reports, loaded_store
from pyproj import Transformer

from voirie.api.app import create_app
from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.maps import export
from voirie.services.pipeline import Pipeline
from voirie.settings import CitySettings, StoreSettings
from voirie.store import open_store
from voirie.store.selection import Selection

PRIVATE = {"name", "email", "phone", "device_id", "contact_name", "contact_email"}


@pytest.fixture(scope="module", params=BACKENDS)
def served(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    paris: City,
    paris_gis: CityGIS,
) -> Iterator[tuple[TestClient, Pipeline]]:
    folder = tmp_path_factory.mktemp("exports")
    with loaded_store(request, folder, paris, paris_gis) as url:
        settings = StoreSettings(database_url=url, pool_min_size=1, pool_max_size=2)
        store = open_store(settings)
        app = create_app(settings, CitySettings(city="paris"), gis=paris_gis)
        try:
            with TestClient(app) as client:
                yield client, Pipeline(paris, store, paris_gis)
        finally:
            store.close()


def csv_rows(client: TestClient, path: str, **params: str) -> pd.DataFrame:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return pd.read_csv(io.BytesIO(response.content))


def test_filters_keep_what_the_selection_keeps(served: tuple[TestClient, Pipeline]) -> None:
    client, pipeline = served
    reports = pipeline.reads.reports()
    team = str(reports["team"].iloc[0])
    zone = str(reports["zone_arrondissement"].iloc[0])
    service = str(reports["service_code"].iloc[0])
    other = sorted(set(map(str, reports["service_code"])) - {service})[0]
    cases = [
        # Freshly imported incidents are all new: a closed status keeps nothing.
        ({"status": "resolved,closed"}, Selection(statuses=("resolved", "closed"))),
        ({"team": team}, Selection(teams=(team,))),
        ({"service": f"{service},{other}"}, Selection(service_codes=(service, other))),
        ({"zone": f"arrondissement:{zone}"}, Selection(zone=("arrondissement", zone))),
        ({"bbox": "2.365,48.855,2.39,48.87"}, Selection(bbox=(2.365, 48.855, 2.39, 48.87))),
        (
            {"start": "2023-08-01", "end": "2023-08-31T23:59:59+02:00"},
            Selection(
                start=pd.Timestamp("2023-08-01", tz="UTC").to_pydatetime(),
                end=pd.Timestamp("2023-08-31T23:59:59+02:00").to_pydatetime(),
            ),
        ),
    ]
    kept = []
    for params, selection in cases:
        expected = pipeline.reads.count("reports", selection)
        assert expected < len(reports), params
        kept.append(expected)
        rows = csv_rows(client, "/exports/reports.csv", **params)
        assert len(rows) == expected, params
        assert sorted(rows["report_id"]) == sorted(pipeline.reads.reports(selection)["report_id"])
    assert kept[0] == 0
    assert all(kept[1:])


def test_csv_in_lambert93_has_x_y_and_wkt(served: tuple[TestClient, Pipeline]) -> None:
    client, _ = served
    rows = csv_rows(client, "/exports/reports.csv", crs="EPSG:2154")
    assert set(REPORT_COLUMNS) <= set(rows.columns)
    assert not PRIVATE & set(rows.columns)
    x, y = Transformer.from_crs(4326, 2154, always_xy=True).transform(rows["lon"], rows["lat"])
    assert (abs(rows["x"] - x) < 0.001).all()
    assert (abs(rows["y"] - y) < 0.001).all()
    points = shapely.from_wkt(rows["wkt"].to_numpy())
    assert (abs(shapely.get_x(points) - rows["x"]) < 0.001).all()
    assert rows["requested_at"].str.endswith("+00:00").all()


def test_geojson_is_streamed_and_names_its_crs(served: tuple[TestClient, Pipeline]) -> None:
    client, pipeline = served
    response = client.get("/exports/incidents.geojson", params={"crs": "EPSG:2154"})
    assert "content-length" not in response.headers  # streamed (chunked), not buffered
    assert response.headers["content-disposition"] == 'attachment; filename="incidents.geojson"'
    body = json.loads(response.content)
    assert body["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::2154"
    assert len(body["features"]) == pipeline.reads.count("incidents", Selection())
    first = body["features"][0]
    assert first["id"] == first["properties"]["incident_id"]
    assert 640_000 < first["geometry"]["coordinates"][0] < 665_000


def test_gpkg_has_datetimes_and_french_titles(
    served: tuple[TestClient, Pipeline], tmp_path: Path
) -> None:
    client, pipeline = served
    path = tmp_path / "incidents.gpkg"
    path.write_bytes(client.get("/exports/incidents.gpkg", params={"status": "new"}).content)
    info = pyogrio.read_info(path, layer="incidents")
    types = dict(zip(info["fields"], info["dtypes"], strict=True))
    assert types["first_reported_at"].startswith("datetime64")
    frame = gpd.read_file(path, layer="incidents")
    assert len(frame) == pipeline.reads.count("incidents", Selection(statuses=("new",)))
    assert str(frame["last_reported_at"].dt.tz) == "UTC"


def test_zipped_shapefile(served: tuple[TestClient, Pipeline], tmp_path: Path) -> None:
    client, pipeline = served
    path = tmp_path / "reports.zip"
    response = client.get("/exports/reports.zip", params={"crs": "EPSG:2154"})
    assert response.headers["content-type"] == "application/zip"
    path.write_bytes(response.content)
    names = zipfile.ZipFile(path).namelist()
    assert {"reports.shp", "reports.dbf", "reports.prj", "reports.shx", "fields.csv"} <= set(names)
    frame = gpd.read_file(f"/vsizip/{path}/reports.shp")
    assert len(frame) == pipeline.reads.count("reports", Selection())
    assert frame.crs.to_epsg() == 2154
    assert all(len(c) <= 10 for c in frame.columns)
    fields = pd.read_csv(io.BytesIO(zipfile.ZipFile(path).read("fields.csv")))
    mapping = dict(zip(fields["column"], fields["shapefile_field"], strict=True))
    assert frame[mapping["zone_arrondissement"]].notna().any()
    assert frame[mapping["external_id"]].is_unique


def test_empty_selection_still_gives_a_valid_file(
    served: tuple[TestClient, Pipeline], tmp_path: Path
) -> None:
    client, _ = served
    path = tmp_path / "none.gpkg"
    nowhere = {"bbox": "0,0,0.001,0.001"}  # in the Gulf of Guinea: no report of Paris
    path.write_bytes(client.get("/exports/reports.gpkg", params=nowhere).content)
    assert len(gpd.read_file(path)) == 0
    body = client.get("/exports/reports.geojson", params=nowhere).json()
    assert body == {"type": "FeatureCollection", "features": []}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"zone": "arrondissement"}, "zone"),
        ({"bbox": "2,48,3"}, "bbox"),
        ({"start": "last week"}, "start"),
        # Outside what a datetime holds once in UTC: was a 500 in the store.
        ({"start": "0001-01-01T00:00:00+01:00"}, "start"),
        ({"end": "9999-12-31T23:59:59-01:00"}, "end"),
        ({"crs": "EPSG:0"}, "crs"),
        # Values the OpenAPI document lists from city.yaml: a typo is named, not an empty file.
        ({"team": "nobody"}, "team"),
        ({"service": "nid-de-poule"}, "service"),
        ({"status": "open"}, "status"),
        ({"zone": "commune:75056"}, "zone"),
        ({"crs": "EPSG:27572"}, "crs"),
    ],
)
def test_bad_filters_name_the_field(
    served: tuple[TestClient, Pipeline], params: dict[str, str], field: str
) -> None:
    client, _ = served
    response = client.get("/exports/reports.csv", params=params)
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_chunks_give_the_same_file_as_one_piece(served: tuple[TestClient, Pipeline]) -> None:
    _, pipeline = served
    chunked = list(export.layer_chunks(pipeline, "reports", chunk_size=30))
    assert len(chunked) > 5
    whole = b"".join(export.geojson_chunks([pipeline.reads.reports()], "report_id"))
    assert b"".join(export.geojson_chunks(chunked, "report_id")) == whole
    csv_whole = b"".join(export.csv_chunks([pipeline.reads.reports()]))
    assert b"".join(export.csv_chunks(chunked)) == csv_whole


def test_cli_export_with_filters_and_crs(tmp_path: Path, paris: City, paris_gis: CityGIS) -> None:
    load_reports(f"sqlite:///{tmp_path / 't.gpkg'}", paris, paris_gis)
    done = run_voirie(
        tmp_path,
        "export",
        "reports",
        "--format",
        "gpkg",
        "-o",
        "new.gpkg",
        "--crs",
        "EPSG:2154",
        "--status",
        "new",
    )
    assert done.returncode == 0, done.stderr
    frame = gpd.read_file(tmp_path / "new.gpkg")
    assert f"wrote {len(frame)} reports" in done.stderr
    assert set(frame["status"]) == {"new"}
    assert frame.crs.to_epsg() == 2154
    assert set(REPORT_COLUMNS) <= set(frame.columns)
    bad = run_voirie(
        tmp_path, "export", "reports", "--format", "csv", "-o", "x.csv", "--zone", "75111"
    )
    assert bad.returncode == 2
    assert "zone: expected layer:code" in bad.stderr


def test_qgis_project_layers_and_styles(served: tuple[TestClient, Pipeline]) -> None:
    client, pipeline = served
    response = client.get("/exports/voirie.qgs")
    assert response.headers["content-type"].startswith("application/x-qgis-project")
    project = ET.fromstring(response.content)
    layers = {e.findtext("id"): e for e in project.iter("maplayer")}
    assert set(layers) == {
        "voirie_incidents_par_statut",
        "voirie_incidents_par_equipe",
        "voirie_signalements",
        "voirie_rues",
        "voirie_zone_arrondissement",
        "voirie_zone_quartier",
        "voirie_zone_espace_vert",
    }
    by_team = layers["voirie_incidents_par_equipe"].find("renderer-v2")
    assert by_team is not None
    assert by_team.get("attr") == "team"
    assert {c.get("value") for c in by_team.iter("category")} >= set(pipeline.city.teams)
    reports = layers["voirie_signalements"]
    aliases = {a.get("field"): a.get("name") for a in reports.iter("alias")}
    assert aliases["requested_at"] == "Date du signalement"
    assert reports.findtext("provider") == "OAPIF"
    source = reports.findtext("datasource") or ""
    assert "url='http://testserver/ogc'" in source
    assert "typename='reports'" in source
    assert project.findtext("projectCrs/spatialrefsys/authid") == "EPSG:2154"
