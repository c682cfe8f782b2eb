"""A running app over real Paris reports that carry reporter contact data, with one token
per role: what the staff API tests and the authorization matrix run against.

The 200 DansMaRue reports are imported through the generic ``csv`` mapping with four
contact columns added (name, email, phone, device id), each value carrying a marker that
no public response may ever contain.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from databases import store_urls
from fastapi.testclient import TestClient

from voirie.api.app import create_app
from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.services.auth import Role, issue_token
from voirie.services.pipeline import Pipeline
from voirie.settings import CitySettings, StoreSettings
from voirie.store import open_store

DATA = Path(__file__).parents[1] / "data" / "dansmarue_200.csv"
# The agent's team and another team, both with many incidents in the sample.
OWN_TEAM, OTHER_TEAM = "graffitis", "Ramen"
# Substrings of every contact value written below; none may appear in a public response.
CONTACT_MARKERS = ("Temoin", "@exemple.invalid", "+33-6-99-", "dev-7f3a")
WITH_CONTACTS = DANSMARUE.model_copy(
    update={
        "contact_name": "nom_declarant",
        "contact_email": "courriel",
        "contact_phone": "telephone",
        "device_id": "appareil",
    }
)


def contacts_csv(folder: Path) -> Path:
    """The sample with a reporter's name, email, phone and device id on every row."""
    with DATA.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    target = folder / "dansmarue_200_contacts.csv"
    with target.open("w", encoding="utf-8", newline="") as handle:
        columns = [*rows[0], "nom_declarant", "courriel", "telephone", "appareil"]
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for i, row in enumerate(rows):
            writer.writerow(
                row
                | {
                    "nom_declarant": f"Camille Temoin{i:03d}",
                    "courriel": f"camille.t{i:03d}@exemple.invalid",
                    "telephone": f"+33-6-99-{i:04d}",
                    "appareil": f"dev-7f3a{i:04d}",
                }
            )
    return target


@dataclass
class StaffWorld:
    """The app, a token per role, and the incidents of the agent's team and another."""

    client: TestClient
    tokens: dict[str, str]
    """admin, dispatcher, agent (of OWN_TEAM), gis, client."""
    incidents: pd.DataFrame
    """The incidents layer as imported."""

    @property
    def pipeline(self) -> Pipeline:
        """The app's own pipeline, to compare answers with the store's current state."""
        pipeline: Pipeline = self.client.app.state.pipeline  # type: ignore[attr-defined]
        return pipeline

    def headers(self, who: str) -> dict[str, str]:
        """The Authorization header of a role's token."""
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def incident_ids(self, team: str) -> list[int]:
        """Ids of the team's incidents, in id order."""
        return [int(i) for i in self.incidents.loc[self.incidents["team"] == team, "incident_id"]]


def module_world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    paris: City,
    gis: CityGIS,
) -> Iterator[StaffWorld]:
    """A world for a whole test module on the backend of ``request.param`` (building one
    takes seconds: the 200 reports are imported).

    The PostGIS database is a fresh clone of the test template, dropped afterwards.
    """
    folder = tmp_path_factory.mktemp("staff")
    for url in store_urls(request, request.param, folder):
        with staff_world(url, folder, paris, gis) as world:
            yield world


def world_with_photos(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    paris: City,
    gis: CityGIS,
) -> Iterator[StaffWorld]:
    """``module_world`` with the photos it receives kept in a folder of the test's."""
    media = tmp_path_factory.mktemp("media")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("VOIRIE_MEDIA_DIR", str(media))
        yield from module_world(request, tmp_path_factory, paris, gis)


@contextmanager
def staff_world(url: str, folder: Path, paris: City, gis: CityGIS) -> Iterator[StaffWorld]:
    """Import the sample with contacts into the store at ``url``, then serve it."""
    store = open_store(StoreSettings(database_url=url, pool_min_size=1, pool_max_size=2))
    try:
        store.upgrade()
        pipeline = Pipeline(paris, store, gis)
        summary = pipeline.imports.import_table(read_csv(contacts_csv(folder)), WITH_CONTACTS)
        assert summary.imported == 200
        j = paris.jurisdiction_id
        tokens = {
            role.value: issue_token(
                store, j, f"{role.value} user", role, [OWN_TEAM] if role is Role.AGENT else []
            )
            for role in Role
        }
        incidents = pipeline.reads.incidents()
    finally:
        store.close()
    app = create_app(StoreSettings(database_url=url), CitySettings(city="paris"), gis=gis)
    with TestClient(app) as client:
        yield StaffWorld(client, tokens, incidents)


PASSWORD = "un mot de passe assez long"
"""The password of the staff accounts the sign-in tests create."""


def login_form(client: TestClient, path: str = "/staff/login") -> str:
    """The anti-forgery token of the sign-in form at ``path``."""
    page = client.get(path)
    assert page.status_code == 200
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def signed_in(world: StaffWorld, who: str, base_url: str = "http://testserver") -> TestClient:
    """A browser of its own (own cookies) signed in as ``who`` (password ``PASSWORD``)."""
    client = TestClient(world.client.app, base_url=base_url, follow_redirects=False)
    token = login_form(client)
    answer = client.post(
        "/staff/login",
        data={"name": who, "password": PASSWORD, "csrf_token": token, "next": "/staff/"},
    )
    assert answer.status_code == 303, answer.text
    return client
