"""Shared by the Open311 tests: the app on a store of each backend holding real Paris data.

The app is the one ``create_app`` builds; its lifespan is replaced by the same
construction (store, pipeline) with the session's Paris GIS, so that each test does not
rebuild the street index (3 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import httpx2
import pytest
from fastapi.testclient import TestClient

from voirie.api.app import create_app
from voirie.api.open311.settings import Open311Settings
from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.services.auth import issue_token
from voirie.services.pipeline import Pipeline
from voirie.settings import CitySettings, StoreSettings
from voirie.store import Store, open_store

DATA = Path(__file__).parents[1] / "data" / "dansmarue_200.csv"
API = "/open311/v2"
# Real DansMaRue reports of tests/data/dansmarue_200.csv and Paris services of city.yaml.
VALMY = {
    "lat": 48.87350463761569,
    "long": 2.363114595220107,
    "address": "91 Quai de Valmy, 75010 PARIS",
}
OBERKAMPF = {
    "lat": 48.86614608645489,
    "long": 2.3800201422199687,
    "address": "126 Rue Oberkampf, 75011 PARIS",
}
CARTONS = "objets-abandonne-3ad329"  # Cartons ou sacs de déchets ménagers
ENCOMBRANTS = "objets-abandonne-b2fab2"  # Autres objets encombrants abandonnés (attributes)
GRAFFITI = "graffitis-tags-a-90f516"  # Graffitis ... sur mur, façade (attribute surface_m2)
ALL_OF_2023 = {"start_date": "2023-07-01T00:00:00+02:00", "end_date": "2023-09-01T00:00:00Z"}
# ``served`` on an sqlite store only, for tests whose subject no backend changes (uploads,
# the OpenAPI contract) and that are long or many.
SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


@dataclass
class Served:
    """A test client on the app, its pipeline and an Open311 client key and staff key."""

    client: TestClient
    pipeline: Pipeline
    client_key: str
    dispatcher_key: str

    @property
    def store(self) -> Store:
        """The app's store."""
        return self.pipeline.store


def serve(
    store_url: str, paris: City, paris_gis: CityGIS, media_dir: Path, *, load: bool = True
) -> Served:
    """The app on ``store_url`` with the 200 real reports loaded (unless ``load=False``)."""
    app = create_app(StoreSettings(database_url=store_url), CitySettings(city="paris"))
    store = open_store(StoreSettings(database_url=store_url, pool_min_size=1, pool_max_size=4))
    store.upgrade()
    pipeline = Pipeline(paris, store, paris_gis)
    if load:
        pipeline.imports.import_table(read_csv(DATA), DANSMARUE)
    app.state.pipeline = pipeline
    app.state.open311_settings = Open311Settings(media_dir=media_dir)
    j = paris.jurisdiction_id
    return Served(
        TestClient(app),
        pipeline,
        issue_token(store, j, "appli-mobile", "client"),
        issue_token(store, j, "back-office", "dispatcher"),
    )


def xml(text: str) -> ET.Element:
    """An XML answer parsed by the standard library, after checking its declaration."""
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?>')
    return ET.fromstring(text.encode("utf-8"))


def assert_error(response: httpx2.Response, status: int, *words: str) -> None:
    """The exact Open311 error shape (JSON or XML, by the request's path), with ``words``
    in its description."""
    assert response.status_code == status, response.text
    if str(response.request.url.path).endswith(".xml"):
        assert response.headers["content-type"].startswith("application/xml")
        root = xml(response.text)
        assert root.tag == "errors"
        errors = [
            {"code": int(e.findtext("code") or 0), "description": e.findtext("description")}
            for e in root
        ]
        assert all([child.tag for child in e] == ["code", "description"] for e in root)
    else:
        assert response.headers["content-type"] == "application/json"
        errors = response.json()
        assert isinstance(errors, list)
        assert all(set(error) == {"code", "description"} for error in errors)
    assert errors
    assert errors[0]["code"] == status
    for word in words:
        assert word in str(errors[0]["description"]), errors
