"""The report form and the tracking page in Chromium on a phone, offline, end to end.

A citizen on the Quai de Valmy (75010) reports a street light out with a photo: the report
is stored, snapped, routed to a team, published by Open311 and on the dispatch map, and its
private tracking link works. Another, about dumped furniture where an open incident of the
same group already is, is shown that incident first and says "Moi aussi" instead.
"""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from browsing import LAT, LON, LiveApp, offline, phone, screenshot
from PIL import Image

from voirie.api.report_form import FORM_SOURCE, MAX_SIDE_PX
from voirie.city import City
from voirie.maps.report_form import categories
from voirie.model import Contact, Report, Status
from voirie.services import tracking, workflow
from voirie.services.auth import Principal, Role
from voirie.services.intake import Retry
from voirie.store.selection import Selection

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

LIGHT_OUT = "Éclairage public éteint la nuit"
DUMPED = "Autres objets encombrants abandonnés"
EMAIL = "habitante@example.org"
FOLLOWER = "gardien@example.org"
_DATA = re.compile(r'<script type="application/json" id="voirie-data">(.*?)</script>', re.S)


def _photo(folder: Path) -> Path:
    """A camera-sized JPEG (3000 x 2000, noisy like a real photo): more than the form
    sends, so the browser has to make it smaller."""
    rng = np.random.default_rng(17)
    gradient = np.linspace(0, 255, 3000, dtype=float)[None, :, None]
    pixels = np.clip(gradient + rng.normal(0, 40, (2000, 3000, 3)), 0, 255).astype(np.uint8)
    path = folder / "lampadaire.jpg"
    Image.fromarray(pixels).save(path, "JPEG", quality=92)
    return path


def _open_form(page: Page, live_app: LiveApp, lang: str = "fr") -> None:
    page.goto(f"{live_app.base}/signaler?lang={lang}")
    page.wait_for_selector("#voirie-map[data-ready=true]")


def _service_code(live_app: LiveApp, name: str) -> str:
    return live_app.pipeline.city.services_by_name[name.casefold()].code


def _group_near(live_app: LiveApp, group: str) -> list[int]:
    """Open incidents of a service group within the form's radius of the Quai de Valmy."""
    city = live_app.pipeline.city
    open_statuses = tuple(s.value for s in Status if s.is_open)
    found, _ = live_app.pipeline.reads.nearby_records(
        LON, LAT, 200, Selection(statuses=open_statuses), datetime.now(UTC)
    )
    return [
        int(str(row["incident_id"]))
        for row in found
        if city.services[str(row["service_code"])].group == group
    ]


def test_categories_are_the_citys_services_grouped_with_their_questions(paris: City) -> None:
    groups = categories(paris)
    assert [g["code"] for g in groups] == list(
        dict.fromkeys(s.group for s in paris.config.services)
    )
    listed = [s["code"] for g in groups for s in g["services"]]
    assert sorted(listed) == sorted(paris.services)  # each service once, none left out
    dumped = next(
        s
        for g in groups
        for s in g["services"]
        if s["code"] == paris.services_by_name[DUMPED.casefold()].code
    )
    volume = dumped["attributes"][0]
    assert (volume["code"], volume["datatype"], volume["required"]) == (
        "volume",
        "singlevaluelist",
        True,
    )
    assert [v["key"] for v in volume["values"]] == ["petit", "moyen", "grand"]


