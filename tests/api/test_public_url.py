"""``VOIRIE_PUBLIC_URL``: a forged ``Host`` header never ends up in an absolute URL.

Every answer that carries absolute URLs (OGC API documents, TileJSON, the QGIS project,
Open311 discovery and ``media_url``, the framework's trailing-slash redirects, the
OpenAPI document and the pages) is asked for with ``Host: evil.example``; the forged host
must appear in no body and no header, and the links must be on the configured address.
Without the setting, links follow the request's address (the documented behaviour).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from voirie.api.app import create_app
from voirie.api.open311.settings import Open311Settings
from voirie.api.public_url import parse_public_url
from voirie.city import City
from voirie.errors import InvalidInput
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.services.auth import issue_token
from voirie.services.pipeline import Pipeline
from voirie.settings import CitySettings, ServerSettings, StoreSettings
from voirie.store import Store, open_store

DATA = Path(__file__).parents[1] / "data" / "dansmarue_200.csv"
FORGED = "evil.example"
PUBLIC = "https://voirie.example.org/carto"
GETS = (
    "/ogc",
    "/ogc/conformance/",  # redirected by the framework to /ogc/conformance
    "/ogc/conformance",
    "/ogc/collections",
    "/ogc/collections/incidents",
    "/ogc/collections/incidents/items?limit=3",
    "/ogc/collections/reports/items?limit=3",
    "/ogc?f=html",
    "/tiles/incidents.json",
    "/exports/voirie.qgs",
    "/open311/v2/discovery.json",
    "/open311/v2/discovery.xml",
    "/openapi.json",
    "/docs",
    "/maps/dispatch",
    "/maps/nearby",
)


@pytest.fixture(scope="module")
def store(
    tmp_path_factory: pytest.TempPathFactory, paris: City, paris_gis: CityGIS
) -> Iterator[Store]:
    """An sqlite store with the 200 real Paris reports (URLs do not depend on the backend)."""
    folder = tmp_path_factory.mktemp("public-url")
    opened = open_store(StoreSettings(database_url=f"sqlite:///{folder / 'v.gpkg'}"))
    opened.upgrade()
    Pipeline(paris, opened, paris_gis).imports.import_table(read_csv(DATA), DANSMARUE)
    yield opened
    opened.close()


def _client(
    store: Store, paris: City, paris_gis: CityGIS, media: Path, public_url: str | None
) -> TestClient:
    app = create_app(
        StoreSettings(database_url="sqlite:///unused.gpkg"),
        CitySettings(city="paris"),
        ServerSettings(public_url=public_url),
    )
    app.state.pipeline = Pipeline(paris, store, paris_gis)
    app.state.open311_settings = Open311Settings(media_dir=media)
    return TestClient(app, base_url="http://testserver")


def _photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 200)).save(out, "JPEG")
    return out.getvalue()


def test_a_forged_host_never_appears_in_any_answer(
    store: Store, paris: City, paris_gis: CityGIS, tmp_path: Path
) -> None:
    client = _client(store, paris, paris_gis, tmp_path / "media", PUBLIC)
    forged = {"Host": FORGED}
    seen_public = []
    for path in GETS:
        answer = client.get(path, headers=forged, follow_redirects=False)
        assert answer.status_code < 400, (path, answer.status_code, answer.text[:300])
        assert FORGED not in answer.text, path
        assert not any(FORGED in value for value in answer.headers.values()), path
        if PUBLIC in answer.text or PUBLIC in answer.headers.get("location", ""):
            seen_public.append(path)
    redirect = client.get("/ogc/conformance/", headers=forged, follow_redirects=False)
    assert redirect.status_code == 307
    assert redirect.headers["location"] == f"{PUBLIC}/ogc/conformance"
    # The links voirie writes itself carry the configured address, path included.
    for path in ("/ogc", "/ogc/collections", "/tiles/incidents.json", "/exports/voirie.qgs"):
        assert path in seen_public, path

    key = issue_token(store, paris.jurisdiction_id, "appli-mobile", "client")
    upload = client.post(
        "/open311/v2/media.json",
        headers=forged,
        data={"api_key": key},
        files={"media": ("photo.jpg", _photo(), "image/jpeg")},
    )
    assert upload.status_code == 201, upload.text
    stored = upload.json()
    assert stored["media_url"].startswith(f"{PUBLIC}/open311/v2/media/")
    assert stored["thumbnail_url"].startswith(f"{PUBLIC}/open311/v2/media/")
    assert FORGED not in upload.text


def test_without_the_setting_links_follow_the_request_address(
    store: Store, paris: City, paris_gis: CityGIS, tmp_path: Path
) -> None:
    client = _client(store, paris, paris_gis, tmp_path / "media", None)
    tilejson = client.get("/tiles/incidents.json", headers={"Host": "carto.ville.fr"}).json()
    assert tilejson["tiles"] == ["http://carto.ville.fr/tiles/incidents/{z}/{x}/{y}.mvt"]


@pytest.mark.parametrize(
    "bad", ["voirie.example.org", "ftp://voirie.example.org", "https://", "https://a.org/?x=1"]
)
def test_a_public_url_that_is_not_an_http_address_is_refused(bad: str) -> None:
    with pytest.raises(InvalidInput, match="VOIRIE_PUBLIC_URL"):
        parse_public_url(bad)
    assert parse_public_url("https://voirie.example.org/carto/") == PUBLIC
