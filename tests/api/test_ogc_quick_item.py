"""One OGC feature answered at the edge, outside the framework's routing
(``voirie.api.ogc.quick_item``, issue 19), on both backends: the answer the route gives,
status, headers and bytes; every request it does not answer is left to the route.

The route's own answer is had by sending the same GET with a body: the edge leaves a
request that declares one to the route (a GET's body is never read by it)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from asgi_scope import http_scope
from databases import allow_connections
from fastapi.testclient import TestClient
from httpx2 import Response

from voirie.api import ogc
from voirie.api.app import create_app
from voirie.city import City
from voirie.errors import StoreError
from voirie.gis.enrich import CityGIS
from voirie.settings import CitySettings, StoreSettings

EPSG = "http://www.opengis.net/def/crs/EPSG/0/"


def _first_id(client: TestClient, collection: str) -> str:
    page = client.get(f"/ogc/collections/{collection}/items", params={"limit": 1})
    assert page.status_code == 200, page.text
    return str(page.json()["features"][0]["id"])


def _answers(client: TestClient, path: str, **headers: str) -> tuple[Response, Response]:
    """The app's answer to GET ``path`` and the route's (the same GET with a body)."""
    quick = client.get(path, headers=headers)
    routed = client.request("GET", path, headers=headers, content=b"{}")
    return quick, routed


def _same(quick: Response, routed: Response) -> None:
    assert quick.status_code == routed.status_code, quick.text
    assert quick.content == routed.content
    kept = [(k, v) for k, v in quick.headers.multi_items() if k != "x-request-id"]
    assert kept == [(k, v) for k, v in routed.headers.multi_items() if k != "x-request-id"]


def _scope(client: TestClient, path: str, query: str = "", **headers: str) -> dict[str, Any]:
    return http_scope("GET", path, query, client.app, **headers)


@pytest.mark.parametrize(
    ("collection", "query"),
    [
        ("incidents", ""),
        ("incidents", "f=json"),
        ("incidents", "f=geojson&lang=en"),
        ("incidents", f"crs={quote(EPSG + '2154')}"),
        ("incidents", f"crs={quote(EPSG + '4326')}"),
        ("reports", ""),
        ("streets", ""),
        ("arrondissement", ""),
    ],
)
def test_a_feature_is_answered_at_the_edge_as_the_route_answers_it(
    client: TestClient, collection: str, query: str
) -> None:
    feature = _first_id(client, collection)
    path = f"/ogc/collections/{collection}/items/{feature}"
    params = ogc.item_params(_scope(client, path))
    assert params == {"collectionId": collection, "featureId": feature}
    answered = ogc.quick_item(_scope(client, path, query), params)
    assert answered is not None  # answered at the edge, not left to the route
    quick, routed = _answers(client, f"{path}?{query}" if query else path)
    assert quick.status_code == 200
    assert quick.content == answered.body
    _same(quick, routed)


@pytest.mark.parametrize(
    ("suffix", "headers"),
    [
        ("?f=html", {}),
        ("", {"accept": "text/html"}),
        ("?limit=1", {}),  # not a parameter of one feature: 400
        ("?f=xml", {}),  # 400
        ("?crs=EPSG%3A9999", {}),  # 400
        ("?x=%01", {}),  # not storable text: 400 naming x
        ("?lang=%01", {}),  # read by HTML pages only, still refused: 400 naming lang
    ],
)
def test_what_the_edge_does_not_answer_the_route_answers(
    client: TestClient, suffix: str, headers: dict[str, str]
) -> None:
    feature = _first_id(client, "incidents")
    path = f"/ogc/collections/incidents/items/{feature}"
    query = suffix.removeprefix("?")
    params = ogc.item_params(_scope(client, path))
    assert params is not None
    assert ogc.quick_item(_scope(client, path, query, **headers), params) is None
    quick, routed = _answers(client, path + suffix, **headers)
    assert quick.status_code in (200, 400)
    _same(quick, routed)


@pytest.mark.parametrize(
    "path",
    [
        "/ogc/collections/incidents/items/999999999",  # no such incident: 404
        "/ogc/collections/incidents/items/x1",  # not an id: 404
        "/ogc/collections/nowhere/items/1",  # no such collection: 404
        "/ogc/collections/incidents/items/%01",  # not storable text: 400
    ],
)
def test_refusals_are_the_routes(client: TestClient, path: str) -> None:
    quick, routed = _answers(client, path)
    assert quick.status_code in (400, 404)
    assert quick.headers["content-type"] == "application/problem+json"
    _same(quick, routed)


def test_other_paths_are_not_items() -> None:
    scope = {"type": "http", "path": "/ogc/collections/incidents/items", "root_path": ""}
    assert ogc.item_params(scope) is None
    assert ogc.item_params({**scope, "path": "/ogc/collections/incidents/items/1/x"}) is None


@pytest.mark.postgis
def test_a_database_down_is_answered_503_at_the_edge_without_trying_the_route(
    postgis_server: str, postgis_url: str, paris: City, paris_gis: CityGIS
) -> None:
    """Left to the route, the request would wait for the store's pool a second time."""
    app = create_app(
        StoreSettings(database_url=postgis_url, pool_min_size=1, pool_max_size=2),
        CitySettings(city=str(paris.folder)),
        gis=paris_gis,
    )
    path = "/ogc/collections/incidents/items/1"
    database = urlsplit(postgis_url).path.lstrip("/")
    with TestClient(app) as client:
        params = ogc.item_params(_scope(client, path))
        assert params is not None
        allow_connections(postgis_server, database, allowed=False)
        try:
            with pytest.raises(StoreError):
                ogc.quick_item(_scope(client, path), params)
            answer = client.get(path)
        finally:
            allow_connections(postgis_server, database, allowed=True)
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "retry-after" in answer.headers
