"""The citizen API and pages over HTTP, on a store holding the 200 real Paris reports."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from voirie.api.app import create_app
from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.model import Status
from voirie.services.pipeline import Pipeline
from voirie.settings import CitySettings, StoreSettings
from voirie.store.selection import Selection
from voirie.store.sqlite import SqliteStore

DATA = Path(__file__).parents[1] / "data" / "dansmarue_200.csv"
EMAIL = "riveraine.h4@example.org"


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, paris: City, paris_gis: CityGIS
) -> Iterator[tuple[TestClient, Pipeline]]:
    """The app, and a pipeline on the same store to look behind it."""
    path = tmp_path_factory.mktemp("citizen") / "voirie.gpkg"
    store = SqliteStore(path)
    store.upgrade()
    pipeline = Pipeline(paris, store, paris_gis)
    pipeline.imports.import_table(read_csv(DATA), DANSMARUE)
    app = create_app(StoreSettings(database_url=f"sqlite:///{path}"), CitySettings(city="paris"))
    with TestClient(app) as client:
        yield client, pipeline
    store.close()


@pytest.fixture
def client(world: tuple[TestClient, Pipeline]) -> TestClient:
    return world[0]


def _open_incident(pipeline: Pipeline) -> dict[str, object]:
    incidents = pipeline.reads.incidents(Selection(statuses=(Status.NEW.value,), limit=1))
    row: dict[str, object] = incidents.iloc[0].to_dict()
    return row


def test_nearby_lists_open_incidents_with_distance_and_age(
    world: tuple[TestClient, Pipeline],
) -> None:
    client, pipeline = world
    incident = _open_incident(pipeline)

    response = client.get(
        "/api/v1/nearby",
        params={"lat": incident["lat"], "lon": incident["lon"], "radius_m": 1500},
    )

    assert response.status_code == 200
    body = response.json()
    found = body["incidents"]
    assert found[0]["incident_id"] == incident["incident_id"]
    assert [f["distance_m"] for f in found] == sorted(f["distance_m"] for f in found)
    assert {"service_name", "status", "age_days", "supporters", "report_count"} <= set(found[0])
    assert all(f["distance_m"] <= 1500 for f in found)


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"lat": 48.86, "lon": 2.35, "radius_m": 5000}, 400, "radius_m"),
        ({"lat": 91, "lon": 2.35}, 400, "lat"),
        ({"lat": 48.86, "lon": -200}, 400, "lon"),
        ({"lat": "nord", "lon": 2.35}, 422, "lat"),
        ({"lon": 2.35}, 422, "lat"),
    ],
)
def test_nearby_bad_input_names_the_field(
    client: TestClient, params: dict[str, object], status: int, field: str
) -> None:
    response = client.get("/api/v1/nearby", params=params)
    assert response.status_code == status
    assert field in response.text


@pytest.mark.parametrize("lat", [90, -90, 89.9999])
def test_nearby_far_from_the_city_is_empty_even_at_a_pole(client: TestClient, lat: float) -> None:
    # Found by random fuzzing: at a pole the nearest-first search's local metric was not
    # finite (a RuntimeWarning, an error under this suite's warning filter).
    answer = client.get("/api/v1/nearby", params={"lat": lat, "lon": 0, "radius_m": 500})
    assert answer.status_code == 200
    assert (answer.json()["total"], answer.json()["incidents"]) == (0, [])


def test_me_too_end_to_end_and_emails_stay_private(world: tuple[TestClient, Pipeline]) -> None:
    client, pipeline = world
    incident_id = int(str(_open_incident(pipeline)["incident_id"]))
    url = f"/api/v1/incidents/{incident_id}/supporters"

    first = client.post(url, json={"email": EMAIL})
    again = client.post(url, json={"email": EMAIL.upper()})
    anonymous = client.post(url)
    same_device = client.post(url)
    other_browser = client.post(url, headers={"User-Agent": "Firefox/140"})

    assert (same_device.json()["counted"], other_browser.json()["counted"]) == (False, True)
    assert first.status_code == 201
    assert first.json() == {
        "incident_id": incident_id,
        "supporters": 1,
        "counted": True,
        "following": True,
    }
    assert again.json()["counted"] is False
    assert anonymous.json()["supporters"] == 2
    stored = pipeline.reads.incidents(Selection(ids=(incident_id,))).iloc[0]
    assert stored["supporters"] == 3
    public = [
        client.get("/api/v1/nearby", params={"lat": stored["lat"], "lon": stored["lon"]}).text,
        client.get("/exports/incidents.geojson").text,
        client.get("/maps/dispatch", params={"days": 3650}).text,
    ]
    assert not any("riveraine" in text.lower() for text in public)


def test_me_too_refuses_unknown_and_closed_incidents(world: tuple[TestClient, Pipeline]) -> None:
    client, pipeline = world
    unknown = client.post("/api/v1/incidents/987654/supporters", json={})
    assert unknown.status_code == 404
    assert unknown.json()["field"] == "incident_id"

    incident_id = int(str(_open_incident(pipeline)["incident_id"]))
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        uow.incidents.update(incident_id, {"status": Status.CLOSED.value})
    closed = client.post(f"/api/v1/incidents/{incident_id}/supporters", json={})
    assert closed.status_code == 409
    assert f"incident {incident_id} is closed" in closed.json()["detail"]
    assert "report it again" in closed.json()["detail"]


def test_follow_and_unfollow(world: tuple[TestClient, Pipeline]) -> None:
    client, pipeline = world
    url = f"/api/v1/incidents/{_open_incident(pipeline)['incident_id']}/followers"

    assert client.post(url, json={"email": EMAIL}).json()["changed"] is True
    assert client.post(url, json={"email": EMAIL}).json()["changed"] is False
    gone = client.request("DELETE", url, json={"email": EMAIL})
    assert gone.json() == {
        "incident_id": int(url.split("/")[4]),
        "following": False,
        "changed": True,
    }
    bad = client.post(url, json={"email": "pas une adresse"})
    assert (bad.status_code, bad.json()["field"]) == (400, "email")
    missing = client.post(url, json={})
    assert missing.status_code == 422
    assert "email" in missing.text


def test_geocode_finds_a_street_by_address(client: TestClient) -> None:
    response = client.get("/api/v1/geocode", params={"q": "12 r. de Rivoli, 75004 Paris"})
    assert response.status_code == 200
    best = response.json()["matches"][0]
    assert best["street_name"] == "Rue de Rivoli"
    assert best["exact"] is True
    assert 2.32 < best["lon"] < 2.37
    assert 48.85 < best["lat"] < 48.87

    nothing = client.get("/api/v1/geocode", params={"q": "Allée des Nuages Roses"})
    assert nothing.status_code == 404
    assert nothing.json()["field"] == "q"


@pytest.mark.parametrize("path", ["/maps/nearby", "/maps/nearby?lang=en", "/maps/dispatch"])
def test_pages_load_only_local_assets(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert "script-src 'self';" in response.headers["content-security-policy"]
    page = response.text
    assets = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', page)
    assert assets
    assert all(a.startswith(("/static/", "data:")) for a in assets), assets
    for asset in assets:
        if asset.startswith("/static/"):
            assert client.get(asset).status_code == 200, asset


def test_pages_refuse_bad_parameters(client: TestClient) -> None:
    unknown_team = client.get("/maps/dispatch", params={"team": "NOBODY"})
    assert (unknown_team.status_code, unknown_team.json()["field"]) == (400, "team")
    half_point = client.get("/maps/nearby", params={"lat": 48.86})
    assert (half_point.status_code, half_point.json()["field"]) == (400, "lon")
