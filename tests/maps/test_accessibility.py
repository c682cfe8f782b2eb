"""Accessibility of the citizens' pages in Chromium on a phone: axe-core finds no serious or
critical violation (WCAG 2.1 A/AA and best practices) on the report form, its "is it one of
these?" step, its confirmation, the tracking page and the nearby page; a report can be
completed with the keyboard alone; the nearby list says how many it shows of how many, and
pages through them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from browsing import LAT, LON, LiveApp, axe_violations, offline, phone

from voirie.api.report_form import FORM_SOURCE
from voirie.maps.nearby import PAGE_SIZE
from voirie.model import Report
from voirie.services import tracking
from voirie.services.intake import Retry

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

DUMPED = "Autres objets encombrants abandonnés"
MAX_TABS = 80


def _focused(page: Page, selector: str) -> bool:
    return bool(page.evaluate("(s) => document.activeElement.matches(s)", selector))


def _tab_to(page: Page, selector: str) -> None:
    """Press Tab until the element matching ``selector`` has the focus."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if _focused(page, selector):
            return
    raise AssertionError(f"{selector} never got the focus with Tab")


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["fr", "en"])
def test_report_form_and_its_check_step_pass_axe(
    browser: Browser, live_app: LiveApp, lang: str
) -> None:
    context = phone(browser)
    page = context.new_page()
    watch = offline(page)
    page.goto(f"{live_app.base}/signaler?lang={lang}")
    page.wait_for_selector("#voirie-map[data-ready=true]")
    assert axe_violations(page) == []

    page.click("#voirie-locate")
    page.wait_for_selector("#voirie-map[data-pinned=true]")
    code = live_app.pipeline.city.services_by_name[DUMPED.casefold()].code
    page.select_option("#voirie-service", code)  # a service with questions
    page.select_option("#voirie-attribute-volume", "petit")
    page.click("#voirie-send")
    page.wait_for_selector("#voirie-duplicates:not([hidden])")
    assert _focused(page, "#voirie-duplicates-title")  # announced, not only drawn
    assert axe_violations(page) == []
    assert watch.errors == []
    assert watch.blocked == []
    context.close()


@pytest.mark.browser
def test_a_report_completed_with_the_keyboard_alone(browser: Browser, live_app: LiveApp) -> None:
    context = phone(browser)
    page = context.new_page()
    watch = offline(page)
    page.goto(f"{live_app.base}/signaler")
    page.wait_for_selector("#voirie-map[data-ready=true]")
    reports_before = live_app.pipeline.reads.count("reports")

    _tab_to(page, "#voirie-map")  # the map takes the focus; Enter drops the pin at its centre
    page.keyboard.press("Enter")
    assert page.inner_text("#voirie-place") == "Repère posé : point choisi sur la carte."
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")  # back to the address
    assert _focused(page, "#voirie-address")
    page.keyboard.type("quai de valmy")
    page.keyboard.press("Enter")
    page.wait_for_selector("#voirie-place:has-text('Quai de Valmy')")

    _tab_to(page, "#voirie-category-search")
    page.keyboard.type("eclairage")
    page.keyboard.press("Enter")  # to the list of the matching categories
    assert _focused(page, "#voirie-service")
    page.keyboard.press("ArrowDown")
    chosen = page.input_value("#voirie-service")
    assert chosen == page.eval_on_selector("#voirie-service optgroup option", "o => o.value")
    _tab_to(page, "#voirie-description")
    page.keyboard.type("Lampadaire allumé en plein jour")
    _tab_to(page, "#voirie-send")
    page.keyboard.press("Enter")
    page.wait_for_selector("#voirie-done:not([hidden]), #voirie-duplicates:not([hidden])")
    if page.locator("#voirie-duplicates").is_visible():  # "is it one of these?" first
        assert _focused(page, "#voirie-duplicates-title")
        _tab_to(page, "#voirie-send")
        page.keyboard.press("Enter")
    page.wait_for_selector("#voirie-done:not([hidden])")

    assert _focused(page, "#voirie-done-title")
    assert live_app.pipeline.reads.count("reports") == reports_before + 1
    assert axe_violations(page) == []
    _tab_to(page, "#voirie-tracking")
    page.keyboard.press("Enter")
    page.wait_for_selector("#voirie-follow[data-ready=true]")
    assert page.url.startswith(f"{live_app.base}/suivi/")
    assert watch.errors == []
    assert watch.blocked == []
    context.close()


@pytest.mark.browser
def test_tracking_page_passes_axe(browser: Browser, live_app: LiveApp) -> None:
    pipeline = live_app.pipeline
    report = Report(
        external_id="",
        source=FORM_SOURCE,
        service_code=pipeline.city.services_by_name[DUMPED.casefold()].code,
        lon=LON,
        lat=LAT,
        requested_at=datetime.now(UTC),
        description="Un canapé sur le trottoir",
        attributes=(("volume", "grand"),),
    )
    sent = tracking.send(pipeline, report, Retry(FORM_SOURCE, "axe-1", 600), [], str)
    context = phone(browser)
    page = context.new_page()
    watch = offline(page)
    for lang in ("fr", "en"):
        page.goto(f"{live_app.base}/suivi/{sent.token}?lang={lang}")
        page.wait_for_selector("#voirie-follow[data-ready=true]")
        assert axe_violations(page) == []
    assert watch.errors == []
    assert watch.blocked == []
    context.close()


@pytest.mark.browser
def test_nearby_page_counts_pages_and_passes_axe(browser: Browser, live_app: LiveApp) -> None:
    context = phone(browser)
    page = context.new_page()
    watch = offline(page)
    search = f"lat={LAT}&lon={LON}&radius_m=2000"
    total = len(page.request.get(f"{live_app.base}/api/v1/nearby?{search}").json()["incidents"])
    assert total > 2 * PAGE_SIZE  # three pages of the real reports around the quai
    page.goto(f"{live_app.base}/maps/nearby?{search}")
    page.wait_for_selector(".voirie-item")

    message = page.inner_text("#voirie-message")
    assert message.startswith(f"1 à {PAGE_SIZE} sur {total} problèmes en cours")
    assert page.locator(".voirie-item").count() == PAGE_SIZE
    assert page.inner_text("#voirie-page") == "Page 1 sur 3"
    assert page.is_disabled("#voirie-previous")
    first_page = page.eval_on_selector_all(".voirie-item", "n => n.map(e => e.dataset.incident)")
    assert page.get_attribute("a.voirie-new-report", "href") == "/signaler?lang=fr"
    assert axe_violations(page) == []

    page.click("#voirie-next")
    page.wait_for_selector("#voirie-list[data-offset='20']")
    second_page = page.eval_on_selector_all(".voirie-item", "n => n.map(e => e.dataset.incident)")
    assert set(first_page).isdisjoint(second_page)
    assert page.inner_text("#voirie-message").startswith(f"21 à 40 sur {total}")
    page.click("#voirie-next")
    page.wait_for_selector("#voirie-list[data-offset='40']")
    assert page.locator(".voirie-item").count() == total - 2 * PAGE_SIZE
    assert page.is_disabled("#voirie-next")
    assert watch.errors == []
    assert watch.blocked == []
    context.close()


@pytest.mark.browser
def test_axe_reports_what_it_finds(browser: Browser, serve_page: Callable[[str], str]) -> None:
    """The check above can fail: an unlabelled field and a page without language are seen."""
    page = browser.new_page()
    page.goto(serve_page("<!doctype html><title>t</title><main><input type=text></main>"))
    found = {violation["id"] for violation in axe_violations(page)}
    assert {"label", "html-has-lang"} <= found
    page.close()
