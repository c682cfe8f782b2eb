"""The citizens' page in Chromium on a phone: offline, located, "me too" end to end, escaped."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from browsing import LAT, LON, PHONE, LiveApp, offline, phone, screenshot

from voirie.maps.nearby import render_nearby_page
from voirie.model import Report
from voirie.store.selection import Selection

if TYPE_CHECKING:
    from playwright.sync_api import Browser

XSS = "<img src=x onerror=alert(1)>"
# A real DansMaRue category and a point on Quai de Valmy, 75010.
SERVICE = "Cartons ou sacs de déchets ménagers"


@pytest.fixture(scope="module")
def hostile_incident(live_app: LiveApp) -> int:
    """An incident opened by a report whose description is an HTML injection attempt."""
    paris = live_app.pipeline.city
    submitted = live_app.pipeline.intake.submit(
        Report(
            external_id="h4-xss",
            source="app",
            lon=LON,
            lat=LAT,
            service_code=paris.services_by_name[SERVICE.casefold()].code,
            requested_at=datetime(2023, 8, 20, 9, 30, tzinfo=UTC),
            description=XSS,
        )
    )
    return submitted.incident_id


def _supporters(live_app: LiveApp, incident_id: int) -> int:
    found = live_app.pipeline.reads.incidents(Selection(ids=(incident_id,)))
    return int(found["supporters"].iloc[0])


@pytest.mark.browser
def test_locate_me_lists_issues_and_me_too_counts(
    browser: Browser, live_app: LiveApp, hostile_incident: int
) -> None:
    context = phone(browser)
    page = context.new_page()
    watch = offline(page)
    page.goto(f"{live_app.base}/maps/nearby")
    page.wait_for_selector("#voirie-map[data-ready=true]")
    page.click("#voirie-locate")
    page.wait_for_selector(".voirie-item")

    items = page.locator(".voirie-item")
    assert page.locator("path.voirie-nearby-incident").count() == items.count() > 1
    mine = page.locator(f'.voirie-item[data-incident="{hostile_incident}"]')
    assert mine.locator(".text").inner_text() == XSS  # shown as text...
    assert page.locator("img").count() == 0  # ...never as an element
    assert "0 soutien" in mine.locator(".supporters").inner_text()
    assert "problème(s) en cours" in page.locator("#voirie-message").inner_text()
    screenshot(page, "nearby-phone")
    before = _supporters(live_app, hostile_incident)

    mine.locator("button.me-too").click()
    page.wait_for_function(
        'id => document.querySelector(`.voirie-item[data-incident="${id}"] .supporters`)'
        ".dataset.count === '1'",
        arg=hostile_incident,
    )

    assert _supporters(live_app, hostile_incident) == before + 1
    assert mine.locator("button.me-too").is_disabled()
    page.reload()  # the browser remembers it said "me too"
    page.click("#voirie-locate")
    page.wait_for_selector(f'.voirie-item[data-incident="{hostile_incident}"]')
    assert page.locator(
        f'.voirie-item[data-incident="{hostile_incident}"] button.me-too'
    ).is_disabled()
    screenshot(page, "nearby-phone-supported")
    page_width = page.evaluate("() => document.documentElement.scrollWidth")
    assert page_width <= PHONE["width"]  # nothing overflows sideways on a phone
    assert watch.blocked == []
    assert watch.errors == []
    context.close()


@pytest.mark.browser
def test_address_search_follow_and_english(
    browser: Browser, live_app: LiveApp, hostile_incident: int
) -> None:
    context = phone(browser)
    page = context.new_page()
    watch = offline(page)
    page.goto(f"{live_app.base}/maps/nearby?lang=en")
    page.wait_for_selector("#voirie-map[data-ready=true]")
    assert page.locator("#voirie-locate").inner_text() == "Locate me"

    page.fill("input[name=q]", "91 quai de Valmy, 75010 Paris")
    page.select_option("select[name=radius_m]", "1000")
    page.click("button[type=submit]")
    page.wait_for_selector(f'.voirie-item[data-incident="{hostile_incident}"]')

    assert "Quai de Valmy" in page.locator("#voirie-message").inner_text()
    item = page.locator(f'.voirie-item[data-incident="{hostile_incident}"]')
    item.locator("input[name=email]").fill("not an email")
    item.locator("button.follow-button").click()
    page.wait_for_function("() => document.querySelector('.voirie-error')")
    assert "email" in item.locator("output").inner_text()
    item.locator("input[name=email]").fill("voisin.h4@example.org")
    item.locator("button.follow-button").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('output')]"
        ".some(o => o.textContent === 'You follow this issue.')"
    )
    page.fill("input[name=q]", "Allée des Nuages Roses")
    page.click("button[type=submit]")
    page.wait_for_function("() => document.querySelector('#voirie-message.voirie-error')")
    assert "no street of Paris" in page.locator("#voirie-message").inner_text()
    assert watch.blocked == []
    # The browser logs the two refused requests (400 bad email, 404 unknown street); nothing else.
    failed = [e for e in watch.errors if "Failed to load resource" in e]
    assert [e for e in watch.errors if e not in failed] == []
    assert ["400" in failed[0], "404" in failed[1]] == [True, True]
    context.close()


@pytest.mark.browser
def test_page_can_open_on_a_place(browser: Browser, live_app: LiveApp) -> None:
    page = browser.new_page(viewport=PHONE)
    watch = offline(page)
    page.goto(f"{live_app.base}/maps/nearby?lat={LAT}&lon={LON}&radius_m=300")
    page.wait_for_selector(".voirie-item")
    assert page.locator("select[name=radius_m]").input_value() == "300"
    page.set_viewport_size({"width": 1280, "height": 800})  # list beside the map
    page.wait_for_timeout(300)
    screenshot(page, "nearby-desktop")
    assert watch.blocked == []
    assert watch.errors == []


def test_unknown_language_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported language"):
        render_nearby_page(city_name="Paris", lang="de")


@pytest.mark.browser
def test_french_page_says_the_api_refusals_in_french(
    browser: Browser, live_app: LiveApp, hostile_incident: int
) -> None:
    """The API answers in English; the French page words the refusals citizens meet."""
    context = phone(browser)
    page = context.new_page()
    page.goto(f"{live_app.base}/maps/nearby")
    page.wait_for_selector("#voirie-map[data-ready=true]")
    page.click("#voirie-locate")
    item = page.locator(f'.voirie-item[data-incident="{hostile_incident}"]')
    item.wait_for()
    item.locator("input[name=email]").fill("pas un e-mail")
    item.locator("button.follow-button").click()
    page.wait_for_function("() => document.querySelector('output.voirie-error')")
    assert item.locator("output").inner_text() == "Erreur (400)\u00a0: adresse e-mail invalide"
    page.fill("input[name=q]", "Allée des Nuages Roses")
    page.click("button[type=submit]")
    page.wait_for_function("() => document.querySelector('#voirie-message.voirie-error')")
    assert page.locator("#voirie-message").inner_text().startswith("Erreur\u00a0: aucune rue")
    context.close()
