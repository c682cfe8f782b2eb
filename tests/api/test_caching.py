"""HTTP caching of the public reads (issue 19 item 2), on both backends.

Conditional requests answer 304 while nothing changed; a new report or a status change
bumps the store's change counter and the same request answers 200 again, with a new
ETag. Staff answers are never stored by a shared cache.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
from fastapi.testclient import TestClient
from intake_support import pipeline_of, report_nearby
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from voirie.api.caching import (
    NEARBY,
    OGC_ITEMS,
    OPEN311,
    TILES,
    HttpCaching,
    SharedMark,
    current_mark,
    last_modified,
)
from voirie.errors import StoreError
from voirie.model import Status
from voirie.services.auth import Principal, Role
from voirie.services.pipeline import Pipeline
from voirie.services.workflow import change_status
from voirie.store.base import ChangeMark

READS = {
    "/api/v1/nearby?lat=48.8735&lon=2.3631&radius_m=500": NEARBY,
    "/ogc/collections/incidents/items?limit=5": OGC_ITEMS,
    "/ogc/collections/reports/items/7": OGC_ITEMS,
    "/open311/v2/requests.json?page_size=5": OPEN311,
    "/open311/v2/requests/7.xml": OPEN311,
    "/tiles/incidents/14/8300/5634.mvt": TILES,
}


@pytest.mark.parametrize("path", list(READS))
def test_public_read_carries_validators_and_its_cache_policy(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["etag"].startswith('W/"')
    assert response.headers["cache-control"] == READS[path].cache_control
    vary = response.headers.get("vary", "")
    assert ("Accept" in vary) == READS[path].vary_accept


@pytest.mark.parametrize("path", list(READS))
def test_if_none_match_answers_304_until_a_newreport_nearby(client: TestClient, path: str) -> None:
    tag = client.get(path).headers["etag"]
    again = client.get(path, headers={"If-None-Match": tag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == tag
    assert again.headers["cache-control"] == READS[path].cache_control
    assert client.get(path, headers={"If-None-Match": f'"other", {tag}'}).status_code == 304

    report_nearby(pipeline_of(client), f"caching-{path}")
    changed = client.get(path, headers={"If-None-Match": tag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != tag
    assert client.get(path, headers={"If-None-Match": changed.headers["etag"]}).status_code == 304


def test_a_status_change_invalidates(client: TestClient) -> None:
    path = "/ogc/collections/incidents/items/3"
    first = client.get(path)
    assert first.json()["properties"]["status"] == "new"
    tag = first.headers["etag"]
    pipeline = pipeline_of(client)
    dispatcher = Principal("Agent Dupont", Role.ADMIN)
    change_status(pipeline.store, pipeline.city, 3, dispatcher, Status.ACKNOWLEDGED)
    changed = client.get(path, headers={"If-None-Match": tag})
    assert changed.status_code == 200
    assert changed.json()["properties"]["status"] == "acknowledged"


def test_ogc_html_and_json_have_their_own_tags(client: TestClient) -> None:
    path = "/ogc/collections/incidents/items?limit=2"
    as_json = client.get(path).headers["etag"]
    as_html = client.get(path, headers={"Accept": "text/html"})
    assert as_html.headers["content-type"].startswith("text/html")
    assert as_html.headers["etag"] != as_json
    # The JSON page's validator does not stand for the HTML page.
    assert (
        client.get(path, headers={"Accept": "text/html", "If-None-Match": as_json}).status_code
        == 200
    )


def test_if_modified_since_answers_304_until_a_change(client: TestClient) -> None:
    path = "/open311/v2/requests.json?page_size=3"
    report_nearby(pipeline_of(client), "caching-ims-before")
    time.sleep(1.1)  # Last-Modified is given once the second of the change is over
    stamp = client.get(path).headers["last-modified"]
    assert client.get(path, headers={"If-Modified-Since": stamp}).status_code == 304
    older = parsedate_to_datetime(stamp) - timedelta(seconds=1)
    older_stamp = older.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert client.get(path, headers={"If-Modified-Since": older_stamp}).status_code == 200
    assert client.get(path, headers={"If-Modified-Since": "not a date"}).status_code == 200

    report_nearby(pipeline_of(client), "caching-ims-after")
    assert client.get(path, headers={"If-Modified-Since": stamp}).status_code == 200


def test_errors_and_staff_answers_are_not_cached_publicly(client: TestClient) -> None:
    missing = client.get("/ogc/collections/incidents/items/999999")
    assert missing.status_code == 404
    assert "etag" not in missing.headers
    assert "public" not in missing.headers.get("cache-control", "")
    staff = client.get("/api/v1/incidents")
    assert staff.status_code == 401
    assert staff.headers["cache-control"] == "private, no-store"
    signed_in = client.get("/ogc/collections", headers={"Authorization": "Bearer x"})
    assert signed_in.headers["cache-control"] == "private, no-store"


def _write_then_fail(pipeline: Pipeline) -> None:
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        uow.incidents.update(5, {"status": "resolved"})
        raise RuntimeError("rolled back")


def test_the_counter_counts_committed_writes_once(client: TestClient) -> None:
    pipeline = pipeline_of(client)
    before = pipeline.reads.change_mark()
    report_nearby(pipeline, "caching-counter")
    after = pipeline.reads.change_mark()
    assert after.version > before.version
    assert after.changed_at >= before.changed_at
    with pytest.raises(RuntimeError):
        _write_then_fail(pipeline)
    assert pipeline.reads.change_mark().version == after.version
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        uow.incidents.update(5, {"status": "resolved"})
        uow.incidents.update(6, {"status": "resolved"})
    # Two rows written, one transaction: on PostGIS one bump, on sqlite one per row.
    assert pipeline.reads.change_mark().version > after.version


def test_last_modified_waits_for_the_end_of_its_second() -> None:
    changed = datetime(2026, 12, 6, 5, 0, 0, 300_000, tzinfo=UTC)
    same_second = ChangeMark(1, changed, changed + timedelta(milliseconds=200))
    assert last_modified(same_second) is None
    later = ChangeMark(1, changed, changed + timedelta(seconds=2))
    assert last_modified(later) == datetime(2026, 12, 6, 5, 0, 1, tzinfo=UTC)


class _Counter:
    """A change counter read that blocks while ``gate`` is closed and numbers its reads:
    read n returns version n. ``fail`` makes the next read raise."""

    def __init__(self) -> None:
        self.reads = 0
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.fail = False

    def __call__(self) -> ChangeMark:
        self.reads += 1
        number = self.reads
        self.entered.set()
        self.gate.wait(10)
        if self.fail:
            self.fail = False
            raise StoreError("the database is down")
        now = datetime.now(UTC)
        return ChangeMark(number, now, now)


async def _entered(counter: _Counter) -> None:
    """Until the counter's read in flight has begun (in its thread)."""
    while not counter.entered.is_set():
        await asyncio.sleep(0.001)
    counter.entered.clear()


