"""The web app on a store holding real Paris reports."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient

from voirie.api.app import create_app
from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.services.pipeline import Pipeline
from voirie.settings import CitySettings, StoreSettings
from voirie.store.base import migrations
from voirie.store.sqlite import SqliteStore

DATA = Path(__file__).parents[1] / "data" / "dansmarue_200.csv"
LATEST = max(version for version, _, _ in migrations("sqlite"))


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, paris: City, paris_gis: CityGIS
) -> Iterator[TestClient]:
    path = tmp_path_factory.mktemp("app") / "voirie.gpkg"
    store = SqliteStore(path)
    store.upgrade()
    Pipeline(paris, store, paris_gis).imports.import_table(read_csv(DATA), DANSMARUE)
    store.close()
    app = create_app(StoreSettings(database_url=f"sqlite:///{path}"), CitySettings(city="paris"))
    with TestClient(app) as test_client:
        yield test_client


def test_healthz(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body == {"status": "ok", "city": "Paris", "store": "sqlite", "schema_version": LATEST}


def test_incidents_geojson_download(client: TestClient) -> None:
    response = client.get("/exports/incidents.geojson")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    collection = json.loads(response.content)
    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    assert 150 <= len(features) <= 200
    assert sum(f["properties"]["report_count"] for f in features) == 200
    first = features[0]
    assert first["geometry"]["type"] == "Point"
    assert {"incident_id", "team", "status", "zone_arrondissement"} <= set(first["properties"])


@pytest.mark.parametrize("fmt", ["gpkg", "csv", "geojson"])
def test_reports_downloads_read_back(client: TestClient, fmt: str, tmp_path: Path) -> None:
    response = client.get(f"/exports/reports.{fmt}")
    assert response.status_code == 200
    target = tmp_path / f"reports.{fmt}"
    target.write_bytes(response.content)
    if fmt == "csv":
        import pandas as pd

        frame = pd.read_csv(io.BytesIO(response.content))
    else:
        frame = gpd.read_file(target)
    assert len(frame) == 200
    assert frame["external_id"].is_unique
    private = {"name", "email", "phone", "device_id", "contact_email"}
    assert not private & set(frame.columns)


def test_dispatch_map_is_served_with_local_assets(client: TestClient) -> None:
    page = client.get("/maps/dispatch", params={"days": 3650}).text
    assert "/static/leaflet.js" in page
    assert "voirie-incident" in page
    assert client.get("/static/leaflet.js").status_code == 200


def test_unknown_export_is_a_clear_error(client: TestClient) -> None:
    response = client.get("/exports/reports.shp")
    assert response.status_code == 422
    assert "fmt" in response.text
