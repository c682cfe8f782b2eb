"""Paris and Chicago served by one deployment on one store (``VOIRIE_CITIES``), on both
backends: Open311 at the root chosen by ``jurisdiction_id``, everything else under each
city's prefix, and nothing of one city on any route of the other (Open311 GET and POST,
OGC items, tiles, exports, nearby, pages, staff API and staff sessions)."""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from databases import BACKENDS, store_urls
from fastapi.testclient import TestClient
from multicity_world import (
    BOUNDS,
    GRAFFITI_CHICAGO,
    JURISDICTIONS,
    LEXINGTON,
    WINDOWS,
    load_both,
)
from open311_support import CARTONS, VALMY
from PIL import Image
from staffworld import PASSWORD

from voirie.api import app as single
from voirie.api.caching import PRIVATE
from voirie.api.multicity import MultiCity, app_from_env
from voirie.city import City, load_city
from voirie.cityset import CityHost, load_sites
from voirie.errors import CityConfigError
from voirie.gis.enrich import CityGIS
from voirie.settings import ServerSettings, StoreSettings
from voirie.store import Store

# Paris's own address, for the tests of VOIRIE_CITY_HOSTS.
PARIS_HOST = CityHost("paris", "https://signalements.paris.example")


@dataclass
class Deployment:
    """The two-city app, its store, and per city (by prefix) its ids and credentials."""

    client: TestClient
    url: str
    store: Store
    incidents: dict[str, set[int]]
    reports: dict[str, set[int]]
    client_keys: dict[str, str]
    dispatchers: dict[str, str]

    def count(self, table: str, slug: str) -> int:
        """Rows of ``table`` the store holds for the city served under ``slug``."""
        return self.store.count(table, JURISDICTIONS[slug])


def _inside(slug: str, lon: float, lat: float) -> bool:
    west, south, east, north = BOUNDS[slug]
    return west <= lon <= east and south <= lat <= north


def _other(slug: str) -> str:
    return "chicago" if slug == "paris" else "paris"


@pytest.fixture(scope="module")
def chicago() -> City:
    return load_city("chicago")


@pytest.fixture(scope="module")
def chicago_gis(chicago: City) -> CityGIS:
    return CityGIS(chicago)


@pytest.fixture(scope="module", params=BACKENDS)
def deployment(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    paris: City,
    paris_gis: CityGIS,
    chicago: City,
    chicago_gis: CityGIS,
) -> Iterator[Deployment]:
    """Paris and Chicago in one store of the backend, served by one app."""
    folder = tmp_path_factory.mktemp("multicity")
    for url in store_urls(request, request.param, folder):
        loaded = load_both(url, paris, paris_gis, chicago, chicago_gis)
        app = MultiCity(
            StoreSettings(database_url=url, pool_min_size=1, pool_max_size=4),
            load_sites("paris,chicago"),
            gis={"paris": paris_gis, "chicago": chicago_gis},
        )
        with TestClient(app, follow_redirects=False) as client:
            yield Deployment(client, url, app.store(), *loaded)


# --- Open311 at the root, by jurisdiction_id ---------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/open311/v2/discovery"),
        ("GET", "/open311/v2/services"),
        ("GET", "/open311/v2/requests"),
        ("POST", "/open311/v2/requests"),
    ],
)
def test_open311_without_jurisdiction_is_a_400_listing_the_cities(
    deployment: Deployment, method: str, path: str, fmt: str
) -> None:
    body = {"service_code": CARTONS, **VALMY} if method == "POST" else None
    answer = deployment.client.request(method, f"{path}.{fmt}", data=body)
    assert answer.status_code == 400
    assert "jurisdiction_id: required" in answer.text
    assert "'paris.fr' (Paris)" in answer.text
    assert "'chicago.gov' (Chicago)" in answer.text
    assert answer.headers["content-type"].startswith(f"application/{fmt}")


