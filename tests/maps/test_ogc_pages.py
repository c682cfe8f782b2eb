"""The OGC API HTML pages in Chromium, cut off from the network: French by default, English
on request, a map of the page's features with the data's credit, and escaped texts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from browsing import LiveApp, offline, screenshot

from voirie.model import Report
from voirie.store.selection import Selection

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

XSS = "<img src=x onerror=alert(1)>"
ITEMS = "/ogc/collections/incidents/items"
CREDITS = ("OpenStreetMap", "ODbL", "Paris")


@pytest.fixture(scope="module")
def hostile_report(live_app: LiveApp) -> int:
    """A report whose description is an HTML injection attempt (Quai de Valmy, 75010)."""
    paris = live_app.pipeline.city
    submitted = live_app.pipeline.intake.submit(
        Report(
            external_id="h7-xss",
            source="app",
            lon=2.363114,
            lat=48.873504,
            service_code=next(iter(paris.services)),
            requested_at=datetime(2023, 8, 20, 9, 30, tzinfo=UTC),
            description=XSS,
        )
    )
    return int(submitted.report_id)


def _map_ready(page: Page) -> int:
    """Wait for the map to draw; how many features it drew."""
    page.wait_for_selector("#ogc-map[data-ready='true']", timeout=30_000)
    return int(page.get_attribute("#ogc-map", "data-features") or -1)


def _credits(page: Page) -> None:
    """The map's attribution control and the page's footer both credit the data."""
    control = page.inner_text(".leaflet-control-attribution")
    footer = page.inner_text("footer")
    for word in CREDITS:
        assert word in control, control
        assert word in footer, footer


@pytest.mark.browser
def test_items_page_in_french_with_a_map_and_credits(browser: Browser, live_app: LiveApp) -> None:
    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    watch = offline(page)
    page.goto(f"{live_app.base}{ITEMS}?f=html&limit=25")
    assert page.get_attribute("html", "lang") == "fr"
    assert page.inner_text("h1") == "Incidents : objets"
    assert _map_ready(page) == 25
    assert page.locator("table tbody tr").count() == 25
    assert "Identifiant de l'incident" in page.inner_text("table thead")
    _credits(page)
    # A marker's popup links to that incident's own page, which maps it alone.
    page.locator("path.leaflet-interactive").first.click()
    link = page.locator(".leaflet-popup-content a")
    incident_id = link.inner_text()
    link.click()
    page.wait_for_url(f"**{ITEMS}/{incident_id}?f=html&lang=fr")
    assert _map_ready(page) == 1
    assert page.inner_text("h1") == f"Incidents {incident_id}"
    _credits(page)
    screenshot(page, "ogc-item-fr")
    assert not watch.errors, watch.errors
    assert not watch.blocked, watch.blocked
    context.close()


@pytest.mark.browser
@pytest.mark.parametrize(
    ("locale", "query"), [("fr-FR", "&lang=en"), ("en-GB", ""), ("en-US", "&lang=fr")]
)
def test_english_on_request_or_by_the_browsers_language(
    browser: Browser, live_app: LiveApp, locale: str, query: str
) -> None:
    context = browser.new_context(locale=locale)
    page = context.new_page()
    watch = offline(page)
    page.goto(f"{live_app.base}/ogc/collections/reports?f=html{query}")
    english = query == "&lang=en" or (locale.startswith("en") and not query)
    assert page.get_attribute("html", "lang") == ("en" if english else "fr")
    assert page.inner_text("h1") == ("Reports" if english else "Signalements")
    assert _map_ready(page) == 0  # the collection page shows its extent and the districts
    _credits(page)
    switch = page.locator("nav.lang a")
    switch.click()
    page.wait_for_load_state()
    assert page.get_attribute("html", "lang") == ("fr" if english else "en")
    assert not watch.errors, watch.errors
    assert not watch.blocked, watch.blocked
    context.close()


@pytest.mark.browser
def test_a_hostile_description_is_shown_as_text(
    browser: Browser, live_app: LiveApp, hostile_report: int
) -> None:
    page = browser.new_page()
    watch = offline(page)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{live_app.base}/ogc/collections/reports/items/{hostile_report}?f=html")
    assert _map_ready(page) == 1
    assert XSS in page.inner_text("dl")
    assert page.locator("dl img").count() == 0
    assert not dialogs
    stored = live_app.pipeline.reads.reports(Selection(ids=(hostile_report,)))
    assert stored["description"].iloc[0] == XSS
    assert not watch.errors, watch.errors
    assert not watch.blocked, watch.blocked
    page.close()
