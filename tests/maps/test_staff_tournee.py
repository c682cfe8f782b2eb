"""The round sheet (feuille de tournée) in Chromium, cut off from everything but the app:
stops in visiting order with their map, the print stylesheet, the PDF; and who may print
which team's round."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import httpx2
import numpy as np
from browsing import LiveApp, Watch, axe_violations
from living import busiest_team, client_of, living, page, sign_in_page

from voirie.model import OPEN_STATUSES
from voirie.services.route_order import tour_length
from voirie.services.workorder import MAX_STOPS

if TYPE_CHECKING:
    from playwright.sync_api import Page

__all__ = ["living", "page"]  # fixtures
DOCS = Path(__file__).parents[2] / "docs"


def _today() -> str:
    return datetime.now(UTC).astimezone(ZoneInfo("Europe/Paris")).date().isoformat()


def test_round_sheet_lists_stops_in_route_order_with_a_map(
    page: tuple[Page, Watch], living: LiveApp
) -> None:
    tab, watch = page
    team = busiest_team(living.pipeline)
    sign_in_page(tab, living.base, "Dominique Dispatch", "/staff/tournee")
    tab.select_option("select[name=team]", team)
    tab.get_by_role("button", name="Afficher").click()
    tab.wait_for_url(re.compile(r"team="))
    incidents = living.pipeline.reads.incidents()
    mine = incidents[
        (incidents["team"] == team) & incidents["status"].isin([s.value for s in OPEN_STATUSES])
    ]
    rows = tab.locator("#voirie-tournee-stops tbody tr")
    assert rows.count() == min(len(mine), MAX_STOPS) > 1
    ids = [int(i) for i in rows.evaluate_all("rs => rs.map(r => r.dataset.incident)")]
    assert set(ids) <= set(mine["incident_id"])
    assert tab.locator(".voirie-tournee-map svg .stop").count() == len(ids)
    assert "départ de l'incident le plus à l'ouest" in tab.locator("#voirie-tournee").inner_text()
    # The first stop is the westmost, and the order is no longer than the table's order
    # by incident id (a sanity bound that a random order would usually break).
    chosen = mine.set_index("incident_id").loc[ids]
    assert chosen["lon"].iloc[0] == chosen["lon"].min()
    xy = chosen.to_crs(2154).geometry.get_coordinates().to_numpy()
    order = np.arange(len(ids))
    by_id = np.argsort(ids)
    assert tour_length(xy, order) <= tour_length(xy, by_id)
    assert not axe_violations(tab)
    tab.emulate_media(media="print")
    assert not tab.locator(".voirie-staff-header").is_visible()
    assert tab.locator(".voirie-tournee-map svg").is_visible()
    if os.environ.get("VOIRIE_DOC_SCREENSHOTS"):
        tab.screenshot(path=str(DOCS / "staff-tournee.png"), full_page=True)
    tab.emulate_media(media="screen")
    tab.get_by_role("link", name="EN", exact=True).click()
    tab.wait_for_url(re.compile(r"lang=en"))
    assert "starts at the westmost incident" in tab.locator("#voirie-tournee").inner_text()
    assert watch.blocked == []
    assert watch.errors == []


def test_pdf_is_the_sheet(living: LiveApp) -> None:
    team = busiest_team(living.pipeline)
    with client_of(living, "Dominique Dispatch") as client:
        answer = client.get(
            "/staff/tournee", params={"team": team, "date": _today(), "format": "pdf"}
        )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.content.startswith(b"%PDF-")
    assert len(answer.content) > 5_000


def test_agent_prints_own_team_only_and_bad_input_names_the_field(living: LiveApp) -> None:
    team = busiest_team(living.pipeline)
    other = next(t for t in living.pipeline.reads.incidents()["team"].unique() if t != team)
    with client_of(living, "Agnès Agent") as agent:
        form = agent.get("/staff/tournee").text
        assert f'<option value="{team}"' in form
        assert f'<option value="{other}"' not in form
        assert agent.get("/staff/tournee", params={"team": team}).status_code == 200
        refused = agent.get("/staff/tournee", params={"team": other})
        assert refused.status_code == 403
        assert other in refused.text
    with client_of(living, "Gaëlle SIG") as gis:
        assert gis.get("/staff/tournee", params={"team": other}).status_code == 200
        unknown = gis.get("/staff/tournee", params={"team": "NOPE"})
        assert unknown.status_code == 400
        assert "team" in unknown.text
        bad_day = gis.get("/staff/tournee", params={"team": team, "date": "demain"})
        assert bad_day.status_code == 422
        assert "date" in bad_day.text
    with httpx2.Client(base_url=living.base) as visitor:
        answer = visitor.get("/staff/tournee", params={"team": team})
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/staff/login?next=")