@pytest.mark.browser
def test_full_report_with_photo_end_to_end(
    browser: Browser, live_app: LiveApp, tmp_path: Path
) -> None:
    city = live_app.pipeline.city
    code = _service_code(live_app, LIGHT_OUT)
    assert _group_near(live_app, city.services[code].group) == []  # nothing to show first
    context = phone(browser)
    page = context.new_page()
    watch = offline(page)
    _open_form(page, live_app)

    page.click("#voirie-locate")
    page.wait_for_selector("#voirie-map[data-pinned=true]")
    assert "votre position" in page.inner_text("#voirie-place")
    page.fill("#voirie-category-search", "eclairage eteint")  # words, without accents
    assert page.input_value("#voirie-service") == code  # the only match is chosen
    assert "1 catégorie" in page.inner_text("#voirie-category-count")
    page.fill("#voirie-description", "Lampadaire éteint depuis trois nuits, côté canal")
    page.set_input_files("#voirie-photos", str(_photo(tmp_path)))
    page.wait_for_selector("#voirie-photo-list[data-count='1']")
    page.fill("#voirie-email", EMAIL)
    screenshot(page, "signaler-phone")
    page.click("#voirie-send")
    page.wait_for_selector("#voirie-done:not([hidden])")

    done = page.locator("#voirie-done")
    report_id = int(done.get_attribute("data-report") or 0)
    incident_id = int(done.get_attribute("data-incident") or 0)
    assert f"problème n° {incident_id}" in done.inner_text()
    assert page.evaluate("document.activeElement.id") == "voirie-done-title"

    # Open311 publishes it, with its photo and without the reporter's email.
    answer = page.request.get(f"{live_app.base}/open311/v2/requests/{report_id}.json")
    assert answer.ok
    assert EMAIL not in answer.text()
    (request,) = answer.json()
    assert request["service_code"] == code
    assert request["description"] == "Lampadaire éteint depuis trois nuits, côté canal"
    assert request["incident_id"] == str(incident_id)
    photo = page.request.get(request["media_url"])
    assert photo.ok
    width, height = Image.open(io.BytesIO(photo.body())).size
    assert (width, height) == (MAX_SIDE_PX, round(MAX_SIDE_PX * 2 / 3))  # resized in the page

    # Stored, snapped, routed to one of the city's teams, and on the dispatch map's data.
    stored = live_app.pipeline.reads.reports(Selection(ids=(report_id,))).iloc[0]
    assert stored["source"] == FORM_SOURCE
    assert stored["segment_id"]
    incident = live_app.pipeline.reads.incidents(Selection(ids=(incident_id,))).iloc[0]
    assert incident["team"] in city.teams
    dispatch = page.request.get(f"{live_app.base}/maps/dispatch?days=1")
    match = _DATA.search(dispatch.text())
    assert match
    assert incident_id in json.loads(match[1])["incidents"]["id"]

    # The tracking link was queued for the email given, in the outbox.
    queued = live_app.pipeline.reads.lookup("outbox", "entity_id", [report_id])
    mail = queued[(queued["kind"] == tracking.RECEIVED) & (queued["target"] == EMAIL)]
    assert len(mail) == 1
    assert mail["status"].tolist() == ["held"]  # until the address is confirmed (opt-in)
    tracking_url = page.get_attribute("#voirie-tracking", "href") or ""
    assert json.loads(mail["payload"].iloc[0])["tracking_url"] == tracking_url

    # The private tracking page: status, date, description and the photo, loaded.
    page.click("#voirie-tracking")
    page.wait_for_selector("#voirie-follow[data-ready=true]")
    assert page.inner_text("#voirie-status") == "Nouveau"
    assert page.inner_text("#voirie-description").startswith("Lampadaire éteint")
    assert page.evaluate("document.querySelector('.voirie-photos img').naturalWidth") > 0
    assert watch.errors == []
    assert watch.blocked == []
    context.close()


@pytest.mark.browser
def test_is_it_one_of_these_leads_to_me_too(browser: Browser, live_app: LiveApp) -> None:
    city = live_app.pipeline.city
    code = _service_code(live_app, DUMPED)
    shown = _group_near(live_app, city.services[code].group)
    assert shown  # an open incident of the same group is a few metres away
    reports_before = live_app.pipeline.reads.count("reports")
    supporters_before = _supporters(live_app, shown[0])
    context = phone(browser)
    page = context.new_page()
    watch = offline(page)
    _open_form(page, live_app)

    page.click("#voirie-locate")
    page.wait_for_selector("#voirie-map[data-pinned=true]")
    page.select_option("#voirie-service", code)
    page.click("#voirie-send")  # its required question is not answered yet
    assert "Volume approximatif" in page.inner_text("#voirie-message")
    page.select_option("#voirie-attribute-volume", "moyen")
    page.check("#voirie-attribute-objets-0")
    page.click("#voirie-send")
    page.wait_for_selector("#voirie-duplicates:not([hidden])")

    assert "déjà signalé" in page.inner_text("#voirie-duplicates-title")
    listed = page.locator("#voirie-duplicate-list .voirie-item")
    assert sorted(int(i) for i in listed.evaluate_all("n => n.map(e => e.dataset.incident)")) == (
        sorted(shown)
    )
    assert page.inner_text("#voirie-send").startswith("Non, c'est un autre problème")
    screenshot(page, "signaler-duplicates")
    mine = page.locator(f'#voirie-duplicate-list .voirie-item[data-incident="{shown[0]}"]')
    mine.locator("button.me-too").click()
    page.wait_for_selector(f'.voirie-item.supported[data-incident="{shown[0]}"]')

    assert _supporters(live_app, shown[0]) == supporters_before + 1
    assert live_app.pipeline.reads.count("reports") == reports_before  # nothing sent
    assert page.locator("#voirie-done").is_hidden()
    assert watch.errors == []
    assert watch.blocked == []
    context.close()