def test_open311_unknown_jurisdiction_is_a_404_listing_the_cities(deployment: Deployment) -> None:
    answer = deployment.client.get("/open311/v2/services.json?jurisdiction_id=lyon.fr")
    assert answer.status_code == 404
    (error,) = answer.json()
    assert "'lyon.fr' is not served here" in error["description"]
    assert "'paris.fr'" in error["description"]
    assert "'chicago.gov'" in error["description"]


def test_open311_services_and_discovery_are_the_named_citys(
    deployment: Deployment, paris: City, chicago: City
) -> None:
    for slug, city in (("paris", paris), ("chicago", chicago)):
        query = f"?jurisdiction_id={JURISDICTIONS[slug]}"
        services = deployment.client.get(f"/open311/v2/services.json{query}")
        assert {s["service_code"] for s in services.json()} == set(city.services)
        discovery = deployment.client.get(f"/open311/v2/discovery.json{query}").json()
        assert city.jurisdiction_id in discovery["contact"]


@pytest.mark.parametrize("slug", ["paris", "chicago"])
def test_open311_get_requests_stays_in_the_named_city(deployment: Deployment, slug: str) -> None:
    client, jurisdiction = deployment.client, JURISDICTIONS[slug]
    own = client.get(
        "/open311/v2/requests.json",
        params={"jurisdiction_id": jurisdiction, **WINDOWS[slug], "page_size": 1000},
    )
    assert own.status_code == 200
    assert len(own.json()) > 20
    for item in own.json():
        if item.get("lat") is not None:
            assert _inside(slug, item["long"], item["lat"]), item
    # The other city's period and its request ids: nothing of it here.
    foreign = client.get(
        "/open311/v2/requests.json",
        params={"jurisdiction_id": jurisdiction, **WINDOWS[_other(slug)]},
    )
    assert foreign.status_code == 200
    assert foreign.json() == []
    theirs = client.get(
        "/open311/v2/requests.json",
        params={"jurisdiction_id": JURISDICTIONS[_other(slug)], **WINDOWS[_other(slug)]},
    ).json()
    one = theirs[0]["service_request_id"]
    assert (
        client.get(f"/open311/v2/requests/{one}.json?jurisdiction_id={jurisdiction}").status_code
        == 404
    )
    found = client.get(
        f"/open311/v2/requests/{one}.json?jurisdiction_id={JURISDICTIONS[_other(slug)]}"
    )
    assert found.status_code == 200


@pytest.mark.parametrize("encoding", ["form", "multipart", "json"])
def test_open311_post_goes_to_the_city_its_body_names(
    deployment: Deployment, encoding: str
) -> None:
    """A POST carrying jurisdiction_id in its body only, as GeoReport v2 clients send it:
    stored in that city, with that city's key, and seen by that city only."""
    client = deployment.client
    fields = {
        "jurisdiction_id": "chicago.gov",
        "api_key": deployment.client_keys["chicago"],
        "service_code": GRAFFITI_CHICAGO,
        "description": f"Tag on a garage door ({encoding})",
        **LEXINGTON,
    }
    before = deployment.count("reports", "chicago"), deployment.count("reports", "paris")
    if encoding == "form":
        answer = client.post("/open311/v2/requests.json", data=fields)
    elif encoding == "multipart":
        parts = {name: (None, value) for name, value in fields.items()}
        answer = client.post("/open311/v2/requests.json", files=parts)
    else:
        answer = client.post("/open311/v2/requests.json", json=fields)
    assert answer.status_code == 201, answer.text
    (created,) = answer.json()
    after = deployment.count("reports", "chicago"), deployment.count("reports", "paris")
    assert after == (before[0] + 1, before[1])
    request_id = created["service_request_id"]
    path = f"/open311/v2/requests/{request_id}.json"
    assert client.get(f"{path}?jurisdiction_id=chicago.gov").status_code == 200
    assert client.get(f"{path}?jurisdiction_id=paris.fr").status_code == 404


