"""Abuse protection of the citizens' form without tracking (issue 17 item 4), through the
app on both storage backends: the trap field (honeypot) is answered like a report and
stores nothing, sends nothing; the per-address write budget applies to the form's reports
and its "me too" (the rate limits of api/ratelimit.py, reached through the form's routes);
a second confirmation email to one address waits ``ASK_INTERVAL``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from voirie.api.app import create_app
from voirie.api.open311.settings import Open311Settings
from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.notify.consent import ASK_INTERVAL, CONFIRMATION
from voirie.notify.outbox import ask_consent
from voirie.services.pipeline import Pipeline
from voirie.settings import CitySettings, RateLimitSettings, StoreSettings
from voirie.store import Store, open_store

LON, LAT = 2.363114, 48.873504  # Quai de Valmy, 75010
DUMPED = "Autres objets encombrants abandonnés"
PLENTY = "1000/minute"


@asynccontextmanager
async def _kept_state(app: FastAPI) -> AsyncIterator[None]:
    yield


@pytest.fixture
def pipeline(store_url: str, paris: City, paris_gis: CityGIS) -> Iterator[Pipeline]:
    store = open_store(StoreSettings(database_url=store_url, pool_min_size=1, pool_max_size=4))
    store.upgrade()
    yield Pipeline(paris, store, paris_gis)
    store.close()


def _client(pipeline: Pipeline, media: Path, peer: str, **rates: str) -> TestClient:
    """The app over the test's store with these rates (the others generous)."""
    settings = RateLimitSettings(
        **{
            "rate_address_reads": PLENTY,
            "rate_address_writes": PLENTY,
            "rate_key": PLENTY,
            "rate_support": PLENTY,
            "rate_storage_prefix": f"voirie-test-{uuid.uuid4().hex}",
            **rates,
        }
    )
    app = create_app(
        StoreSettings(database_url="sqlite:///unused.gpkg"),
        CitySettings(city="paris"),
        rate_limits=settings,
    )
    app.state.pipeline = pipeline
    app.state.open311_settings = Open311Settings(media_dir=media)
    app.router.lifespan_context = _kept_state
    return TestClient(app, client=(peer, 40000))


def _report(client: TestClient, city: City, **fields: object) -> int:
    body = {
        "service_code": city.services_by_name[DUMPED.casefold()].code,
        "lat": LAT,
        "lon": LON,
        "description": f"Matelas ({uuid.uuid4().hex[:6]})",
        "attributes": {"volume": ["moyen"], "objets": ["matelas"]},
        **fields,
    }
    answer = client.post(
        "/api/v1/reports", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    return answer.status_code


def _count(store: Store, city: City, table: str) -> int:
    return store.count(table, city.jurisdiction_id)


def test_a_filled_trap_field_looks_accepted_and_stores_nothing(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    city, store = pipeline.city, pipeline.store
    client = _client(pipeline, tmp_path, "198.51.100.20")
    assert _report(client, city) == 201  # a person's report, for comparison
    reports, outbox = _count(store, city, "reports"), _count(store, city, "outbox")
    body = {
        "service_code": city.services_by_name[DUMPED.casefold()].code,
        "lat": LAT,
        "lon": LON,
        "description": "Cheap watches http://spam.example",
        "email": "victim@example.org",
        "website": "http://spam.example",
    }
    answer = client.post("/api/v1/reports", json=body, headers={"Idempotency-Key": "bot-1"})
    assert answer.status_code == 201
    assert set(answer.json()) == {"report_id", "incident_id", "attached", "tracking_url"}
    assert "/suivi/" in answer.json()["tracking_url"]
    assert client.get(answer.json()["tracking_url"]).status_code == 404
    assert _count(store, city, "reports") == reports
    assert _count(store, city, "outbox") == outbox  # no confirmation to the victim either


def test_the_per_address_budget_applies_to_the_form_and_me_too(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    city = pipeline.city
    client = _client(pipeline, tmp_path, "198.51.100.21", rate_address_writes="2/minute")
    codes = [_report(client, city) for _ in range(3)]
    assert codes == [201, 201, 429]
    refused = client.post("/api/v1/reports", json={})
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    # "Me too" from the form's list has its own budget per incident and address.
    incidents = pipeline.reads.incidents()
    url = f"/api/v1/incidents/{int(incidents['incident_id'].iloc[0])}/supporters"
    neighbour = _client(pipeline, tmp_path, "198.51.100.22", rate_support="2/day")
    codes = [
        neighbour.post(url, json={"email": f"v{n}@example.org", "lang": "fr"}).status_code
        for n in range(3)
    ]
    assert codes == [201, 201, 429]


def test_one_confirmation_email_per_address_per_interval(pipeline: Pipeline) -> None:
    city, store = pipeline.city, pipeline.store
    start = datetime.now(UTC)
    for moment in (start, start + ASK_INTERVAL / 2, start + ASK_INTERVAL):
        with store.transaction(city.jurisdiction_id) as uow:
            ask_consent(uow, city, "Flooded@Example.org", "fr", moment)
    queued = store.lookup("outbox", city.jurisdiction_id, "kind", [CONFIRMATION])
    assert queued["target"].tolist() == ["flooded@example.org"] * 2
