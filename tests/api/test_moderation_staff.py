"""Moderation's two known problems (issue 17 item 6), on both storage backends.

- A photo is stored once per picture (its name is its hash): two reports sent with the
  same photo share its file. Hiding it on one report hides it there only; the other
  report still shows it, and the file leaves the public folder once no report shows it.
- The staff case page (``/staff/incidents/{id}``) shows what the citizen sent, with what
  the public sees instead (text hidden or edited, photo hidden), not the moderated text.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from databases import BACKENDS
from PIL import Image
from staffworld import PASSWORD, StaffWorld, signed_in, world_with_photos

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.services.staff_users import add_user

ORIGINAL = "Tag insultant visant le gardien Z-9081"
EDITED = "Tag sur la façade"
REASON = "nomme une personne"
DUMPED = "Autres objets encombrants abandonnés"
PLACES = ((2.363114, 48.873504), (2.3476, 48.8590))  # quai de Valmy, rue de Rivoli: apart


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    paris: City,
    paris_gis: CityGIS,
) -> Iterator[StaffWorld]:
    """The Paris sample served with photos in the test's folder, a dispatcher account."""
    for world in world_with_photos(request, tmp_path_factory, paris, paris_gis):
        store = world.pipeline.store
        add_user(store, paris.jurisdiction_id, "dispatcher", "dispatcher", (), PASSWORD)
        yield world


def _jpeg(colour: tuple[int, int, int] = (30, 90, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), colour).save(out, "JPEG")
    return out.getvalue()


def _send(
    world: StaffWorld, paris: City, key: str, place: tuple[float, float], jpeg: bytes
) -> dict[str, Any]:
    """A report sent with the form, with one photo."""
    client = world.client
    photo = client.post("/api/v1/photos", files={"photo": ("p.jpg", jpeg, "image/jpeg")})
    assert photo.status_code == 201, photo.text
    body = {
        "service_code": paris.services_by_name[DUMPED.casefold()].code,
        "lon": place[0],
        "lat": place[1],
        "description": ORIGINAL,
        "attributes": {"volume": ["moyen"], "objets": ["matelas"]},
        "photos": [photo.json()["name"]],
    }
    answer = client.post("/api/v1/reports", json=body, headers={"Idempotency-Key": key})
    assert answer.status_code == 201, answer.text
    return {**answer.json(), "photo": photo.json()["name"]}


@pytest.fixture(scope="module")
def sent(world: StaffWorld, paris: City) -> list[dict[str, Any]]:
    """Two reports, in two places, sent with the same picture."""
    out = [
        _send(world, paris, f"shared-photo-{k}", place, _jpeg()) for k, place in enumerate(PLACES)
    ]
    assert out[0]["photo"] == out[1]["photo"]  # one file for the two
    return out


def _public_media(world: StaffWorld, report_id: int) -> str | None:
    answer = world.client.get(f"/open311/v2/requests/{report_id}.json")
    assert answer.status_code == 200, answer.text
    media: str | None = answer.json()[0].get("media_url")
    return media


def _hide_photo(world: StaffWorld, report_id: int, name: str) -> None:
    hidden = world.client.post(
        f"/api/v1/moderation/reports/{report_id}",
        json={"hide_photos": [name], "reason": REASON},
        headers=world.headers("dispatcher"),
    )
    assert hidden.status_code == 200, hidden.text


def test_hiding_a_shared_photo_hides_it_on_that_report_only(
    world: StaffWorld, sent: list[dict[str, Any]]
) -> None:
    first, second = sent
    name = first["photo"]
    media = f"/open311/v2/media/{name}"
    assert world.client.get(media).status_code == 200
    assert name in (_public_media(world, second["report_id"]) or "")

    _hide_photo(world, first["report_id"], name)
    assert _public_media(world, first["report_id"]) is None
    # The other report still shows the picture, and its file is still served.
    assert name in (_public_media(world, second["report_id"]) or "")
    served = world.client.get(media)
    assert served.status_code == 200
    assert served.content[:3] == b"\xff\xd8\xff"

    # Hidden on both: no report shows it, the file leaves the public folder.
    _hide_photo(world, second["report_id"], name)
    assert _public_media(world, second["report_id"]) is None
    assert world.client.get(media).status_code == 404
    staff = world.client.get(
        f"/api/v1/moderation/photos/{name}", headers=world.headers("dispatcher")
    )
    assert staff.status_code == 200


def _case_data(world: StaffWorld, who: str, incident_id: int) -> dict[str, Any]:
    client = signed_in(world, who)
    page = client.get(f"/staff/incidents/{incident_id}")
    assert page.status_code == 200, page.text
    found = re.search(r'<script[^>]*id="voirie-data"[^>]*>(.*?)</script>', page.text, re.S)
    assert found is not None
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def test_the_case_page_shows_staff_the_original_and_what_the_public_sees(
    world: StaffWorld, paris: City
) -> None:
    first = _send(world, paris, "case-page", (2.3622, 48.8768), _jpeg((200, 200, 30)))
    edited = world.client.post(
        f"/api/v1/moderation/reports/{first['report_id']}",
        json={
            "text": "edit",
            "description": EDITED,
            "hide_photos": [first["photo"]],
            "reason": REASON,
        },
        headers=world.headers("dispatcher"),
    )
    assert edited.status_code == 200, edited.text
    public = world.client.get(f"/open311/v2/requests/{first['report_id']}.json").json()[0]
    assert public["description"] == EDITED

    data = _case_data(world, "dispatcher", first["incident_id"])
    (report,) = [r for r in data["reports"] if r["report_id"] == first["report_id"]]
    assert report["description"] == ORIGINAL
    assert report["moderation"]["state"] == "edited"
    assert report["moderation"]["public_description"] == EDITED
    assert first["photo"] in report["media_url"]  # what the citizen sent
    assert first["photo"] in report["moderation"]["hidden_photos"]
    assert data["labels"]["edited_text"].startswith("Modifié pour le public")

    # The hidden photo, for the page: any signed-in staff member, nobody else.
    url = f"/staff/photos/{first['photo']}"
    assert world.client.get(url).status_code == 401
    shown = signed_in(world, "dispatcher").get(url)
    assert shown.status_code == 200
    assert shown.content[:3] == b"\xff\xd8\xff"
    thumb = signed_in(world, "dispatcher").get(url.replace(".jpg", ".thumb.jpg"))
    assert thumb.status_code == 200