def test_a_citys_client_key_is_refused_by_the_other(deployment: Deployment) -> None:
    answer = deployment.client.post(
        "/open311/v2/requests.json",
        data={
            "jurisdiction_id": "chicago.gov",
            "api_key": deployment.client_keys["paris"],
            "service_code": GRAFFITI_CHICAGO,
            **LEXINGTON,
        },
    )
    assert answer.status_code == 403
    assert "api_key" in answer.json()[0]["description"]


def test_open311_under_a_citys_prefix_needs_no_jurisdiction(deployment: Deployment) -> None:
    services = deployment.client.get("/chicago/open311/v2/services.json")
    assert services.status_code == 200
    assert GRAFFITI_CHICAGO in {s["service_code"] for s in services.json()}


# --- Everything else under the city's prefix ----------------------------------------------


def test_the_root_lists_the_cities_and_refuses_unprefixed_paths(deployment: Deployment) -> None:
    client = deployment.client
    listed = client.get("/?f=json").json()["cities"]
    assert [(c["path"], c["jurisdiction_id"]) for c in listed] == [
        ("/paris/", "paris.fr"),
        ("/chicago/", "chicago.gov"),
    ]
    page = client.get("/")
    assert page.status_code == 200
    assert '<html lang="fr">' in page.text
    assert 'href="/paris/"' in page.text
    assert 'href="/chicago/"' in page.text
    assert "cities served" in client.get("/?lang=en").text
    assert "Content-Security-Policy" in page.headers
    refused = client.get("/maps/nearby")
    assert refused.status_code == 404
    assert "/paris/" in refused.json()["detail"]
    assert "/chicago/" in refused.json()["detail"]
    health = client.get("/healthz").json()
    assert [c["jurisdiction_id"] for c in health["cities"]] == ["paris.fr", "chicago.gov"]
    assert client.get("/readyz").status_code == 200
    assert client.get("/paris/healthz").json()["city"] == "Paris"
    assert client.get("/chicago/healthz").json()["city"] == "Chicago"


@pytest.mark.parametrize("slug", ["paris", "chicago"])
@pytest.mark.parametrize("layer", ["incidents", "reports"])
def test_ogc_items_are_the_citys_only(deployment: Deployment, slug: str, layer: str) -> None:
    client = deployment.client
    page = client.get(
        f"/{slug}/ogc/collections/{layer}/items", params={"limit": 1000, "f": "json"}
    ).json()
    assert page["numberMatched"] == deployment.count(layer, slug)
    assert len(page["features"]) == page["numberMatched"]
    for feature in page["features"]:
        lon, lat = feature["geometry"]["coordinates"]
        assert _inside(slug, lon, lat), feature["id"]
    # Links carry the city's prefix.
    assert all(f"/{slug}/ogc/" in link["href"] for link in page["links"])
    if layer == "incidents":
        theirs = min(deployment.incidents[_other(slug)])
        item = client.get(f"/{slug}/ogc/collections/incidents/items/{theirs}?f=json")
        assert item.status_code == 404


