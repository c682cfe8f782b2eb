"""The app over a living city for the staff page tests: the 200 real reports moved up to
today and worked on (the demo's history), with a dispatcher, an agent of the busiest team
and a GIS officer; and how a test signs them in (browser or HTTP client)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import httpx2
import pytest
from browsing import LiveApp, Watch, _serve, offline

from voirie.api.app import create_app
from voirie.api.staff_session import SESSION_COOKIE
from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import RawTable, read_csv
from voirie.services.demo import relive, simulate_work
from voirie.services.pipeline import Pipeline
from voirie.services.staff_users import StaffSettings, add_user, sign_in
from voirie.settings import CitySettings, StoreSettings
from voirie.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

DATA = Path(__file__).parents[1] / "data" / "dansmarue_200.csv"
PASSWORD = "un mot de passe assez long"
WIDE = {"width": 1400, "height": 900}


@pytest.fixture(scope="module")
def living(
    tmp_path_factory: pytest.TempPathFactory, paris: City, paris_gis: CityGIS
) -> Iterator[LiveApp]:
    """The app over the 200 real reports moved up to today and worked on (the demo's
    history), with a dispatcher, an agent of the busiest team and a GIS officer."""
    path = tmp_path_factory.mktemp("stats") / "voirie.gpkg"
    store = SqliteStore(path)
    store.upgrade()
    pipeline = Pipeline(paris, store, paris_gis)
    now = datetime.now(UTC)
    raw = read_csv(DATA)
    moved = relive(raw.rows[raw.columns], now, paris.config.timezone)
    pipeline.imports.import_table(RawTable(raw.rows.assign(**moved), raw.columns), DANSMARUE)
    simulate_work(store, paris, pipeline.reads, now)
    j = paris.jurisdiction_id
    add_user(store, j, "Dominique Dispatch", "dispatcher", (), PASSWORD)
    add_user(store, j, "Agnès Agent", "agent", (busiest_team(pipeline),), PASSWORD)
    add_user(store, j, "Gaëlle SIG", "gis", (), PASSWORD)
    app = create_app(StoreSettings(database_url=f"sqlite:///{path}"), CitySettings(city="paris"))
    for base in _serve(app, lifespan="on"):
        yield LiveApp(base, pipeline)
    store.close()


def busiest_team(pipeline: Pipeline) -> str:
    """The team with the most incidents."""
    return str(pipeline.reads.incidents()["team"].value_counts().index[0])


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, Watch]]:
    """A fresh browser context (no cookies) with the network cut off."""
    context = browser.new_context(viewport=WIDE, locale="fr-FR")
    tab = context.new_page()
    watch = offline(tab)
    yield tab, watch
    context.close()


def sign_in_page(page: Page, base: str, name: str, target: str) -> None:
    page.goto(f"{base}{target}")
    page.wait_for_url(re.compile(r"/staff/login\?next="))
    page.get_by_label("Identifiant").fill(name)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(f"{base}{target}")


def client_of(living: LiveApp, name: str) -> httpx2.Client:
    """An HTTP client signed in as ``name`` (a session cookie, as the browser has)."""
    store, j = living.pipeline.store, living.pipeline.city.jurisdiction_id
    signed = sign_in(store, j, name, PASSWORD, StaffSettings())
    return httpx2.Client(base_url=living.base, cookies={SESSION_COOKIE: signed.session_id})
