"""The server's fixed cost per request (issue 19): routes matched in the order of the
public reads most asked for, without one shadowing another; on PostGIS, a server's pool
opened in full at start, its backends' first statements run before the first request."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from voirie.api.app import create_app
from voirie.errors import StoreError
from voirie.gis.enrich import CityGIS
from voirie.settings import CitySettings, StoreSettings
from voirie.store.postgis import PostgisStore

# A value for each path parameter of the OpenAPI document that its route accepts.
SAMPLES = {
    "fmt": "json",
    "collectionId": "incidents",
    "layer": "incidents",
    "tileMatrixSetId": "WebMercatorQuad",
}


class _Routed:
    """Outermost ASGI layer that keeps each request's scope, where the router notes the
    route it chose (``scope["route"]``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.scopes.append(scope)
        await self.app(scope, receive, send)


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLES.get(m.group(1), "1"), path)


@pytest.fixture
def app(tmp_path: Path, paris_gis: CityGIS) -> FastAPI:
    url = f"sqlite:///{tmp_path / 'voirie.gpkg'}"
    return create_app(StoreSettings(database_url=url), CitySettings(city="paris"), gis=paris_gis)


def test_every_documented_path_reaches_its_own_route(app: FastAPI) -> None:
    """Each operation of the OpenAPI document, asked with its path's parameters filled
    in, is answered by the route that documents it: no route earlier in the matching
    order takes its requests."""
    routed = _Routed(app)
    with TestClient(routed) as client:  # type: ignore[arg-type]
        document: dict[str, Any] = client.get("/openapi.json").json()
        checked = 0
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                client.request(method.upper(), _concrete(path))
                route = routed.scopes[-1].get("route")
                assert isinstance(route, APIRoute), (method, path)
                assert (route.path_format, route.unique_id) == (path, operation["operationId"])
                checked += 1
    assert checked > 60


def _backends(url: str, application: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            (application,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_fill_pool_opens_every_connection_and_runs_the_statements_on_each(
    postgis_url: str,
) -> None:
    store = PostgisStore(postgis_url, min_size=1, max_size=3)
    try:
        assert store.pool.get_stats()["pool_size"] == 1
        # A statement whose effect stays on its session shows which backends ran it.
        store.fill_pool(["SET application_name = 'voirie-warmed'"])
        assert store.pool.get_stats()["pool_size"] == 3
        assert _backends(postgis_url, "voirie-warmed") == 3
        store.fill_pool()  # the default statements run on this schema
        assert store.count("incidents", "paris.fr") == 0
    finally:
        store.close()


@pytest.mark.parametrize("full_pool", [True, False])
def test_a_server_app_starts_with_its_pool_full(
    postgis_url: str, paris_gis: CityGIS, full_pool: bool
) -> None:
    settings = StoreSettings(database_url=postgis_url, pool_min_size=1, pool_max_size=3)
    app = create_app(settings, CitySettings(city="paris"), gis=paris_gis, full_pool=full_pool)
    with TestClient(app):
        assert _backends(postgis_url, "voirie") == (3 if full_pool else 1)


def test_a_pool_postgresql_cannot_fill_keeps_its_minimum_and_serves(
    postgis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``max_connections`` reached (here a role allowed two connections, the pool asking
    four): the start goes on with a warning, the pool grows on demand as before."""
    role = "voirie_two_connections"
    url = psycopg.conninfo.make_conninfo(postgis_url, user=role)
    with psycopg.connect(postgis_url, autocommit=True) as admin:
        admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 2 IN ROLE pg_read_all_data")
    try:
        store = PostgisStore(url, min_size=1, max_size=4, pool_timeout_s=0.5)
        try:
            store.fill_pool()
            assert "of the pool's 4 connections at start" in caplog.text
            assert store.pool.min_size == 1
            assert store.count("incidents", "paris.fr") == 0
        finally:
            store.close()
    finally:
        with psycopg.connect(postgis_url, autocommit=True) as admin:
            admin.execute(f"DROP ROLE IF EXISTS {role}")


def test_after_a_restart_one_write_pays_for_the_lost_connections_of_a_full_pool(
    postgis_url: str,
) -> None:
    """Every pooled connection ended (a restart, a failover): the first write meets a dead
    one and answers 503; the pool then checks the others, so the next write is served
    (not one 503 per dead connection of a pool filled at start)."""
    store = PostgisStore(postgis_url, min_size=1, max_size=4)
    try:
        store.fill_pool()
        with psycopg.connect(postgis_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'voirie'"
            )
        with pytest.raises(StoreError), store.transaction("paris.fr") as uow:
            uow.lock(["restart"])
        with store.transaction("paris.fr") as uow:
            uow.lock(["restart"])
    finally:
        store.close()