def _tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The web-mercator tile holding a point."""
    n = 2**z
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return int((lon + 180) / 360 * n), int(y)


@pytest.mark.parametrize("slug", ["paris", "chicago"])
def test_tiles_hold_the_citys_incidents_only(deployment: Deployment, slug: str) -> None:
    west, south, east, north = BOUNDS[slug]
    x, y = _tile((west + east) / 2, (south + north) / 2, 8)  # the whole city's tile
    own = deployment.client.get(f"/{slug}/tiles/incidents/8/{x}/{y}.mvt")
    assert own.status_code == 200
    assert len(own.content) > 100
    other = deployment.client.get(f"/{_other(slug)}/tiles/incidents/8/{x}/{y}.mvt")
    assert other.status_code in (200, 204)
    assert other.content == b""


@pytest.mark.parametrize("slug", ["paris", "chicago"])
def test_exports_are_the_citys_only(deployment: Deployment, slug: str) -> None:
    client = deployment.client
    rows = list(csv.DictReader(io.StringIO(client.get(f"/{slug}/exports/reports.csv").text)))
    assert len(rows) == deployment.count("reports", slug)
    assert {int(r["report_id"]) for r in rows} >= deployment.reports[slug]
    assert not {int(r["report_id"]) for r in rows} & deployment.reports[_other(slug)]
    located = [r for r in rows if r["lon"]]
    assert located
    assert all(_inside(slug, float(r["lon"]), float(r["lat"])) for r in located)
    layer = client.get(f"/{slug}/exports/incidents.geojson").json()
    ids = {int(f["properties"]["incident_id"]) for f in layer["features"]}
    assert ids >= deployment.incidents[slug]
    assert not ids & deployment.incidents[_other(slug)]
    project = client.get(f"/{slug}/exports/voirie.qgs").text
    assert f"/{slug}/ogc" in project


def test_nearby_answers_the_citys_incidents_only(deployment: Deployment) -> None:
    here = {"lat": VALMY["lat"], "lon": VALMY["long"], "radius_m": 2000}
    paris = deployment.client.get("/paris/api/v1/nearby", params=here)
    assert paris.status_code == 200
    found = {i["incident_id"] for i in paris.json()["incidents"]}
    assert found
    assert found <= deployment.incidents["paris"]
    chicago = deployment.client.get("/chicago/api/v1/nearby", params=here)
    assert chicago.status_code in (200, 400)
    if chicago.status_code == 200:
        assert chicago.json()["incidents"] == []


@pytest.mark.parametrize(
    ("slug", "path"), [("paris", "maps/nearby"), ("chicago", "maps/nearby"), ("paris", "signaler")]
)
def test_pages_are_the_citys_with_links_under_its_prefix(
    deployment: Deployment, slug: str, path: str, paris: City, chicago: City
) -> None:
    client = deployment.client
    page = client.get(f"/{slug}/{path}")
    assert page.status_code == 200
    assert not re.search(r'(src|href)="/(static|maps|signaler|staff)', page.text)
    assets = re.findall(rf'(?:src|href)="(/{slug}/static/[^"?]+)', page.text)
    assert assets
    for asset in set(assets):
        assert client.get(asset).status_code == 200, asset
    other = chicago if slug == "paris" else paris
    assert other.config.name not in page.text


def test_docs_and_private_answers_under_a_prefix(deployment: Deployment) -> None:
    """A city's API documentation reads its own OpenAPI document, and a staff answer
    under the prefix stays out of shared caches as at the root."""
    client = deployment.client
    docs = client.get("/chicago/docs")
    assert docs.status_code == 200
    assert "/chicago/openapi.json" in docs.text
    assert client.get("/chicago/openapi.json").json()["info"]["title"] == "voirie — Chicago"
    bearer = {"Authorization": f"Bearer {deployment.dispatchers['chicago']}"}
    staff = client.get("/chicago/api/v1/incidents", headers=bearer)
    assert staff.status_code == 200
    assert staff.headers["cache-control"] == PRIVATE
    items = client.get("/chicago/ogc/collections/incidents/items?f=json&limit=1")
    assert "public" in items.headers["cache-control"]


# --- Staff: accounts, sessions and tokens are a city's own ---------------------------------


@pytest.mark.parametrize("slug", ["paris", "chicago"])
def test_a_citys_staff_token_reads_that_city_only(deployment: Deployment, slug: str) -> None:
    client = deployment.client
    bearer = {"Authorization": f"Bearer {deployment.dispatchers[slug]}"}
    own = client.get(f"/{slug}/api/v1/incidents", params={"limit": 1000}, headers=bearer)
    assert own.status_code == 200
    ids = {i["incident_id"] for i in own.json()["incidents"]}
    assert ids & deployment.incidents[slug]
    assert not ids & deployment.incidents[_other(slug)]
    theirs = min(deployment.incidents[_other(slug)])
    assert client.get(f"/{slug}/api/v1/incidents/{theirs}", headers=bearer).status_code == 404
    refused = client.get(f"/{_other(slug)}/api/v1/incidents", headers=bearer)
    assert refused.status_code == 401


def test_a_staff_session_is_one_citys(deployment: Deployment) -> None:
    browser = TestClient(deployment.client.app, follow_redirects=False)
    form = browser.get("/paris/staff/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    signed = browser.post(
        "/paris/staff/login",
        data={"name": "dispatch", "password": PASSWORD, "csrf_token": token.group(1)},
    )
    assert signed.status_code == 303
    assert signed.headers["location"] == "/paris/staff/"
    assert "Path=/paris/" in signed.headers["set-cookie"]
    assert browser.get("/paris/staff/").status_code == 200
    away = browser.get("/chicago/staff/")
    assert away.status_code == 303
    assert away.headers["location"].startswith("/chicago/staff/login")


# --- On the public address ------------------------------------------------------------------


def test_public_url_links_carry_each_citys_prefix_and_photos_are_served(
    deployment: Deployment,
    paris_gis: CityGIS,
    chicago_gis: CityGIS,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Behind ``VOIRIE_PUBLIC_URL`` (a proxy serving under ``/villes``): every absolute
    link and redirect on the public address with the city's prefix, whatever ``Host`` the
    client sent; a photo uploaded at the root with its jurisdiction in the form is stored
    in that city's folder and served by that city only."""
    monkeypatch.setenv("VOIRIE_MEDIA_DIR", str(tmp_path / "media"))
    public = "https://voirie.example.org/villes"
    app = MultiCity(
        StoreSettings(database_url=deployment.url, pool_min_size=1, pool_max_size=2),
        load_sites("paris,chicago"),
        ServerSettings(public_url=public),
        gis={"paris": paris_gis, "chicago": chicago_gis},
        hosts=[PARIS_HOST],
    )
    with TestClient(app, base_url="http://attacker.example", follow_redirects=False) as client:
        # On Paris's own host name, its links are on that address, not the public URL's.
        own = {"host": PARIS_HOST.hostname}
        links = client.get("/ogc/collections?f=json", headers=own).json()["links"]
        assert all(link["href"].startswith(f"{PARIS_HOST.url}/ogc") for link in links)
        for slug in ("paris", "chicago"):
            links = client.get(f"/{slug}/ogc/collections?f=json").json()["links"]
            assert links
            assert all(link["href"].startswith(f"{public}/{slug}/ogc") for link in links)
            login = client.get(f"/{slug}/staff/")
            assert login.status_code == 303
            assert login.headers["location"].startswith(f"/villes/{slug}/staff/login")
        discovery = client.get("/open311/v2/discovery.json?jurisdiction_id=chicago.gov")
        (endpoint,) = discovery.json()["endpoints"]
        assert endpoint["url"] == f"{public}/chicago/open311/v2"
        photo = io.BytesIO()
        Image.new("RGB", (640, 480), (90, 120, 200)).save(photo, "JPEG")
        stored = client.post(
            "/open311/v2/media.json",
            data={"jurisdiction_id": "paris.fr", "api_key": deployment.client_keys["paris"]},
            files={"media": ("photo.jpg", photo.getvalue(), "image/jpeg")},
        )
        assert stored.status_code == 201, stored.text
        media_url = stored.json()["media_url"]
        assert media_url.startswith(f"{public}/paris/open311/v2/media/")
        name = media_url.rsplit("/", 1)[1]
        for path in (
            f"/paris/open311/v2/media/{name}",
            f"/open311/v2/media/{name}?jurisdiction_id=paris.fr",
        ):
            served = client.get(path)
            assert served.status_code == 200
            assert served.headers["content-type"] == "image/jpeg"
        assert (tmp_path / "media" / "paris" / name).is_file()
        # Chicago has no such photo, whichever way it is asked; the root needs the city.
        for path in (
            f"/chicago/open311/v2/media/{name}",
            f"/open311/v2/media/{name}?jurisdiction_id=chicago.gov",
        ):
            assert client.get(path).status_code == 404
        assert client.get(f"/open311/v2/media/{name}").status_code == 400
        refused = client.post(
            "/open311/v2/media.json",
            data={"jurisdiction_id": "paris.fr", "api_key": deployment.client_keys["chicago"]},
            files={"media": ("photo.jpg", photo.getvalue(), "image/jpeg")},
        )
        assert refused.status_code == 403


