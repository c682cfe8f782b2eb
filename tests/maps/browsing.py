"""Browser test support: headless system Chromium, cut off from everything but 127.0.0.1,
servers to point it at (a bare page server, and the whole app on real Paris reports), and
helpers. The fixtures are registered by this folder's ``conftest.py``.

Set ``VOIRIE_SCREENSHOTS=/some/folder`` to keep a screenshot of each page the browser
tests draw (to look at them; they are never committed).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from voirie.api.app import create_app
from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.maps.static import STATIC_DIR
from voirie.services.pipeline import Pipeline
from voirie.settings import CitySettings, StoreSettings
from voirie.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Route

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DATA = Path(__file__).parents[1] / "data" / "dansmarue_200.csv"
PHONE = {"width": 375, "height": 667}
LON, LAT = 2.363114, 48.873504  # Quai de Valmy, 75010: where the phone stands
START_TIMEOUT_S = 120  # the app builds the city's GIS indexes on start; the machine is shared
AXE = Path(__file__).parents[2] / "node_modules" / "axe-core" / "axe.min.js"
"""axe-core, installed by ``scripts/setup`` from npm; injected into pages from this file."""
SERIOUS = frozenset({"serious", "critical"})


def _unavailable(reason: str) -> NoReturn:
    """Skip a browser test locally, but fail it in CI where the browser must exist."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser test cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless system Chromium (never a downloaded browser), one per test module."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} not found")
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        except Error as error:
            _unavailable(f"chromium does not start: {error}")
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Watch:
    """What a page did wrong: console errors, uncaught exceptions, requests off 127.0.0.1."""

    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)


def offline(page: Page) -> Watch:
    """Block every request that leaves 127.0.0.1 and record errors, as on a cut-off machine."""
    watch = Watch()

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watch.errors.append(message.text)

    def route(request_route: Route) -> None:
        if request_route.request.url.startswith("http://127.0.0.1:"):
            request_route.continue_()
        else:
            watch.blocked.append(request_route.request.url)
            request_route.abort()

    page.on("console", console)
    page.on("pageerror", lambda error: watch.errors.append(str(error)))
    page.route("**/*", route)
    return watch


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """The serious and critical accessibility violations axe-core finds in the page as it
    is now (WCAG 2.1 A/AA and best practices), each with its rule id and the elements at
    fault. axe runs in the page from the local npm package: nothing is fetched."""
    if not AXE.exists():
        _unavailable(f"{AXE} not found: scripts/setup installs axe-core")
    page.evaluate(AXE.read_text())
    results = page.evaluate(
        "() => axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"
    )
    assert results["passes"], "axe-core ran no rule"
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["html"][:200] for n in v["nodes"]],
        }
        for v in results["violations"]
        if v["impact"] in SERIOUS
    ]


def screenshot(page: Page, name: str) -> None:
    """Keep a screenshot when ``VOIRIE_SCREENSHOTS`` names a folder."""
    folder = os.environ.get("VOIRIE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def phone(browser: Browser) -> BrowserContext:
    """A phone-sized context standing on the Quai de Valmy, with geolocation allowed."""
    return browser.new_context(
        viewport=PHONE,
        geolocation={"longitude": LON, "latitude": LAT},
        permissions=["geolocation"],
        is_mobile=True,
        has_touch=True,
    )


def _serve(app: FastAPI, lifespan: str) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free 127.0.0.1 port in a thread; yield its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan=lifespan, ws="none"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def serve_page() -> Iterator[Callable[[str], str]]:
    """Serve one HTML page at ``/`` and the vendored assets at ``/static``."""
    app = FastAPI()
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    pages: dict[str, str] = {}

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return pages["/"]

    for base in _serve(app, lifespan="off"):

        def publish(page: str, root: str = base) -> str:
            pages["/"] = page
            return f"{root}/"

        yield publish


@dataclass(frozen=True)
class LiveApp:
    """The whole app served over HTTP, and a pipeline on the same store to look behind it."""

    base: str
    pipeline: Pipeline


@pytest.fixture(scope="module")
def live_app(
    tmp_path_factory: pytest.TempPathFactory, paris: City, paris_gis: CityGIS
) -> Iterator[LiveApp]:
    """``create_app`` over the 200 real Paris reports (embedded store), on 127.0.0.1."""
    path = tmp_path_factory.mktemp("pages") / "voirie.gpkg"
    store = SqliteStore(path)
    store.upgrade()
    pipeline = Pipeline(paris, store, paris_gis)
    pipeline.imports.import_table(read_csv(DATA), DANSMARUE)
    with pytest.MonkeyPatch.context() as env:  # photos sent by the pages stay in the test's folder
        env.setenv("VOIRIE_MEDIA_DIR", str(path.parent / "media"))
        app = create_app(
            StoreSettings(database_url=f"sqlite:///{path}"), CitySettings(city="paris")
        )
    for base in _serve(app, lifespan="on"):
        yield LiveApp(base, pipeline)
    store.close()


class PageAssets(HTMLParser):
    """The URLs a page loads, in document order: scripts, stylesheets and icons (``data:``
    URLs load nothing and are left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        url = found.get("src") if tag == "script" else found.get("href") if tag == "link" else None
        if url and not url.startswith("data:"):
            self.urls.append(url)
