"""The dispatch map: offline, escaped, compact at 100k incidents, clustered and filterable."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import geopandas as gpd
import pandas as pd
import pytest
from browsing import PHONE, LiveApp, PageAssets, offline, screenshot
from shapely.geometry import Point

from voirie.gis.enrich import CityGIS
from voirie.maps.dispatch import MARKER_CLASS, dispatch_data, render_dispatch_map, team_colour
from voirie.maps.static import STATIC_DIR
from voirie.model import Status
from voirie.services.auth import Role, issue_token
from voirie.store.selection import Selection

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

XSS = "<img src=x onerror=alert(1)>"
BREAKOUT = "</script><script>window.pwned=1</script>"
TEAMS = {"VOI-N": "Voirie Nord", "PROP": "Propreté <Centre>", "ECL": "Éclairage public"}
NOW = datetime(2024, 5, 20, tzinfo=UTC)


def _incidents() -> gpd.GeoDataFrame:
    """Five incidents around the Hôtel de Ville, Paris; some carry hostile text."""
    t0 = datetime(2024, 5, 2, 8, 15, tzinfo=UTC)
    rows = [
        (1, "POTHOLE", "Nid de poule", "VOI-N", "new", 1, "Rue de Rivoli", (2.3522, 48.8566),
         t0 + timedelta(days=30)),
        (2, "DUMP", XSS, "PROP", "acknowledged", 3, None, (2.3470, 48.8589),
         t0 + timedelta(days=1)),
        (3, "LIGHT", "Lampadaire éteint", "ECL", "in_progress", 2, BREAKOUT,
         (2.3443, 48.8578), None),
        (4, "GRAFFITI", "Graffiti", "PROP", "scheduled", 1, "Rue `${window.pwned=1}` {{ 7*7 }}",
         (2.3601, 48.8605), t0 + timedelta(days=40)),
        (5, "POTHOLE", "Nid de poule", "UNKNOWN", "new", 4, "Rue Saint-Antoine",
         (2.3622, 48.8540), t0 + timedelta(days=2)),
    ]  # fmt: skip
    return gpd.GeoDataFrame(
        {
            "incident_id": [r[0] for r in rows],
            "service_code": [r[1] for r in rows],
            "service_name": [r[2] for r in rows],
            "team": [r[3] for r in rows],
            "status": [r[4] for r in rows],
            "priority": 2,
            "report_count": [r[5] for r in rows],
            "supporters": [0, 2, 0, 1, 0],
            "first_reported_at": [t0 + timedelta(days=3 * i) for i in range(len(rows))],
            "last_reported_at": [t0 + timedelta(days=3 * i + 1) for i in range(len(rows))],
            "due_at": [r[8] for r in rows],
            "street_name": [r[6] for r in rows],
        },
        geometry=[Point(*r[7]) for r in rows],
        crs="EPSG:4326",
    )


def _data_block(page: str) -> dict[str, object]:
    match = re.search(
        r'<script type="application/json" id="voirie-data">(.*?)</script>', page, re.S
    )
    assert match
    block: dict[str, object] = json.loads(match[1])
    return block


def test_page_loads_only_vendored_assets() -> None:
    page = render_dispatch_map(_incidents(), TEAMS, static_url="/assets/", now=NOW)

    parser = PageAssets()
    parser.feed(page)
    assert parser.urls == [
        "/assets/leaflet.css",
        "/assets/MarkerCluster.css",
        "/assets/MarkerCluster.Default.css",
        "/assets/voirie.css",
        "/assets/leaflet.js",
        "/assets/leaflet.markercluster.js",
        "/assets/leaflet-heat.js",
        "/assets/voirie.js",
        "/assets/dispatch.js",
    ]
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    for url in parser.urls:
        assert (STATIC_DIR / url.removeprefix("/assets/")).is_file()
    for licence in ("leaflet", "leaflet.markercluster", "leaflet.heat"):
        assert (STATIC_DIR / f"{licence}.LICENSE.txt").is_file()


def test_hostile_text_stays_data() -> None:
    page = render_dispatch_map(_incidents(), TEAMS, now=NOW)

    assert "<img" not in page
    assert "window.pwned=1</script>" not in page  # cannot close the data block
    assert "Propreté <Centre>" not in page
    block = _data_block(page)
    assert XSS in [s["name"] for s in block["services"]]  # type: ignore[attr-defined]
    assert BREAKOUT in block["streets"]  # type: ignore[operator]
    assert "{{ 7*7 }}" in " ".join(block["streets"])  # type: ignore[arg-type]


def test_data_block_is_columnar_and_complete() -> None:
    incidents = _incidents()

    data = dispatch_data(incidents, TEAMS, now=NOW)

    columns = data["incidents"]
    assert columns["id"] == [1, 2, 3, 4, 5]
    assert all(len(values) == len(incidents) for values in columns.values())
    teams = [t["code"] for t in data["teams"]]
    assert set(teams) == {*TEAMS, "UNKNOWN"}  # an unknown team is kept, named by its code
    assert data["teams"][teams.index("PROP")]["colour"] == team_colour("PROP")
    assert [data["statuses"][s]["code"] for s in columns["status"]] == list(incidents["status"])
    assert columns["due"][2] is None
    overdue = [d is not None and d < data["now"] for d in columns["due"]]
    assert overdue == [False, True, False, False, True]
    assert columns["supporters"] == [0, 2, 0, 1, 0]


def test_page_stays_light_with_100k_incidents() -> None:
    """One data block, no per-marker HTML: 100k incidents fit in a few megabytes."""
    five = _incidents()
    copies = 20_000
    many = gpd.GeoDataFrame(
        pd.concat([five] * copies, ignore_index=True), geometry="geometry", crs=4326
    )
    many["incident_id"] = range(1, len(many) + 1)
    many["street_name"] = "Rue " + (many["incident_id"] % 3000).astype(str)

    page = render_dispatch_map(many, TEAMS, now=NOW)

    assert len(many) == 100_000
    assert len(page.encode()) < 9_000_000
    assert page.count("<") < 200  # markup does not grow with the incidents


def test_team_colour_is_stable() -> None:
    assert team_colour("PROP") == team_colour("PROP")
    assert re.fullmatch(r"#[0-9a-f]{6}", team_colour("PROP"))


def test_unknown_language_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported language"):
        render_dispatch_map(_incidents(), TEAMS, lang="de")


def test_background_outlines_carry_geometry_only(paris_gis: CityGIS) -> None:
    """District outlines give bearings offline; their attribute text never reaches the page."""
    districts = paris_gis.zones["arrondissement"].zones
    page = render_dispatch_map(_incidents().iloc[:0], {}, background=districts, now=NOW)
    shapes = _data_block(page)["background"]["features"]  # type: ignore[index]
    assert len(shapes) == 20
    assert "Panthéon" not in page  # a district name: attributes are dropped


def _drawn(page: Page) -> int:
    """Incidents on screen: single markers plus the counts shown on cluster icons."""
    total: int = page.evaluate(
        """cls => document.querySelectorAll('path.' + cls).length +
           [...document.querySelectorAll('.marker-cluster span')]
             .reduce((n, s) => n + Number(s.textContent), 0)""",
        MARKER_CLASS,
    )
    return total


def _shown(page: Page) -> int:
    return int(page.locator("#voirie-count").get_attribute("data-shown") or -1)


@pytest.mark.browser
def test_map_draws_filters_and_escapes_offline(
    browser: Browser, serve_page: Callable[[str], str]
) -> None:
    incidents = _incidents()
    url = serve_page(render_dispatch_map(incidents, TEAMS, now=NOW))
    page = browser.new_page()
    watch = offline(page)
    page.goto(url)
    page.wait_for_selector("#voirie-map[data-ready=true]")
    page.wait_for_function("() => document.querySelectorAll('path.voirie-incident').length > 0")

    assert _shown(page) == 5
    assert _drawn(page) == 5
    assert page.locator("path.voirie-overdue").count() >= 1
    screenshot(page, "dispatch-hostile")

    page.select_option("select[name=service]", label="Nid de poule")
    assert _shown(page) == 2
    page.uncheck("input[name=status][value=new]")
    assert _shown(page) == 0
    page.check("input[name=status][value=new]")
    page.check("input[name=overdue]")
    assert _shown(page) == 1  # incident 5: due before NOW; incident 1 is not yet due
    page.uncheck("input[name=overdue]")
    page.select_option("select[name=service]", value="")
    page.select_option("select[name=age]", value="7")  # reported under 7 days before NOW
    assert _shown(page) == 1  # incident 5, first reported 12 days after t0 (NOW - 6 days)
    page.select_option("select[name=age]", value="")
    page.hover(".leaflet-control-layers")
    page.locator(".leaflet-control-layers-overlays label", has_text="Propreté <Centre>").locator(
        "input"
    ).uncheck()
    assert _shown(page) == 3
    assert _drawn(page) == 3
    page.locator(".leaflet-control-layers-overlays label", has_text="Propreté <Centre>").locator(
        "input"
    ).check()
    page.locator(".leaflet-control-layers-overlays label", has_text="Carte de chaleur").locator(
        "input"
    ).check()
    assert page.locator("canvas.leaflet-heatmap-layer").count() == 1

    texts: list[str] = []
    markers = page.locator(f"path.{MARKER_CLASS}")
    for index in range(markers.count()):
        markers.nth(index).dispatch_event("click")
        texts.extend(page.locator(".voirie-popup").all_inner_texts())
    joined = "\n".join(texts)
    assert XSS in joined or BREAKOUT in joined or "{{ 7*7 }}" in joined
    assert page.locator("img").count() == 0
    assert page.evaluate("window.pwned") is None
    assert watch.blocked == []
    assert watch.errors == []


@pytest.mark.browser
def test_real_dispatch_page_renders_and_asks_for_a_token(
    browser: Browser, live_app: LiveApp
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    watch = offline(page)
    page.goto(f"{live_app.base}/maps/dispatch?days=3650&lang=en")
    page.wait_for_selector("#voirie-map[data-ready=true]")
    open_incidents = live_app.pipeline.reads.count("incidents")

    assert _shown(page) == open_incidents
    page.wait_for_function("() => document.querySelector('.marker-cluster, path.voirie-incident')")
    assert _drawn(page) == open_incidents
    assert page.locator(".leaflet-control-layers-overlays label").count() > 3
    screenshot(page, "dispatch")

    page.evaluate("() => window.scrollTo(0, 0)")
    first = page.locator(f"path.{MARKER_CLASS}")
    if first.count() == 0:  # everything clustered: zoom in on one cluster
        page.locator(".marker-cluster").first.click()
        page.wait_for_function("() => document.querySelectorAll('path.voirie-incident').length")
    first.first.dispatch_event("click")
    page.locator(".voirie-popup").wait_for()
    # Clicks on clusters may still be zooming and reopening popups: act on one incident
    # opened by its link, whose popup nothing else redraws.
    incident_id = int(live_app.pipeline.reads.incidents(Selection(limit=1))["incident_id"].iloc[0])
    page.evaluate(f"() => {{ window.location.hash = 'incident={incident_id}'; }}")
    popup = page.locator(f'.voirie-popup[data-incident="{incident_id}"]')
    popup.wait_for()
    popup.locator("input[name=reason]").first.fill("checked on site")
    popup.locator("form.voirie-action button").first.click()
    popup.get_by_text("Paste your access token first").wait_for()
    assert watch.blocked == []
    assert watch.errors == []


@pytest.mark.browser
def test_team_view_on_a_phone(browser: Browser, live_app: LiveApp) -> None:
    page = browser.new_page(viewport=PHONE)
    watch = offline(page)
    page.goto(f"{live_app.base}/maps/dispatch?days=3650&team=graffitis")
    page.wait_for_selector("#voirie-map[data-ready=true]")
    incidents = live_app.pipeline.reads.incidents()
    mine = incidents[
        (incidents["team"] == "graffitis")
        & incidents["status"].isin([s.value for s in Status if s.is_open])
    ]

    assert _shown(page) == len(mine) > 0
    assert page.locator(".leaflet-control-layers-overlays label").count() == 2  # team, heatmap
    screenshot(page, "dispatch-team-phone")
    assert watch.blocked == []
    assert watch.errors == []


@pytest.mark.browser
def test_dispatcher_acts_through_the_staff_api(browser: Browser, live_app: LiveApp) -> None:
    """Token pasted once, then status and team changed from a popup, as stored."""
    pipeline = live_app.pipeline
    j = pipeline.city.jurisdiction_id
    token = issue_token(pipeline.store, j, "dispatch-h4", Role.DISPATCHER)
    target = pipeline.reads.incidents(Selection(statuses=(Status.NEW.value,))).iloc[0]
    incident_id = int(target["incident_id"])
    other_team = next(code for code in pipeline.city.teams if code != target["team"])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    watch = offline(page)
    page.goto(f"{live_app.base}/maps/dispatch?days=3650")
    page.wait_for_selector("#voirie-map[data-ready=true]")
    page.fill("#voirie-token input[name=token]", token)
    page.click("#voirie-token button")
    assert page.evaluate("() => sessionStorage.getItem('voirie.token')") == token
    assert page.locator("#voirie-token input[name=token]").input_value() == ""

    page.evaluate(f"() => {{ window.location.hash = 'incident={incident_id}'; }}")
    popup = page.locator(f'.voirie-popup[data-incident="{incident_id}"]')
    popup.wait_for()
    status_form = popup.locator("form.voirie-action").nth(0)
    status_form.locator("select").select_option(Status.ACKNOWLEDGED.value)
    status_form.locator("input[name=reason]").fill("vu par l'équipe")
    status_form.locator("button").click()
    popup.locator(".voirie-done", has_text="Enregistré.").wait_for()
    assert "Pris en compte" in popup.locator("table").inner_text()  # redrawn as stored
    team_form = popup.locator("form.voirie-action").nth(1)
    team_form.locator("select").select_option(other_team)
    team_form.locator("input[name=reason]").fill("hors de notre secteur")
    team_form.locator("button").click()
    page.wait_for_function(
        "name => document.querySelector('.voirie-popup table').innerText.includes(name)",
        arg=pipeline.city.teams[other_team].name,
    )
    screenshot(page, "dispatch-popup")

    stored = pipeline.reads.incidents(Selection(ids=(incident_id,))).iloc[0]
    assert (stored["status"], stored["team"]) == (Status.ACKNOWLEDGED.value, other_team)
    status_form.locator("select").select_option(Status.NEW.value)
    status_form.locator("input[name=reason]").fill("retour en arrière")
    status_form.locator("button").click()
    refused = status_form.locator("output.voirie-error")
    refused.wait_for()
    # In French, with the statuses the workflow allows from here, in French.
    assert refused.inner_text().startswith(
        "Refusé (409)\u00a0: changement impossible depuis ce statut ; statuts possibles : "
    )
    assert "Planifié" in refused.inner_text()
    assert watch.blocked == []
    assert [e for e in watch.errors if "409" not in e] == []