def test_requests_together_share_one_read_started_after_they_arrived() -> None:
    counter = _Counter()
    shared = SharedMark(counter)

    async def scenario() -> tuple[int, list[int]]:
        first = asyncio.ensure_future(shared.get())
        await _entered(counter)  # read 1 in flight
        # Arrived during read 1: its answer may predate them, they wait for read 2.
        late = [asyncio.ensure_future(shared.get()) for _ in range(5)]
        await asyncio.sleep(0.01)
        counter.gate.set()
        return (await first).version, [(await one).version for one in late]

    first, late = asyncio.run(scenario())
    assert first == 1
    assert late == [2] * 5
    assert counter.reads == 2  # six requests, two reads


def test_a_failed_read_fails_its_waiters_and_the_next_read_is_new() -> None:
    counter = _Counter()
    shared = SharedMark(counter)
    counter.gate.set()
    counter.fail = True

    async def scenario() -> list[object]:
        together = [shared.get() for _ in range(3)]
        return await asyncio.gather(*together, return_exceptions=True)

    first, *others = asyncio.run(scenario())
    assert isinstance(first, StoreError)  # read 1 failed: the request that started it fails
    # The two others arrived after read 1 began: read 2 answered them.
    assert [o.version for o in others if isinstance(o, ChangeMark)] == [2, 2]
    assert asyncio.run(shared.get()).version == 3


def test_a_request_giving_up_does_not_cancel_the_read_of_others() -> None:
    counter = _Counter()
    shared = SharedMark(counter)

    async def scenario() -> int:
        first = asyncio.ensure_future(shared.get())
        await _entered(counter)
        leaving = asyncio.ensure_future(shared.get())
        staying = asyncio.ensure_future(shared.get())
        await asyncio.sleep(0.01)
        leaving.cancel()
        counter.gate.set()
        await first
        return (await staying).version

    assert asyncio.run(scenario()) == 2


def test_the_handler_sees_the_mark_its_answer_is_labelled_with(client: TestClient) -> None:
    """``current_mark`` in a handler is the mark behind the ETag (Open311's default window
    reads it there instead of reading the counter again); outside a public read, None."""
    pipeline = pipeline_of(client)

    async def seen(request: Request) -> JSONResponse:
        mark = current_mark()
        return JSONResponse(None if mark is None else mark.version)

    app = Starlette(routes=[Route("/api/v1/nearby", seen), Route("/elsewhere", seen)])
    app.state.pipeline = pipeline
    app.add_middleware(HttpCaching)
    with TestClient(app) as probe:
        answer = probe.get("/api/v1/nearby")
        assert answer.json() == pipeline.reads.change_mark().version
        assert f"-{answer.json()}-" in answer.headers["etag"]
        assert probe.get("/elsewhere").json() is None
        assert current_mark() is None
