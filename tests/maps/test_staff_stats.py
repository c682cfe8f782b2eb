"""The statistics dashboard in Chromium, cut off from everything but the app: charts drawn
by the vendored Chart.js, tables, CSV downloads, French and English; and who may see what
(roles, an agent's team scope, signed-out visitors)."""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import httpx2
import pandas as pd
from browsing import LiveApp, Watch, axe_violations
from living import busiest_team, client_of, living, page, sign_in_page

from voirie.maps.static import STATIC_DIR

if TYPE_CHECKING:
    from playwright.sync_api import Page

__all__ = ["living", "page"]  # fixtures
DOCS = Path(__file__).parents[2] / "docs"


def _drawn(page: Page, canvas: str) -> bool:
    """Whether Chart.js drew a chart on that canvas (something non-blank on it)."""
    return bool(
        page.evaluate(
            """id => { const c = document.getElementById(id); const chart = Chart.getChart(c);
            if (!chart) return false;
            const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            for (let i = 3; i < px.length; i += 4) if (px[i] > 0) return true;
            return false; }""",
            canvas,
        )
    )


def test_dashboard_draws_charts_and_tables_offline(
    page: tuple[Page, Watch], living: LiveApp
) -> None:
    tab, watch = page
    sign_in_page(tab, living.base, "Dominique Dispatch", "/staff/stats")
    for canvas in ("voirie-chart-team", "voirie-chart-week", "voirie-chart-zone"):
        assert _drawn(tab, canvas), canvas
    incidents = living.pipeline.reads.incidents()
    open_now = incidents["status"].isin(["new", "acknowledged", "in_progress", "scheduled"])
    assert tab.locator("dd[data-measure=backlog]").inner_text() == str(int(open_now.sum()))
    teams = tab.locator("#voirie-table-team tbody tr")
    assert teams.count() == incidents["team"].nunique()
    first = pd.to_datetime(incidents["first_reported_at"], utc=True)
    recent = first[first >= pd.Timestamp.now(tz="UTC") - pd.Timedelta(weeks=12)]
    weeks = recent.dt.tz_convert("Europe/Paris").dt.isocalendar()
    expected_weeks = len(weeks[["year", "week"]].drop_duplicates())
    assert tab.locator("#voirie-table-week tbody tr").count() == expected_weeks > 3
    assert "Respect des délais (%)" in tab.locator("#voirie-table-team thead").inner_text()
    assert not axe_violations(tab)
    if os.environ.get("VOIRIE_DOC_SCREENSHOTS"):
        tab.screenshot(path=str(DOCS / "staff-stats.png"), full_page=True)
    tab.get_by_role("link", name="EN", exact=True).click()
    tab.wait_for_url(re.compile(r"lang=en"))
    assert "SLA compliance (%)" in tab.locator("#voirie-table-team thead").inner_text()
    assert _drawn(tab, "voirie-chart-week")
    tab.select_option("select[name=weeks]", "4")
    tab.get_by_role("button", name="Show").click()
    tab.wait_for_url(re.compile(r"weeks=4"))
    assert tab.locator("#voirie-table-week tbody tr").count() <= 5
    assert watch.blocked == []
    assert watch.errors == []


def test_chart_library_is_vendored_with_its_licence() -> None:
    assert "Released under the MIT License" in (STATIC_DIR / "chart.umd.min.js").read_text()[:300]
    assert "MIT" in (STATIC_DIR / "chart.js.LICENSE.txt").read_text()


def _spreadsheet_rows(answer: httpx2.Response, separator: str) -> list[list[str]]:
    """The rows of a CSV download made for a spreadsheet: it must start with the UTF-8
    byte-order mark (Excel reads UTF-8 only after it) and use ``separator``."""
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.content.startswith(b"\xef\xbb\xbf")
    text = answer.content.decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=separator))


def test_csv_of_each_table_is_the_table_and_safe(living: LiveApp) -> None:
    with client_of(living, "Dominique Dispatch") as client:
        page = client.get("/staff/stats").text
        for dimension in ("team", "zone", "service", "week"):
            answer = client.get(f"/staff/stats/{dimension}.csv", params={"lang": "en"})
            rows = _spreadsheet_rows(answer, ",")
            assert rows[0][:3] == ["Code", "Name", "Open backlog"]
            shown = re.search(
                rf'<table id="voirie-table-{dimension}">.*?<tbody>(.*?)</tbody>', page, re.S
            )
            assert shown is not None
            assert len(rows) - 1 == shown.group(1).count("<tr>")
        assert client.get("/staff/stats/street.csv").status_code == 422


def test_csv_in_french_is_what_a_french_spreadsheet_opens(living: LiveApp) -> None:
    """French: fields split by ``;`` and decimal commas, the numbers of the English file."""
    with client_of(living, "Dominique Dispatch") as client:
        french = _spreadsheet_rows(client.get("/staff/stats/team.csv"), ";")
        english = _spreadsheet_rows(client.get("/staff/stats/team.csv?lang=en"), ",")
    assert french[0][:3] == ["Code", "Nom", "Stock ouvert"], french[0]
    assert len(french) == len(english) > 1
    assert all(len(row) == len(english[0]) for row in french)
    decimals = [
        (fr, en)
        for row_fr, row_en in zip(french[1:], english[1:], strict=True)
        for fr, en in zip(row_fr[2:], row_en[2:], strict=True)
        if "." in en
    ]
    assert decimals, english
    assert all(fr == en.replace(".", ",") for fr, en in decimals)


def test_agent_sees_own_team_only_and_visitors_are_sent_tosign_in_page(living: LiveApp) -> None:
    team = busiest_team(living.pipeline)
    with client_of(living, "Agnès Agent") as agent:
        rows = _spreadsheet_rows(agent.get("/staff/stats/team.csv"), ";")
        assert [row[0] for row in rows[1:]] == [team]
        page = agent.get("/staff/stats").text
        assert f"Équipes : {team}" in page
    with client_of(living, "Gaëlle SIG") as gis:
        rows = _spreadsheet_rows(gis.get("/staff/stats/team.csv"), ";")
        assert len(rows) - 1 == living.pipeline.reads.incidents()["team"].nunique()
    with httpx2.Client(base_url=living.base) as visitor:
        for path in ("/staff/stats", "/staff/stats/team.csv"):
            answer = visitor.get(path)
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/staff/login?next=")
        assert visitor.get("/staff/stats", params={"weeks": 0}).status_code in (303, 422)
