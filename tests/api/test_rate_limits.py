"""Rate limits (issue 13 item 2): per API key, per client address (X-Forwarded-For believed
only from trusted proxies), per "me too" of one address on one incident; 429 with
Retry-After in the route's error shape; on both storage backends, with the in-process
counters and with the redis store several workers share."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from open311_support import API, CARTONS, VALMY, assert_error, xml

from voirie.api.app import create_app
from voirie.api.open311.settings import Open311Settings
from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.services.auth import issue_token
from voirie.services.pipeline import Pipeline
from voirie.settings import CitySettings, RateLimitSettings, StoreSettings
from voirie.store import Store, open_store

HERE = {"service_code": CARTONS, "lat": str(VALMY["lat"]), "long": str(VALMY["long"])}
PLENTY = "1000/minute"
REDIS = "redis://127.0.0.1:6379"


class Limited:
    """An app with rate limits over one store of the test's backend, with two client keys."""

    def __init__(self, store: Store, pipeline: Pipeline, media: Path) -> None:
        self.store = store
        self.pipeline = pipeline
        self.media = media
        j = pipeline.city.jurisdiction_id
        self.keys = [issue_token(store, j, f"appli-{n}", "client") for n in (1, 2)]

    def app(self, **rates: str) -> FastAPI:
        """The app with ``rates`` (others generous, so only the one under test bites)."""
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
        app.state.pipeline = self.pipeline
        app.state.open311_settings = Open311Settings(media_dir=self.media)
        app.router.lifespan_context = _kept_state  # the test's pipeline, not a new store
        return app


@asynccontextmanager
async def _kept_state(app: FastAPI) -> AsyncIterator[None]:
    yield


@pytest.fixture
def limited(store_url: str, paris: City, paris_gis: CityGIS, tmp_path: Path) -> Iterator[Limited]:
    store = open_store(StoreSettings(database_url=store_url, pool_min_size=1, pool_max_size=4))
    store.upgrade()
    yield Limited(store, Pipeline(paris, store, paris_gis), tmp_path / "media")
    store.close()


def _post(client: TestClient, key: str, text: str, **headers: str) -> httpx2.Response:
    # A distinct text each time: a repeated one would be answered as a retry (200).
    body = {"api_key": key, "description": f"{text} ({uuid.uuid4().hex[:8]})", **HERE}
    return client.post(f"{API}/requests.json", data=body, headers=headers)


def _retry_after(response: httpx2.Response, window_s: int = 60) -> int:
    seconds = int(response.headers["Retry-After"])
    assert 1 <= seconds <= window_s, seconds
    return seconds


def test_one_key_gets_429_in_open311_shape_and_another_key_goes_on(limited: Limited) -> None:
    client = TestClient(limited.app(rate_key="3/minute"))
    first, second = limited.keys
    answers = [_post(client, first, f"Cartons {n}").status_code for n in range(3)]
    assert answers == [201, 201, 201]
    refused = _post(client, first, "Cartons 4")
    assert_error(refused, 429, "too many requests", "key")
    _retry_after(refused)
    as_xml = client.post(f"{API}/requests.xml", data={"api_key": first, **HERE})
    assert_error(as_xml, 429, "key")
    assert xml(as_xml.text).findtext("error/code") == "429"
    _retry_after(as_xml)
    assert _post(client, second, "Cartons 5").status_code == 201
    # Nothing refused was stored.
    assert limited.store.count("reports", limited.pipeline.city.jurisdiction_id) == 4


def test_a_bearer_key_is_counted_before_it_is_checked(limited: Limited) -> None:
    client = TestClient(limited.app(rate_key="2/minute"))
    headers = {"Authorization": "Bearer not-a-real-token"}
    codes = [client.get("/api/v1/incidents", headers=headers).status_code for _ in range(3)]
    assert codes == [401, 401, 429]


def test_one_address_gets_429_as_problem_details_and_probes_pass(limited: Limited) -> None:
    client = TestClient(limited.app(rate_address_reads="4/minute"))
    nearby = {"lat": VALMY["lat"], "lon": VALMY["long"]}
    codes = [client.get("/api/v1/nearby", params=nearby).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 200, 429]
    refused = client.get("/api/v1/nearby", params=nearby)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["status"] == 429
    assert "address" in refused.json()["detail"]
    _retry_after(refused)
    assert client.get("/healthz").status_code == 200
    # Writes have their own budget: the spent reads do not block a report.
    assert _post(client, limited.keys[0], "Cartons").status_code == 201


