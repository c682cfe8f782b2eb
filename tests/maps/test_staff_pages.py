"""The staff pages in Chromium, cut off from everything but the app: sign-in, the queue
(filter, sort, search, live refresh, bulk action) and the case page's actions, in French
and English, without console errors or serious accessibility violations."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from browsing import LiveApp, Watch, axe_violations
from living import PASSWORD, busiest_team, page, sign_in_page

from voirie.model import Report
from voirie.services.staff_users import add_user
from voirie.store.selection import Selection

__all__ = ["page"]  # the fixture

if TYPE_CHECKING:
    from playwright.sync_api import Page

DOCS = Path(__file__).parents[2] / "docs"


@pytest.fixture(scope="module")
def accounts(live_app: LiveApp) -> LiveApp:
    """A dispatcher and an agent of the sample's busiest team."""
    store, j = live_app.pipeline.store, live_app.pipeline.city.jurisdiction_id
    add_user(store, j, "Dominique Dispatch", "dispatcher", (), PASSWORD)
    add_user(store, j, "Agnès Agent", "agent", (busiest_team(live_app.pipeline),), PASSWORD)
    return live_app


def _loaded(page: Page, after: int = 0) -> None:
    page.wait_for_function(
        f"() => Number(document.getElementById('voirie-queue').dataset.loads || 0) > {after}"
    )


def _loads(page: Page) -> int:
    return int(page.eval_on_selector("#voirie-queue", "t => Number(t.dataset.loads || 0)"))


def _column(page: Page, index: int) -> list[str]:
    return page.eval_on_selector_all(
        "#voirie-queue tbody tr", f"rows => rows.map(r => r.cells[{index}].textContent)"
    )