# --- HTTP validators: each city's own change counter ---------------------------------------


def test_a_write_in_one_city_leaves_the_other_citys_validators(deployment: Deployment) -> None:
    """A report posted to Chicago changes Chicago's ETags and not Paris's (migration 0021:
    a change counter per jurisdiction): Paris's conditional GETs still answer 304."""
    client = deployment.client
    pages = {slug: f"/{slug}/ogc/collections/incidents/items?f=json" for slug in JURISDICTIONS}
    tags = {slug: client.get(path).headers["etag"] for slug, path in pages.items()}
    posted = client.post(
        "/open311/v2/requests.json",
        data={
            "jurisdiction_id": "chicago.gov",
            "api_key": deployment.client_keys["chicago"],
            "service_code": GRAFFITI_CHICAGO,
            "description": "Tag on a fence (validators)",
            **LEXINGTON,
        },
    )
    assert posted.status_code == 201, posted.text
    paris = client.get(pages["paris"], headers={"if-none-match": tags["paris"]})
    assert paris.status_code == 304
    chicago = client.get(pages["chicago"], headers={"if-none-match": tags["chicago"]})
    assert chicago.status_code == 200
    assert chicago.headers["etag"] != tags["chicago"]
    # A city never written to reads the store's counter from before migration 0021, below
    # every city's own (their first write started from it): no version is given twice.
    unseen = deployment.store.change_mark("nowhere.example")
    assert all(
        deployment.store.change_mark(j).version > unseen.version for j in JURISDICTIONS.values()
    )


