"""The dispatch map renders offline, escapes data, and draws one marker per incident."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import geopandas as gpd
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from shapely.geometry import Point

from voirie.gis.enrich import CityGIS
from voirie.maps.dispatch import MARKER_CLASS, render_dispatch_map, team_colour
from voirie.maps.static import STATIC_DIR

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Page, Route

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
XSS = "<img src=x onerror=alert(1)>"
TEAMS = {"VOI-N": "Voirie Nord", "PROP": "Propreté <Centre>", "ECL": "Éclairage public"}
COLUMNS = [
    "incident_id",
    "service_code",
    "service_name",
    "team",
    "status",
    "report_count",
    "first_reported_at",
    "last_reported_at",
    "street_name",
]


def _incidents() -> gpd.GeoDataFrame:
    """Five incidents around the Hôtel de Ville, Paris; one carries hostile text."""
    t0 = datetime(2024, 5, 2, 8, 15, tzinfo=UTC)
    rows = [
        (1, "POTHOLE", "Nid de poule", "VOI-N", "new", 1, "Rue de Rivoli", (2.3522, 48.8566)),
        (2, "DUMP", XSS, "PROP", "acknowledged", 3, None, (2.3470, 48.8589)),
        (3, "LIGHT", "Lampadaire éteint", "ECL", "in_progress", 2, "Quai de la Mégisserie",
         (2.3443, 48.8578)),
        (4, "GRAFFITI", "Graffiti", "PROP", "scheduled", 1, "Rue `${window.pwned=1}` {{ 7*7 }}",
         (2.3601, 48.8605)),
        (5, "POTHOLE", "Nid de poule", "UNKNOWN", "resolved", 4, "Rue Saint-Antoine",
         (2.3622, 48.8540)),
    ]  # fmt: skip
    return gpd.GeoDataFrame(
        {
            "incident_id": [r[0] for r in rows],
            "service_code": [r[1] for r in rows],
            "service_name": [r[2] for r in rows],
            "team": [r[3] for r in rows],
            "status": [r[4] for r in rows],
            "report_count": [r[5] for r in rows],
            "first_reported_at": [t0 + timedelta(hours=i) for i in range(len(rows))],
            "last_reported_at": [None] + [(t0 + timedelta(days=1)).isoformat()] * (len(rows) - 1),
            "street_name": [r[6] for r in rows],
        },
        geometry=[Point(*r[7]) for r in rows],
        crs="EPSG:4326",
    )


def _empty() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {column: [] for column in COLUMNS}, geometry=gpd.GeoSeries([], crs="EPSG:4326")
    )


class _Assets(HTMLParser):
    """Collects the URLs of the scripts and stylesheets a page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script" and found.get("src"):
            self.urls.append(str(found["src"]))
        if tag == "link" and found.get("rel") == "stylesheet" and found.get("href"):
            self.urls.append(str(found["href"]))


def _assets(page: str) -> list[str]:
    parser = _Assets()
    parser.feed(page)
    return parser.urls


def test_page_loads_only_vendored_assets() -> None:
    page = render_dispatch_map(_incidents(), TEAMS, static_url="/assets/")

    urls = _assets(page)
    assert urls == ["/assets/leaflet.js", "/assets/leaflet.css"]
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    for url in urls:
        assert (STATIC_DIR / url.removeprefix("/assets/")).is_file()
    assert (STATIC_DIR / "images" / "layers.png").is_file()
    assert (STATIC_DIR / "leaflet.LICENSE.txt").is_file()


def test_data_is_escaped() -> None:
    page = render_dispatch_map(_incidents(), TEAMS)

    assert "<img" not in page
    assert "onerror=alert(1)\\u0026gt;" in page  # the popup's JSON carries &lt;img ...&gt;
    assert "Propreté <Centre>" not in page
    assert "Propreté &lt;Centre&gt;" in page  # legend
    assert "{{" not in page  # branca re-renders output as Jinja: braces must be escaped
    assert "7*7" in page  # ...so the expression is shown, not evaluated
    assert "`${" not in page


def test_one_marker_per_incident_and_a_legend() -> None:
    incidents = _incidents()

    page = render_dispatch_map(incidents, TEAMS, lang="en")

    assert page.count("L.circleMarker(") == len(incidents)
    assert page.count(f'"className": "{MARKER_CLASS}"') == len(incidents)
    assert page.count("L.featureGroup(") == incidents["team"].nunique()
    assert "L.control.layers(" in page
    assert "fitBounds(" in page
    assert "Propreté &lt;Centre&gt; (2)" in page
    assert "UNKNOWN (1)" in page  # a team missing from `teams` is shown by its code
    assert team_colour("PROP") in page
    assert "First reported" in page
    assert "Premier signalement" not in page


def test_team_colour_is_stable() -> None:
    assert team_colour("PROP") == team_colour("PROP")
    assert re.fullmatch(r"#[0-9a-f]{6}", team_colour("PROP"))


def test_empty_frame_renders() -> None:
    page = render_dispatch_map(_empty(), TEAMS)

    assert "L.map(" in page
    assert "L.circleMarker(" not in page
    assert "fitBounds(" not in page


def test_unknown_language_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported language"):
        render_dispatch_map(_empty(), TEAMS, lang="de")


def _unavailable(reason: str) -> NoReturn:
    """Skip a browser test locally, but fail it in CI where the browser must exist."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser test cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def browser_page() -> Iterator[Page]:
    """A fresh page of headless system Chromium (never a downloaded browser)."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} not found")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        except Error as error:
            _unavailable(f"chromium does not start: {error}")
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.fixture
def serve() -> Iterator[Callable[[str], str]]:
    """Serve a page at ``/`` and the vendored assets at ``/static`` on 127.0.0.1."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = FastAPI()
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    pages: dict[str, str] = {}

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return pages["/"]

    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()

    def publish(page: str) -> str:
        pages["/"] = page
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"

    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield publish
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.mark.browser
def test_map_draws_offline_in_chromium(browser_page: Page, serve: Callable[[str], str]) -> None:
    incidents = _incidents()
    url = serve(render_dispatch_map(incidents, TEAMS))
    page = browser_page
    errors: list[str] = []
    blocked: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    def offline(route: Route) -> None:
        if route.request.url.startswith("http://127.0.0.1:"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.on("console", console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.route("**/*", offline)
    page.goto(url)
    markers = page.locator(f"path.{MARKER_CLASS}")
    page.wait_for_function(
        "n => document.querySelectorAll('path.voirie-incident').length === n",
        arg=len(incidents),
        timeout=10_000,
    )
    popups: list[str] = []
    for index in range(markers.count()):
        markers.nth(index).dispatch_event("click")
        popups.extend(page.locator(".leaflet-popup-content").all_inner_texts())

    assert markers.count() == len(incidents)
    assert page.locator(".voirie-legend li").count() == incidents["team"].nunique()
    assert page.locator(".leaflet-control-layers-overlays label").count() == 4
    assert any(XSS in text for text in popups), popups
    assert any("{{ 7*7 }}" in text for text in popups), popups
    assert page.locator("img").count() == 0
    assert page.evaluate("window.pwned") is None
    assert blocked == []
    assert errors == []


def test_background_outlines_carry_geometry_only(paris_gis: CityGIS) -> None:
    """District outlines give bearings offline; their attribute text never reaches the page."""
    districts = paris_gis.zones["arrondissement"].zones
    page = render_dispatch_map(_empty(), {}, background=districts)
    assert page.count('"type": "Polygon"') + page.count('"type": "MultiPolygon"') == 20
    assert "Panthéon" not in page  # a district name: attributes are dropped