def _supporters(live_app: LiveApp, incident_id: int) -> int:
    found = live_app.pipeline.reads.incidents(Selection(ids=(incident_id,)))
    return int(found["supporters"].iloc[0])


def _subscribers(live_app: LiveApp, incident_id: int) -> list[str]:
    pipeline = live_app.pipeline
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        return uow.citizens.subscribers(incident_id)


@pytest.fixture(scope="module")
def tracked(live_app: LiveApp) -> tuple[str, int]:
    """A report sent with the form whose incident a dispatcher then scheduled with a note:
    (its tracking token, its incident id)."""
    pipeline = live_app.pipeline
    report = Report(
        external_id="",
        source=FORM_SOURCE,
        service_code=_service_code(live_app, "Lampadaire en mauvais état"),
        lon=2.35183,
        lat=48.85658,  # Place de l'Hôtel de Ville
        requested_at=datetime.now(UTC),
        description="Lampadaire penché",
        contact=Contact(email="voisin@example.org"),
    )
    sent = tracking.send(
        pipeline, report, Retry(FORM_SOURCE, "tracked-1", 600), [], lambda t: f"/suivi/{t}"
    )
    dispatcher = Principal("Dispatch Paris", Role.DISPATCHER)
    workflow.change_status(
        pipeline.store,
        pipeline.city,
        sent.submission.incident_id,
        dispatcher,
        Status.SCHEDULED,
        "intervention prévue mardi <b>matin</b>",
    )
    return sent.token, sent.submission.incident_id


@pytest.mark.browser
def test_tracking_page_shows_status_notes_and_follows(
    browser: Browser, live_app: LiveApp, tracked: tuple[str, int]
) -> None:
    token, incident_id = tracked
    context = phone(browser)
    page = context.new_page()
    watch = offline(page)
    response = page.goto(f"{live_app.base}/suivi/{token}?lang=en")
    assert response is not None
    assert response.ok
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    page.wait_for_selector("#voirie-follow[data-ready=true]")

    assert page.inner_text("#voirie-status") == "Scheduled"
    history = page.inner_text("#voirie-history")
    assert "intervention prévue mardi <b>matin</b>" in history  # a public note, as text
    assert page.locator("#voirie-history b").count() == 0
    assert "voisin@example.org" not in page.content()  # contact data is never shown

    page.fill("#voirie-email", FOLLOWER)
    page.click("#voirie-follow-button")
    page.wait_for_selector("#voirie-message:text-is('You follow this problem.')")
    assert FOLLOWER in _subscribers(live_app, incident_id)
    page.click("#voirie-unfollow-button")
    page.wait_for_selector("#voirie-message:text-is('You no longer follow this problem.')")
    assert FOLLOWER not in _subscribers(live_app, incident_id)
    assert watch.errors == []
    assert watch.blocked == []

    other = "B" if token.endswith("A") else "A"  # a token one character off
    wrong = page.goto(f"{live_app.base}/suivi/{token[:-1]}{other}")
    assert wrong is not None
    assert wrong.status == 404
    context.close()


@pytest.mark.browser
def test_the_robot_trap_is_out_of_sight_and_out_of_reach(
    browser: Browser, live_app: LiveApp
) -> None:
    """The honeypot field: off screen, hidden from screen readers, never reached with Tab,
    never filled by the browser; a person's report sends it empty."""
    context = phone(browser)
    page = context.new_page()
    watch = offline(page)
    _open_form(page, live_app)
    trap = page.locator("#voirie-website")
    assert trap.get_attribute("tabindex") == "-1"
    assert trap.get_attribute("autocomplete") == "off"
    assert page.locator(".voirie-trap").get_attribute("aria-hidden") == "true"
    box = trap.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= 0  # drawn outside the page
    focused = set()
    for _ in range(60):
        page.keyboard.press("Tab")
        focused.add(page.evaluate("document.activeElement.id"))
    assert "voirie-email" in focused  # the walk went through the contact fields
    assert "voirie-website" not in focused
    assert watch.errors == []
    context.close()
