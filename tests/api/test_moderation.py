"""Moderation (issue 17 item 6): a dispatcher hides a report's text and photo, with an
event saying who and why; then every GET route of the app that answers without a token
(from the app's OpenAPI document, as tests/api/test_privacy.py does) is fetched with this
report's values, and none may show the text or serve the photo; staff still see both.
On both storage backends."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from itertools import product
from typing import Any

import morecantile
import pytest
from databases import BACKENDS
from PIL import Image
from staffworld import StaffWorld, world_with_photos

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.maps.ogc import collections
from voirie.model import EventKind

SECRET = "Texte injurieux XK-4471"
EDITED = "Objets encombrants sur le trottoir"
REASON = "propos injurieux envers un voisin"
LON, LAT = 2.363114, 48.873504  # Quai de Valmy, 75010
DUMPED = "Autres objets encombrants abandonnés"
UNDOCUMENTED = ("/openapi.json", "/docs", "/redoc", "/ogc/")


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    paris: City,
    paris_gis: CityGIS,
) -> Iterator[StaffWorld]:
    """The Paris sample served with photos in the test's folder."""
    yield from world_with_photos(request, tmp_path_factory, paris, paris_gis)


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (200, 40, 40)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture(scope="module")
def sent(world: StaffWorld, paris: City) -> dict[str, Any]:
    """A report sent with the form, its text and photo about to be moderated."""
    client = world.client
    photo = client.post("/api/v1/photos", files={"photo": ("p.jpg", _jpeg(), "image/jpeg")})
    assert photo.status_code == 201, photo.text
    body = {
        "service_code": paris.services_by_name[DUMPED.casefold()].code,
        "lat": LAT,
        "lon": LON,
        "description": SECRET,
        "attributes": {"volume": ["moyen"], "objets": ["matelas"]},
        "photos": [photo.json()["name"]],
    }
    answer = client.post("/api/v1/reports", json=body, headers={"Idempotency-Key": "mod-1"})
    assert answer.status_code == 201, answer.text
    return {**answer.json(), "photo": photo.json()["name"]}


def _tiles(lon: float, lat: float) -> list[dict[str, str]]:
    grid = morecantile.tms.get("WebMercatorQuad")
    return [
        {"z": str(t.z), "x": str(t.x), "y": str(t.y)}
        for t in (grid.tile(lon, lat, zoom) for zoom in (12, 17))
    ]


def _values(world: StaffWorld, sent: dict[str, Any], path: str) -> list[dict[str, str]]:
    """Every combination of path values this test fetches ``path`` with: this report's."""
    names = re.findall(r"{(\w+)}", path)
    tiles = _tiles(LON, LAT)
    if path.startswith("/tiles/"):
        return tiles
    if "{tileMatrix}" in path:
        return [
            {
                "collectionId": "incidents",
                "tileMatrixSetId": "WebMercatorQuad",
                "tileMatrix": t["z"],
                "tileRow": t["y"],
                "tileCol": t["x"],
            }
            for t in tiles
        ]
    token = sent["tracking_url"].rsplit("/", 1)[-1]
    choices: dict[str, list[str]] = {
        "layer": ["incidents", "reports"],
        "fmt": ["json", "xml"] if path.startswith("/open311/") else ["geojson", "gpkg", "csv"],
        "collectionId": list(collections(world.pipeline)),
        "service_code": [world.pipeline.city.services_by_name[DUMPED.casefold()].code],
        "service_request_id": [str(sent["report_id"])],
        "token": [token],
        "name": [sent["photo"], sent["photo"].replace(".jpg", ".thumb.jpg")],
        "incident_id": [str(sent["incident_id"])],
        "tileMatrixSetId": ["WebMercatorQuad"],
        "report_id": [str(sent["report_id"])],
    }
    unknown = [n for n in names if n not in choices and n != "featureId"]
    assert not unknown, f"{path}: no test value for {unknown}; add one to _values"
    combos = [
        dict(zip(names, c, strict=True)) for c in product(*(choices.get(n, [""]) for n in names))
    ]
    if "featureId" not in names:
        return combos
    features = {"incidents": [str(sent["incident_id"])], "reports": [str(sent["report_id"])]}
    return [
        {**c, "featureId": f}
        for c in combos
        if c["collectionId"] in features
        for f in features[c["collectionId"]]
    ]


def _queries(path: str, sent: dict[str, Any]) -> list[dict[str, str]]:
    near = {"lat": str(LAT), "lon": str(LON)}
    if path.startswith("/ogc"):
        return [{}, {"f": "html"}, {"limit": "1000"}]
    if path == "/api/v1/nearby":
        return [{**near, "radius_m": "300"}]
    if path == "/maps/nearby":
        return [near, {**near, "lang": "en"}]
    if path.startswith("/maps/"):
        return [{}, {"lang": "en"}]
    if path == "/open311/v2/requests.{fmt}":
        return [
            {"service_request_id": str(sent["report_id"])},
            {"lat": near["lat"], "long": near["lon"]},
        ]
    if path == "/open311/v2/servicerequestupdates.{fmt}":
        return [{"start_date": "2000-01-01T00:00:00Z"}]
    if path == "/api/v1/geocode":
        return [{"q": "quai de Valmy"}]
    return [{}]


