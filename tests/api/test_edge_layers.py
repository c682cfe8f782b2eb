"""The fixed work at the app's edge (``voirie.api.edge``), on both backends: a recent
change mark labels unconditional public reads without a read of its own, never a 304 or
an answer the mark decides; the two layers still put every edge header on pages, reads
and refusals."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from intake_support import pipeline_of, report_nearby
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from voirie.api.app import create_app
from voirie.api.caching import HttpCaching, current_mark
from voirie.settings import CitySettings, ServerSettings, StoreSettings

ITEM = "/ogc/collections/incidents/items/1"
OPEN311 = "/open311/v2/requests.json"


def test_a_recent_mark_labels_unconditional_reads_until_a_write_is_answered(
    client: TestClient,
) -> None:
    pipeline = pipeline_of(client)

    def rows(request: Request) -> JSONResponse:
        """The version the answer's rows are read at, and the one it is labelled with."""
        mark = current_mark()
        return JSONResponse(
            {
                "rows": pipeline.reads.change_mark().version,
                "label": None if mark is None else mark.version,
            }
        )

    app = Starlette(routes=[Route(ITEM, rows), Route(OPEN311, rows, methods=["GET", "POST"])])
    app.state.pipeline = pipeline
    # Reused for an hour: the test does not depend on how fast the machine runs it.
    app.add_middleware(HttpCaching, reuse_s=3600)
    with TestClient(app) as probe:
        first = probe.get(ITEM)
        tag = first.headers["etag"]
        report_nearby(pipeline, "edge-reuse-1")
        again = probe.get(ITEM)
        assert again.headers["etag"] == tag  # no read of its own: the last mark labels it
        assert again.json()["label"] < again.json()["rows"]  # rows newer than their label

        # A conditional request decides a 304: it waits for a read of its own.
        checked = probe.get(ITEM, headers={"If-None-Match": tag})
        assert checked.status_code == 200
        assert checked.headers["etag"] != tag
        assert probe.get(ITEM).headers["etag"] == checked.headers["etag"]  # its read is reused

        # Open311's default window is decided by the mark: never a reused one.
        report_nearby(pipeline, "edge-reuse-2")
        current = pipeline.reads.change_mark().version
        assert probe.get(OPEN311).json() == {"rows": current, "label": current}

        # A write the app answered ends the reuse of the marks read before it.
        report_nearby(pipeline, "edge-reuse-3")
        assert probe.get(ITEM).json()["label"] == current
        assert probe.post(OPEN311).status_code == 200
        after = probe.get(ITEM).json()
        assert after["label"] == after["rows"] == pipeline.reads.change_mark().version


def test_pages_reads_and_refusals_carry_the_edge_headers(client: TestClient) -> None:
    page = client.get("/ogc?f=html", headers={"X-Request-ID": "edge-page"})
    assert page.status_code == 200
    assert page.headers["x-request-id"] == "edge-page"  # held until whole, then tagged
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["content-security-policy"].startswith("default-src 'self'")

    read = client.get(ITEM, headers={"X-Request-ID": "edge-read"})
    assert read.status_code == 200
    assert read.headers["x-request-id"] == "edge-read"
    assert read.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'self'"
    assert read.headers["etag"].startswith('W/"')

    refused = client.put(OPEN311, headers={"X-Request-ID": "edge-405"})
    assert refused.status_code == 405
    assert set(refused.headers["allow"].split(", ")) >= {"GET", "POST"}
    assert refused.headers["x-request-id"] == "edge-405"
    assert refused.headers["x-frame-options"] == "SAMEORIGIN"

    staff = client.get("/api/v1/incidents")
    assert staff.status_code == 401
    assert staff.headers["cache-control"] == "private, no-store"
    assert staff.headers["referrer-policy"] == "strict-origin-when-cross-origin"


def _counted(text: str, route: str) -> int:
    """Requests counted for ``GET route`` answered 200 in a /metrics text."""
    found = re.search(
        rf'voirie_http_requests_total\{{method="GET",route="{re.escape(route)}",status="200"\}} '
        r"(\d+)",
        text,
    )
    return int(float(found.group(1))) if found else 0


def test_requests_are_counted_by_route_behind_a_public_url(client: TestClient) -> None:
    """With ``VOIRIE_PUBLIC_URL`` the request is put on the public address before the
    router matches it: the metrics, outside, still read the route it matched (they counted
    every request as ``<unmatched>`` when that layer gave the router a copy of the scope)."""
    store = pipeline_of(client).store
    app = create_app(
        StoreSettings(),
        CitySettings(city=str(pipeline_of(client).city.folder)),
        ServerSettings(public_url="https://voirie.example.org"),
        shared_store=lambda: store,
    )
    route = "/ogc/collections/{collectionId}/items/{featureId}"
    with TestClient(app) as public:
        before = public.get("/metrics").text
        assert public.get(ITEM).status_code == 200
        after = public.get("/metrics").text
    assert _counted(after, route) == _counted(before, route) + 1
    assert _counted(after, "<unmatched>") == _counted(before, "<unmatched>")