def test_login_and_queue_filter_sort_search(page: tuple[Page, Watch], accounts: LiveApp) -> None:
    tab, watch = page
    base = accounts.base
    tab.goto(f"{base}/staff/login")
    tab.get_by_label("Identifiant").fill("Dominique Dispatch")
    tab.get_by_label("Mot de passe").fill("pas le bon mot de passe")
    tab.get_by_role("button", name="Se connecter").click()
    tab.wait_for_selector("#voirie-login-error")
    assert watch.errors == [
        "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ]
    watch.errors.clear()
    sign_in_page(tab, base, "Dominique Dispatch", "/staff/")
    _loaded(tab)
    incidents = accounts.pipeline.reads.incidents()
    assert tab.locator("#voirie-queue tbody tr").count() == 50
    assert "Nouveau" in tab.locator("#voirie-counts").inner_text()
    assert tab.locator(".leaflet-interactive").count() >= 50
    assert not axe_violations(tab)
    if os.environ.get("VOIRIE_DOC_SCREENSHOTS"):
        tab.screenshot(path=str(DOCS / "staff-queue.png"))

    team = busiest_team(accounts.pipeline)
    tab.select_option("select[name=team]", team)
    before = _loads(tab)
    tab.get_by_role("button", name="Filtrer").click()
    _loaded(tab, before)
    team_name = accounts.pipeline.city.teams[team].name
    assert set(_column(tab, 5)) == {team_name}
    assert "team=" in tab.url  # the team's view is a link

    before = _loads(tab)
    tab.get_by_role("button", name="Signalements").click()  # sort by report count
    _loaded(tab, before)
    counts = [int(c) for c in _column(tab, 9)]
    assert counts == sorted(counts)
    before = _loads(tab)
    tab.get_by_role("button", name="Signalements").click()  # again: the other way
    _loaded(tab, before)
    counts = [int(c) for c in _column(tab, 9)]
    assert counts == sorted(counts, reverse=True)

    tab.select_option("select[name=team]", "")
    named = incidents.dropna(subset=["street_name"]).iloc[0]
    tab.get_by_label("Rechercher (adresse, rue, description)").fill(str(named["street_name"]))
    before = _loads(tab)
    tab.get_by_role("button", name="Filtrer").click()
    _loaded(tab, before)
    assert f"#{int(named['incident_id'])}" in _column(tab, 1)
    assert not watch.errors
    assert not watch.blocked


def test_queue_shows_new_reports_without_reloading(
    page: tuple[Page, Watch], accounts: LiveApp
) -> None:
    tab, watch = page
    tab.clock.install()
    sign_in_page(tab, accounts.base, "Dominique Dispatch", "/staff/?sort=age&order=desc")
    _loaded(tab)
    like = accounts.pipeline.reads.incidents().iloc[0]
    new = accounts.pipeline.intake.submit(
        Report(
            external_id="live-refresh-1",
            source="test",
            service_code=str(like["service_code"]),
            lon=float(like["lon"]),
            lat=float(like["lat"]),
            requested_at=datetime.now(UTC),
            description="Nouveau signalement pendant que la page est ouverte",
        )
    )
    assert not new.attached  # the sample is old: a new incident, the newest of all
    before = _loads(tab)
    tab.clock.fast_forward("00:31")  # the page polls every 30 s
    _loaded(tab, before)
    row = tab.locator(f"#incident-{new.incident_id}")
    assert row.get_attribute("class") == "highlight"
    assert "1 nouvel" in tab.locator("#voirie-message").inner_text()
    assert not watch.errors


def test_case_page_actions(page: tuple[Page, Watch], accounts: LiveApp) -> None:
    tab, watch = page
    incidents = accounts.pipeline.reads.incidents()
    crowded = incidents[incidents["status"] == "new"].iloc[0]
    incident_id = int(crowded["incident_id"])
    sign_in_page(tab, accounts.base, "Dominique Dispatch", f"/staff/incidents/{incident_id}")
    tab.wait_for_selector("#voirie-reports li")
    assert tab.locator("#voirie-assignments li").count() >= 1
    assert not axe_violations(tab)

    tab.get_by_label("Ajouter un commentaire interne").fill("Vu sur place <b>ok</b>")
    tab.get_by_role("button", name="Envoyer").click()
    tab.wait_for_function(
        "() => document.getElementById('voirie-history').textContent.includes('<b>ok</b>')"
    )
    # Only the allowed transitions are offered; a canned reply fills the public note.
    offered = tab.eval_on_selector_all(
        "select[name=status] option", "options => options.map(o => o.value)"
    )
    assert offered == ["acknowledged", "scheduled", "in_progress", "resolved", "rejected"]
    tab.select_option("select[name=status]", "acknowledged")
    tab.select_option("select[name=canned]", label="Pris en compte")
    assert "service compétent" in tab.get_by_label("Note publique").input_value()
    tab.get_by_role("button", name="Appliquer").first.click()
    tab.wait_for_function(
        "() => document.getElementById('voirie-status').textContent.includes('Pris en compte')"
    )
    found = accounts.pipeline.reads.incidents(Selection(ids=(incident_id,)))
    assert found.iloc[0]["status"] == "acknowledged"
    if os.environ.get("VOIRIE_DOC_SCREENSHOTS"):
        tab.screenshot(path=str(DOCS / "staff-case.png"), full_page=True)
    # Drag the pin 40 px to the east, then save it with a reason.
    box = tab.locator(".voirie-pin").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    tab.mouse.move(x, y)
    tab.mouse.down()
    tab.mouse.move(x + 20, y, steps=4)
    tab.mouse.move(x + 40, y, steps=4)
    tab.mouse.up()
    tab.locator("#voirie-move-form input[name=reason]").fill("plutôt devant le n° 12")
    tab.locator("#voirie-move-form button").click()
    tab.wait_for_function(
        "() => document.getElementById('voirie-history').textContent.includes('devant le n')"
    )
    moved = accounts.pipeline.reads.incidents(Selection(ids=(incident_id,))).iloc[0]
    assert float(moved["lon"]) > float(crowded["lon"])
    # Another category: routed again, the rule's words in the history.
    target = next(c for c in accounts.pipeline.city.services if c != crowded["service_code"])
    tab.select_option("select[name=service_code]", target)
    tab.locator("#voirie-category-form input[name=reason]").fill("mauvaise catégorie")
    tab.locator("#voirie-category-form button").click()
    tab.wait_for_function(
        "() => document.getElementById('voirie-history').textContent.includes('mauvaise cat')"
    )
    assert (
        accounts.pipeline.reads.incidents(Selection(ids=(incident_id,))).iloc[0]["service_code"]
        == target
    )
    assert not watch.errors
    assert not watch.blocked


def test_case_page_merges_a_nearby_duplicate(page: tuple[Page, Watch], accounts: LiveApp) -> None:
    tab, watch = page
    reads = accounts.pipeline.reads
    open_ = reads.incidents(Selection(statuses=("new",)))
    for _, row in open_.iterrows():
        near = reads.nearby(float(row["lon"]), float(row["lat"]), 150, Selection(statuses=("new",)))
        others = near[near["incident_id"] != row["incident_id"]]
        if len(others):
            target, other = int(row["incident_id"]), int(others.iloc[0]["incident_id"])
            break
    else:
        pytest.fail("no two open incidents within 150 m in the sample")
    sign_in_page(tab, accounts.base, "Dominique Dispatch", f"/staff/incidents/{target}")
    tab.locator(f"button[data-merge='{other}']").click()
    tab.wait_for_load_state()
    tab.wait_for_function(f"() => !document.querySelector(\"button[data-merge='{other}']\")")
    merged = reads.incidents(Selection(ids=(other,))).iloc[0]
    assert merged["status"] == "duplicate"
    assert not watch.errors


def test_bulk_status_change_from_the_queue(page: tuple[Page, Watch], accounts: LiveApp) -> None:
    tab, watch = page
    team = busiest_team(accounts.pipeline)
    sign_in_page(tab, accounts.base, "Agnès Agent", "/staff/?status=new&sort=age")
    _loaded(tab)
    rows = tab.locator("#voirie-queue tbody tr")
    ids = [int(rows.nth(i).get_attribute("data-id") or 0) for i in range(2)]
    for i in range(2):
        rows.nth(i).locator("input[type=checkbox]").check()
    assert "2 sélectionné" in tab.locator("#voirie-selected").inner_text()
    tab.select_option("#voirie-bulk select[name=status]", "scheduled")
    tab.locator("#voirie-bulk input[name=reason]").fill("tournée de jeudi")
    tab.locator("#voirie-bulk button[type=submit]").click()
    tab.wait_for_function(
        "() => document.getElementById('voirie-message').textContent.includes('2 incident')"
    )
    found = accounts.pipeline.reads.incidents(Selection(ids=tuple(ids)))
    assert set(found["status"]) == {"scheduled"}
    assert set(found["team"]) == {team}
    # The agent sees only their team, and no reassignment to another team is offered.
    assert tab.locator("#voirie-bulk option[value=assign]").count() == 0
    assert not watch.errors


def test_english_pages(page: tuple[Page, Watch], accounts: LiveApp) -> None:
    tab, watch = page
    tab.goto(f"{accounts.base}/staff/login?lang=en")
    tab.get_by_label("User name").fill("Dominique Dispatch")
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url(re.compile(r"/staff/"))
    tab.goto(f"{accounts.base}/staff/?lang=en")
    _loaded(tab)
    assert tab.get_by_role("link", name="Queue").count() == 1
    assert "New" in tab.locator("#voirie-counts").inner_text()
    assert not watch.errors