def _public_answers(world: StaffWorld, sent: dict[str, Any]) -> Iterator[tuple[str, int, bytes]]:
    """(url, status, body) of every answer a public GET route gives with this report's
    values."""
    document = world.client.get("/openapi.json").json()
    paths = [p for p, ops in document["paths"].items() if "get" in ops]
    for path in [*paths, *UNDOCUMENTED]:
        for values, query in product(_values(world, sent, path), _queries(path, sent)):
            url = path.format_map(values)
            response = world.client.get(url, params=query)
            if response.status_code in (401, 403):
                continue  # staff only
            assert response.status_code < 500, f"{url} {query}: {response.text[:300]}"
            yield f"{url} {query}", response.status_code, response.content


def test_only_dispatchers_and_admins_moderate(world: StaffWorld, sent: dict[str, Any]) -> None:
    url = f"/api/v1/moderation/reports/{sent['report_id']}"
    body = {"text": "hide", "reason": REASON}
    assert world.client.post(url, json=body).status_code == 401
    for who in ("agent", "gis", "client"):
        assert world.client.post(url, json=body, headers=world.headers(who)).status_code == 403
    missing = world.client.post(url, json={"text": "hide"}, headers=world.headers("dispatcher"))
    assert missing.status_code == 422
    blank = world.client.post(
        url, json={"text": "hide", "reason": " "}, headers=world.headers("dispatcher")
    )
    assert blank.status_code == 400
    assert blank.json()["field"] == "reason"
    foreign = world.client.post(
        url,
        json={"hide_photos": ["a" * 64 + ".jpg"], "reason": REASON},
        headers=world.headers("dispatcher"),
    )
    assert foreign.status_code == 400
    assert foreign.json()["field"] == "hide_photos"


def test_hidden_text_and_photo_are_gone_from_every_public_route(
    world: StaffWorld, sent: dict[str, Any]
) -> None:
    client = world.client
    # Before moderation the text and the photo are public: the sweep below can fail.
    before = [body for _, status, body in _public_answers(world, sent) if status == 200]
    assert any(SECRET.encode() in body for body in before)
    assert any(sent["photo"].encode() in body for body in before)
    photo_url = f"/open311/v2/media/{sent['photo']}"
    assert client.get(photo_url).status_code == 200
    moderated = client.post(
        f"/api/v1/moderation/reports/{sent['report_id']}",
        json={"text": "hide", "hide_photos": [sent["photo"]], "reason": REASON},
        headers=world.headers("dispatcher"),
    )
    assert moderated.status_code == 200, moderated.text
    assert moderated.json()["description"] is None
    assert moderated.json()["media_url"] is None
    checked = []
    for url, status, body in _public_answers(world, sent):
        assert SECRET.encode() not in body, f"{url} shows the hidden text"
        # A refusal may repeat the name it was asked for; an answer never names it.
        assert status == 404 or sent["photo"].encode() not in body, f"{url} names the photo"
        assert body[:3] != b"\xff\xd8\xff", f"{url} serves the hidden photo"
        checked.append(url)
    for expected in (
        "/ogc/collections/reports/items",
        "/exports/reports.gpkg",
        "/open311/v2/requests.xml",
        f"/open311/v2/requests/{sent['report_id']}.json",
        "/api/v1/nearby",
        "/suivi/",
        "/tiles/incidents/17/",
    ):
        assert any(url.startswith(expected) for url in checked), expected
    assert client.get(photo_url).status_code == 404
    # Staff still see what the citizen sent, the photo, and who hid it and why.
    staff = client.get(
        f"/api/v1/moderation/reports/{sent['report_id']}", headers=world.headers("admin")
    ).json()
    assert staff["original_description"] == SECRET
    assert staff["description_state"] == "hidden"
    assert staff["hidden_photos"] == [sent["photo"]]
    kept = client.get(
        f"/api/v1/moderation/photos/{sent['photo']}", headers=world.headers("dispatcher")
    )
    assert kept.status_code == 200
    assert kept.content[:3] == b"\xff\xd8\xff"
    events = world.pipeline.reads.lookup("events", "entity_id", [sent["report_id"]])
    event = events[(events["entity"] == "report") & (events["kind"] == EventKind.MODERATED)]
    assert event["actor"].tolist() == ["dispatcher user"]
    assert REASON in event["reason"].iloc[0]
    assert "text hidden" in event["reason"].iloc[0]


def test_an_edited_text_replaces_the_original_in_public(
    world: StaffWorld, sent: dict[str, Any]
) -> None:
    client = world.client
    edited = client.post(
        f"/api/v1/moderation/reports/{sent['report_id']}",
        json={"text": "edit", "description": EDITED, "reason": REASON},
        headers=world.headers("dispatcher"),
    )
    assert edited.status_code == 200, edited.text
    public = client.get(f"/open311/v2/requests/{sent['report_id']}.json").json()[0]
    assert public["description"] == EDITED
    token = sent["tracking_url"].rsplit("/", 1)[-1]
    page = client.get(f"/suivi/{token}").text
    assert EDITED in page
    assert SECRET not in page
    staff = client.get(
        f"/api/v1/moderation/reports/{sent['report_id']}", headers=world.headers("dispatcher")
    ).json()
    assert staff["original_description"] == SECRET
    assert staff["description_state"] == "edited"
