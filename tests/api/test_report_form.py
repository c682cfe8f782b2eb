"""The report form's API over HTTP: the Open311 rules without an API key, errors naming
the field, the photo rules, one report per Idempotency-Key, private data kept private."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from voirie.api.app import create_app
from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.services.pipeline import Pipeline
from voirie.settings import CitySettings, StoreSettings
from voirie.store.sqlite import SqliteStore

LON, LAT = 2.363114, 48.873504  # Quai de Valmy, 75010
DUMPED = "Autres objets encombrants abandonnés"
PRIVATE = ("Camille Riveraine", "camille.h6@example.org", "+33 6 12 34 56 78")


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, paris: City, paris_gis: CityGIS
) -> Iterator[tuple[TestClient, Pipeline]]:
    """The app over an empty Paris store (photos in the test's folder), and a pipeline on
    the same store."""
    folder = tmp_path_factory.mktemp("form")
    store = SqliteStore(folder / "voirie.gpkg")
    store.upgrade()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("VOIRIE_MEDIA_DIR", str(folder / "media"))
        app = create_app(
            StoreSettings(database_url=f"sqlite:///{folder / 'voirie.gpkg'}"),
            CitySettings(city="paris"),
        )
    with TestClient(app) as client:
        yield client, Pipeline(paris, store, paris_gis)
    store.close()


def _jpeg(size: tuple[int, int] = (640, 480), exif: bool = False) -> bytes:
    image = Image.new("RGB", size, (90, 120, 60))
    out = io.BytesIO()
    if exif:
        tags = Image.Exif()
        tags[0x010F] = "PhoneMaker"  # Make
        tags[0x8825] = {1: "N", 2: (48.0, 52.0, 24.0)}  # GPS: where the reporter stood
        image.save(out, "JPEG", exif=tags)
    else:
        image.save(out, "JPEG")
    return out.getvalue()


def _body(paris: City, **fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "service_code": paris.services_by_name[DUMPED.casefold()].code,
        "lat": LAT,
        "lon": LON,
        "description": "Un matelas contre l'arbre",
        "attributes": {"volume": ["moyen"], "objets": ["matelas"]},
    }
    return {**body, **fields}


def test_a_report_goes_through_the_pipeline_once_per_key(
    world: tuple[TestClient, Pipeline], paris: City
) -> None:
    client, pipeline = world
    name, email, phone = PRIVATE
    body = _body(paris, name=name, email=email, phone=phone)
    first = client.post("/api/v1/reports", json=body, headers={"Idempotency-Key": "form-1"})
    assert first.status_code == 201
    answer = first.json()
    assert answer["tracking_url"].startswith("http://testserver/suivi/")
    again = client.post("/api/v1/reports", json=body, headers={"Idempotency-Key": "form-1"})
    assert again.status_code == 201
    assert again.json()["report_id"] == answer["report_id"]
    assert again.json()["tracking_url"] != answer["tracking_url"]  # a new link, one report
    assert pipeline.reads.count("reports") == 1

    published = client.get(f"/open311/v2/requests/{answer['report_id']}.json")
    assert published.json()[0]["service_code"] == body["service_code"]
    page = client.get(answer["tracking_url"].removeprefix("http://testserver"))
    for text in (published.text, page.text):
        assert not any(value in text for value in PRIVATE)


@pytest.mark.parametrize(
    ("fields", "status", "field"),
    [
        ({"service_code": "nope"}, 400, "service_code"),
        ({"attributes": {}}, 400, "attribute[volume]"),
        ({"attributes": {"volume": ["énorme"]}}, 400, "attribute[volume]"),
        ({"email": "not-an-email"}, 400, "email"),
        ({"photos": ["../../etc/passwd"]}, 400, "photos"),
        ({"photos": ["c" * 64 + ".jpg"]}, 400, "photos"),
        ({"lat": 45.76, "lon": 4.83}, 400, "lat/lon"),  # Lyon: outside the territory
    ],
)
def test_bad_input_names_the_field(
    world: tuple[TestClient, Pipeline],
    paris: City,
    fields: dict[str, object],
    status: int,
    field: str,
) -> None:
    client, _ = world
    response = client.post("/api/v1/reports", json=_body(paris, **fields))
    assert response.status_code == status
    assert response.json()["field"] == field


def test_more_than_three_photos_are_refused(
    world: tuple[TestClient, Pipeline], paris: City
) -> None:
    client, _ = world
    names = [f"{c * 64}.jpg" for c in "abcd"]
    response = client.post("/api/v1/reports", json=_body(paris, photos=names))
    assert response.status_code == 422
    assert "photos" in response.text


def test_photos_get_the_open311_rules(world: tuple[TestClient, Pipeline], paris: City) -> None:
    client, _ = world
    stored = client.post(
        "/api/v1/photos", files={"photo": ("p.jpg", _jpeg(exif=True), "image/jpeg")}
    )
    assert stored.status_code == 201
    photo = stored.json()
    image = Image.open(io.BytesIO(client.get(photo["url"]).content))
    assert image.size == (640, 480)
    assert not image.getexif()  # no camera, no GPS position
    assert client.get(photo["thumbnail_url"]).status_code == 200

    text = client.post("/api/v1/photos", files={"photo": ("p.jpg", b"not an image", "image/jpeg")})
    assert text.status_code == 415
    assert text.json()["field"] == "media"
    huge = client.post(
        "/api/v1/photos", files={"photo": ("p.jpg", b"\xff" * (2 * 1024 * 1024), "image/jpeg")}
    )
    assert huge.status_code == 413
    extra = client.post(
        "/api/v1/photos",
        files={"photo": ("p.jpg", _jpeg(), "image/jpeg")},
        data={"caption": "vue de la rue"},
    )
    assert extra.status_code == 400  # the schema allows no other field (found by fuzzing)
    assert extra.json()["field"] == "caption"

    sent = client.post("/api/v1/reports", json=_body(paris, photos=[photo["name"]]))
    assert sent.status_code == 201
    published = client.get(f"/open311/v2/requests/{sent.json()['report_id']}.json").json()[0]
    assert published["media_url"] == photo["url"]


def test_the_pages_answer_in_both_languages(world: tuple[TestClient, Pipeline]) -> None:
    client, _ = world
    french = client.get("/signaler")
    english = client.get("/signaler?lang=en")
    assert "Signaler un problème" in french.text
    assert "Report a problem" in english.text
    assert "script-src 'self'" in french.headers["content-security-policy"]
    assert client.get("/signaler?lang=de").status_code == 422
    unknown = client.get("/suivi/" + "A" * 43)
    assert unknown.status_code == 404
    assert unknown.json()["field"] == "token"