def test_forwarded_for_from_an_untrusted_peer_does_not_escape_the_limit(
    limited: Limited,
) -> None:
    app = limited.app(rate_address_writes="2/minute", trusted_proxies="10.0.0.0/8")
    abuser = TestClient(app, client=("198.51.100.7", 40000))
    key = limited.keys[0]
    codes = [
        _post(abuser, key, f"Cartons {n}", **{"X-Forwarded-For": f"203.0.113.{n}"}).status_code
        for n in range(4)
    ]
    assert codes == [201, 201, 429, 429]
    # Behind the trusted proxy, each citizen has their own budget; a hop they prepend
    # themselves is not believed (the proxy's own right-most entry is).
    proxy = TestClient(app, client=("10.0.0.2", 40000))
    for n in range(3):
        forwarded = {"X-Forwarded-For": f"198.51.100.{n}, 203.0.113.{n + 20}"}
        assert _post(proxy, key, f"Cartons {n}", **forwarded).status_code == 201
    spoofed = {"X-Forwarded-For": "192.0.2.99, 203.0.113.20"}
    assert _post(proxy, key, "Cartons encore", **spoofed).status_code == 201
    assert _post(proxy, key, "Cartons encore", **spoofed).status_code == 429


def test_me_too_is_limited_per_incident_and_address_whatever_the_disguise(
    limited: Limited,
) -> None:
    app = limited.app(rate_support="3/day")
    client = TestClient(app, client=("198.51.100.8", 40000))
    created = _post(client, limited.keys[0], "Cartons").json()[0]
    url = f"/api/v1/incidents/{created['incident_id']}/supporters"
    disguises = [
        {"User-Agent": f"Browser/{n}", "X-Forwarded-For": f"203.0.113.{n}"} for n in range(5)
    ]
    codes = [
        client.post(url, json={"email": f"voisin{n}@example.org"}, headers=h).status_code
        for n, h in enumerate(disguises)
    ]
    assert codes == [201, 201, 201, 429, 429]
    refused = client.post(url, json={"email": "encore@example.org"})
    assert refused.headers["content-type"] == "application/problem+json"
    assert "me too" in refused.json()["detail"]
    _retry_after(refused, 24 * 3600)
    # Another address is another person.
    neighbour = TestClient(app, client=("198.51.100.9", 40000))
    answer = neighbour.post(url, json={"email": "voisine@example.org"})
    assert answer.status_code == 201
    assert answer.json()["supporters"] == 4


def test_workers_sharing_redis_share_one_budget(limited: Limited) -> None:
    prefix = f"voirie-test-{uuid.uuid4().hex}"
    shared = {"rate_key": "3/minute", "rate_storage_url": REDIS, "rate_storage_prefix": prefix}
    # One event loop per client for its whole life, as in a worker (redis connections
    # belong to the loop that opened them).
    with TestClient(limited.app(**shared)) as one, TestClient(limited.app(**shared)) as two:
        key = limited.keys[0]
        workers = [one, two] * 2
        codes = [_post(worker, key, f"Cartons {n}").status_code for n, worker in enumerate(workers)]
        for worker in (one, two):  # what the app's lifespan (replaced here) would close
            worker.portal.call(worker.app.state.rate_limits.close)  # type: ignore[attr-defined,union-attr]
    assert codes == [201, 201, 201, 429]


def test_the_429_is_declared_with_retry_after_on_every_limited_route(limited: Limited) -> None:
    document = TestClient(limited.app()).get("/openapi.json").json()
    post = document["paths"][f"{API}/requests.{{fmt}}"]["post"]["responses"]["429"]
    assert "Retry-After" in post["headers"]
    assert "Open311Error" in str(post["content"]["application/json"]["schema"])
    support = document["paths"]["/api/v1/incidents/{incident_id}/supporters"]["post"]
    assert "application/problem+json" in support["responses"]["429"]["content"]
    assert "429" not in document["paths"]["/healthz"]["get"]["responses"]


def test_rates_and_proxies_are_checked_when_read() -> None:
    with pytest.raises(ValueError, match="VOIRIE_RATE_KEY"):
        RateLimitSettings(rate_key="lots")
    with pytest.raises(ValueError, match="VOIRIE_TRUSTED_PROXIES"):
        RateLimitSettings(trusted_proxies="proxy.example.org")