# --- A city at the root of its own host (VOIRIE_CITY_HOSTS) ---------------------------------


def _photo() -> bytes:
    photo = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 120, 90)).save(photo, "JPEG")
    return photo.getvalue()


def test_a_city_host_serves_that_city_alone_at_its_root(
    deployment: Deployment,
    paris_gis: CityGIS,
    chicago_gis: CityGIS,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On Paris's own host name: Open311 without jurisdiction_id, OGC and pages at the
    root, links on the configured address (whatever spelling of the Host came), photos
    there; Chicago's data nowhere, Chicago's jurisdiction refused. Other host names are
    served as before, a photo uploaded at the root getting its city's path."""
    monkeypatch.setenv("VOIRIE_MEDIA_DIR", str(tmp_path / "media"))
    app = MultiCity(
        StoreSettings(database_url=deployment.url, pool_min_size=1, pool_max_size=2),
        load_sites("paris,chicago"),
        gis={"paris": paris_gis, "chicago": chicago_gis},
        hosts=[PARIS_HOST],
    )
    with TestClient(app, follow_redirects=False) as client:
        own = {"host": "Signalements.PARIS.example:8443"}
        services = client.get("/open311/v2/services.json", headers=own)
        assert services.status_code == 200
        assert CARTONS in {s["service_code"] for s in services.json()}
        assert GRAFFITI_CHICAGO not in {s["service_code"] for s in services.json()}
        (endpoint,) = client.get("/open311/v2/discovery.json", headers=own).json()["endpoints"]
        assert endpoint["url"] == f"{PARIS_HOST.url}/open311/v2"
        requests = client.get("/open311/v2/requests.json", params=WINDOWS["paris"], headers=own)
        assert requests.status_code == 200
        assert requests.json()
        assert all(_inside("paris", r["long"], r["lat"]) for r in requests.json())
        chicago = {"jurisdiction_id": "chicago.gov", **WINDOWS["chicago"]}
        assert (
            client.get("/open311/v2/requests.json", params=chicago, headers=own).status_code == 404
        )
        page = client.get("/ogc/collections/incidents/items?f=json&limit=1000", headers=own).json()
        assert page["numberMatched"] == deployment.count("incidents", "paris")
        assert all(link["href"].startswith(f"{PARIS_HOST.url}/ogc/") for link in page["links"])
        assert client.get("/chicago/ogc/collections?f=json", headers=own).status_code == 404
        assert client.get("/staff/", headers=own).headers["location"].startswith("/staff/login")
        assert client.get("/healthz", headers=own).json()["city"] == "Paris"
        stored = client.post(
            "/open311/v2/media.json",
            data={"api_key": deployment.client_keys["paris"]},
            files={"media": ("photo.jpg", _photo(), "image/jpeg")},
            headers=own,
        )
        assert stored.status_code == 201, stored.text
        media_url = stored.json()["media_url"]
        name = media_url.rsplit("/", 1)[1]
        assert media_url == f"{PARIS_HOST.url}/open311/v2/media/{name}"
        assert client.get(f"/open311/v2/media/{name}", headers=own).status_code == 200
        assert client.get(f"/chicago/open311/v2/media/{name}").status_code == 404
        # Any other host name: the deployment as without VOIRIE_CITY_HOSTS.
        assert client.get("/?f=json").json()["cities"][0]["path"] == "/paris/"
        assert client.get("/open311/v2/services.json").status_code == 400
        elsewhere = client.post(
            "/open311/v2/media.json",
            data={"jurisdiction_id": "chicago.gov", "api_key": deployment.client_keys["chicago"]},
            files={"media": ("photo.jpg", _photo(), "image/jpeg")},
        )
        assert elsewhere.status_code == 201, elsewhere.text
        assert elsewhere.json()["media_url"] == f"http://testserver/chicago/open311/v2/media/{name}"
        assert client.get(f"/chicago/open311/v2/media/{name}").status_code == 200
        assert client.get(f"/open311/v2/media/{name}", headers=own).status_code == 200
        assert sorted(p.name for p in (tmp_path / "media").iterdir()) == ["chicago", "paris"]


def test_the_factory_serves_every_city_of_the_environment(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``uvicorn voirie.api.multicity:app_from_env --factory``: the cities and host names
    of ``VOIRIE_CITIES`` and ``VOIRIE_CITY_HOSTS`` on ``VOIRIE_DATABASE_URL``; one city
    named, that city alone at the root. The one-city factory refuses several cities
    rather than serve one of them."""
    monkeypatch.setenv("VOIRIE_DATABASE_URL", deployment.url)
    monkeypatch.setenv("VOIRIE_MEDIA_DIR", str(tmp_path / "media"))
    monkeypatch.setenv("VOIRIE_CITIES", "paris,chicago")
    monkeypatch.setenv("VOIRIE_CITY_HOSTS", f"paris={PARIS_HOST.url}")
    with pytest.raises(CityConfigError, match=r"voirie\.api\.multicity:app_from_env"):
        single.app_from_env()
    with TestClient(app_from_env()) as client:
        assert client.get("/chicago/healthz").json()["city"] == "Chicago"
        own = {"host": PARIS_HOST.hostname}
        assert client.get("/healthz", headers=own).json()["city"] == "Paris"
    monkeypatch.setenv("VOIRIE_CITIES", "chicago")
    monkeypatch.setenv("VOIRIE_CITY_HOSTS", "")
    with TestClient(app_from_env()) as client:
        assert client.get("/healthz").json()["city"] == "Chicago"
