"""The case page shows staff what the citizen sent, marked with what the public sees
instead (issue 17 item 6), in Chromium: a report's text and photo are hidden through the
moderation API, then the dispatcher's case page shows the original text with "Texte masqué
au public", and the photo (served to staff from the hidden folder) with "Photo masquée au
public"; in English with ``?lang=en``."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import httpx2
import pytest
from browsing import LiveApp, offline
from living import PASSWORD, sign_in_page
from PIL import Image

from voirie.services.auth import Role, issue_token
from voirie.services.staff_users import add_user

if TYPE_CHECKING:
    from playwright.sync_api import Browser

NAME = "Modeste Modération"
ORIGINAL = "Matelas devant le 12, le voisin Paul D. l'a jeté"
DUMPED = "Autres objets encombrants abandonnés"
MARKS = {
    "fr": ("Texte masqué au public", "Photo masquée au public"),
    "en": ("Text hidden from the public", "Photo hidden from the public"),
}


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (60, 160, 60)).save(out, "JPEG")
    return out.getvalue()


@pytest.mark.browser
def test_the_case_page_shows_the_original_and_marks_what_is_hidden(
    browser: Browser, live_app: LiveApp
) -> None:
    pipeline = live_app.pipeline
    city = pipeline.city
    add_user(pipeline.store, city.jurisdiction_id, NAME, "dispatcher", (), PASSWORD)
    token = issue_token(pipeline.store, city.jurisdiction_id, NAME, Role.DISPATCHER, [])
    with httpx2.Client(base_url=live_app.base) as http:
        photo = http.post("/api/v1/photos", files={"photo": ("p.jpg", _jpeg(), "image/jpeg")})
        assert photo.status_code == 201, photo.text
        name = photo.json()["name"]
        sent = http.post(
            "/api/v1/reports",
            json={
                "service_code": city.services_by_name[DUMPED.casefold()].code,
                "lat": 48.8790,
                "lon": 2.3560,
                "description": ORIGINAL,
                "attributes": {"volume": ["moyen"], "objets": ["matelas"]},
                "photos": [name],
            },
            headers={"Idempotency-Key": "case-moderation"},
        )
        assert sent.status_code == 201, sent.text
        report_id, incident_id = sent.json()["report_id"], sent.json()["incident_id"]
        hidden = http.post(
            f"/api/v1/moderation/reports/{report_id}",
            json={"text": "hide", "hide_photos": [name], "reason": "nomme un voisin"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert hidden.status_code == 200, hidden.text
        assert http.get(f"/open311/v2/media/{name}").status_code == 404  # gone from public

    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    watch = offline(page)
    target = f"/staff/incidents/{incident_id}"
    sign_in_page(page, live_app.base, NAME, target)
    for lang in ("fr", "en"):
        if lang == "en":
            page.goto(f"{live_app.base}{target}?lang=en")
        item = page.locator("#voirie-reports li", has_text=f"#{report_id} ")
        item.wait_for()
        text = item.inner_text()
        assert ORIGINAL in text
        for mark in MARKS[lang]:
            assert mark in text, (lang, text)
        thumbnail = item.locator("img")
        thumbnail.scroll_into_view_if_needed()  # the thumbnails load lazily
        loaded = "img => img.complete && img.naturalWidth > 0"
        page.wait_for_function(loaded, arg=thumbnail.element_handle())
        assert f"/staff/photos/{name.removesuffix('.jpg')}.thumb.jpg" in (
            thumbnail.get_attribute("src") or ""
        )
    assert not watch.errors, watch.errors
    assert not watch.blocked, watch.blocked
    context.close()
