"""Several cities in one deployment: one ASGI app in front of one voirie app per city.

Open311 stays at the root (``/open311/v2/...``, where clients look for it) and the city
is chosen by Open311's own ``jurisdiction_id`` (query string, or the body of a POST):
with several cities it is required, and a request without it is a 400 listing the
allowed values. Every other path is under the city's prefix (``/paris/maps/dispatch``,
``/chicago/ogc/...``): the city's app sees the prefix as its ``root_path``, as behind a
proxy serving it under a sub-path, so its pages and links carry it. ``/`` lists the
cities; ``/healthz``, ``/readyz`` and ``/metrics`` are the deployment's.

The cities share one store, opened once by this app's lifespan, which then runs every
city app's own lifespan (an app that is only called, as a mounted one, never gets its
lifespan run by the framework). Every store query is keyed by the city's jurisdiction,
so one store holds them all; staff accounts, sessions and tokens are a city's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.routing import Router
from starlette.types import ASGIApp, Receive, Scope, Send

from voirie.api.app import create_app
from voirie.api.headers import SecurityHeaders
from voirie.api.multicity_index import index_page, problem
from voirie.api.multicity_select import OPEN311, jurisdiction_of
from voirie.api.open311.render import format_of, render_errors
from voirie.api.open311.wire import Open311Error
from voirie.api.public_url import PublicHost
from voirie.cityset import CitySite
from voirie.errors import InvalidInput, NotFound, VoirieError
from voirie.gis.enrich import CityGIS
from voirie.settings import CitySettings, RateLimitSettings, ServerSettings, StoreSettings
from voirie.store import Store, open_store

# Photos are stored by content in one folder for every city: any city's app serves them.
MEDIA_FILES = f"{OPEN311}/v2/media/"


class MultiCity:
    """The ASGI app serving ``sites`` (two or more cities) on one store."""

    def __init__(
        self,
        store_settings: StoreSettings,
        sites: Sequence[CitySite],
        server_settings: ServerSettings | None = None,
        rate_limits: RateLimitSettings | None = None,
        gis: Mapping[str, CityGIS] | None = None,
    ) -> None:
        server = server_settings or ServerSettings()
        self.store_settings = store_settings
        self._store: Store | None = None
        self.sites = {site.slug: site for site in sites}
        self.apps: dict[str, FastAPI] = {
            site.slug: create_app(
                store_settings,
                CitySettings(city=str(site.city.folder)),
                server,
                rate_limits,
                (gis or {}).get(site.slug),
                shared_store=self.store,
                mounted_at=f"/{site.slug}",
            )
            for site in sites
        }
        self.by_jurisdiction = {site.city.jurisdiction_id: site.slug for site in sites}
        self.first = self.apps[sites[0].slug]
        self._lifespan = Router(lifespan=self._lifespan_context)
        self._own: ASGIApp = SecurityHeaders(self._answer)
        # Absolute links on VOIRIE_PUBLIC_URL, never on the client's Host, for every city.
        self._front: ASGIApp = (
            PublicHost(self._dispatch, server.public_url) if server.public_url else self._dispatch
        )

    def store(self) -> Store:
        """The store of every city (open while the server runs)."""
        if self._store is None:
            raise RuntimeError("the multi-city store is opened by the app's lifespan")
        return self._store

    @asynccontextmanager
    async def _lifespan_context(self, _app: object) -> AsyncIterator[None]:
        """Open the store once, then start every city's app on it; the reverse on exit."""
        store = open_store(self.store_settings)
        async with AsyncExitStack() as stack:
            stack.callback(store.close)
            store.upgrade()
            self._store = store
            for app in self.apps.values():
                await stack.enter_async_context(app.router.lifespan_context(app))
            yield
        self._store = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan.lifespan(scope, receive, send)
            return
        await self._front(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hand the request to its city's app, or answer it here."""
        path: str = scope["path"]
        if scope["type"] == "http" and path.startswith(f"{OPEN311}/"):
            await self._open311(scope, receive, send)
            return
        head, slash, rest = path[1:].partition("/")
        app = self.apps.get(head)
        if app is None:
            await self._own(scope, receive, send)
            return
        # The city's app gets the path without the prefix and the prefix as its root path
        # (as behind a proxy that strips it): its middlewares and pages read paths relative
        # to their root (/staff, /api/v1/ are private; links are root_path + path).
        inner = slash + rest or "/"
        child = {**scope, "path": inner}
        raw: bytes | None = scope.get("raw_path")
        prefix = f"/{head}".encode()
        child["raw_path"] = raw[len(prefix) :] if raw and raw.startswith(prefix + b"/") else None
        if not inner.startswith("/static/"):
            # The static files are the same for every city, and Starlette's static
            # mount finds a file only on a path that starts with the root path.
            child["root_path"] = scope.get("root_path", "") + f"/{head}"
        await app(child, receive, send)

    async def _open311(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An Open311 request to the city its ``jurisdiction_id`` names."""
        path: str = scope["path"]
        if scope["method"] in ("GET", "HEAD") and path.startswith(MEDIA_FILES):
            await self.first(scope, receive, send)
            return
        try:
            jurisdiction, receive = await jurisdiction_of(scope, receive)
            slug = self._slug_of(jurisdiction)
        except VoirieError as exc:
            errors = [Open311Error(code=exc.open311_code, description=exc.message)]
            await render_errors(format_of(path), exc.status, errors)(scope, receive, send)
            return
        await self.apps[slug](scope, receive, send)

    def _slug_of(self, jurisdiction: str | None) -> str:
        """The prefix of the city a ``jurisdiction_id`` names; 400 when missing, 404 when
        no city served here has it, both listing the allowed values."""
        served = ", ".join(
            f"{site.city.jurisdiction_id!r} ({site.city.config.name})"
            for site in self.sites.values()
        )
        if jurisdiction is None:
            raise InvalidInput(
                f"jurisdiction_id: required, this server serves several cities: {served}",
                field="jurisdiction_id",
            )
        slug = self.by_jurisdiction.get(jurisdiction)
        if slug is None:
            raise NotFound(
                f"jurisdiction_id: {jurisdiction[:80]!r} is not served here; this server "
                f"serves {served}",
                field="jurisdiction_id",
            )
        return slug

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The deployment's own answers: the cities' list, operations, else a 404."""
        path: str = scope["path"]
        if scope["type"] != "http":
            return
        if path in ("/readyz", "/metrics"):  # one store, one process: any city's answer
            await self.first(scope, receive, send)
            return
        if path == "/healthz":
            await (await self._health())(scope, receive, send)
            return
        if path == "/":
            await index_page(scope, list(self.sites.values()))(scope, receive, send)
            return
        await problem(
            404,
            "this server serves several cities, each under its own path: "
            + ", ".join(f"/{slug}/" for slug in self.sites)
            + "; Open311 at /open311/v2/ with a jurisdiction_id",
        )(scope, receive, send)

    async def _health(self) -> JSONResponse:
        """``/healthz`` of the deployment: alive, its store, and every city it serves."""
        store = self.store()
        version = await run_in_threadpool(store.schema_version)
        cities = [
            {
                "path": f"/{slug}/",
                "name": site.city.config.name,
                "jurisdiction_id": site.city.jurisdiction_id,
            }
            for slug, site in self.sites.items()
        ]
        return JSONResponse(
            {"status": "ok", "cities": cities, "store": store.backend, "schema_version": version}
        )
