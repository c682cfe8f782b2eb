"""Several cities in one deployment: one ASGI app in front of one voirie app per city.

Open311 stays at the root (``/open311/v2/...``, where clients look for it) and the city
is chosen by Open311's own ``jurisdiction_id`` (query string, or the body of a POST):
with several cities it is required, and a request without it is a 400 listing the
allowed values. Every other path is under the city's prefix (``/paris/maps/dispatch``,
``/chicago/ogc/...``): the city's app sees the prefix as its ``root_path``, as behind a
proxy serving it under a sub-path, so its pages and links carry it; an Open311 request
at the root is given the same ``root_path``, so the links it answers (a photo's
``media_url``, discovery's endpoint) lead to the city's own paths. ``/`` lists the
cities; ``/healthz``, ``/readyz`` and ``/metrics`` are the deployment's.

A city with an address of its own (``VOIRIE_CITY_HOSTS``, ``voirie.cityset``) is served
alone at the root of that host: every request whose ``Host`` names it goes to its app
unchanged (Open311 without ``jurisdiction_id``), seen as made to the configured address,
on which its absolute links are written.

Photos are a city's own: each city keeps them in its sub-folder of ``VOIRIE_MEDIA_DIR``
(``voirie-media/paris/``), and a photo is served only by its city's app (a name asked of
another city is a 404, as the upload's ``media_url`` leads to its city's path).

The cities share one store, opened once by this app's lifespan, which then runs every
city app's own lifespan (an app that is only called, as a mounted one, never gets its
lifespan run by the framework). Every store query is keyed by the city's jurisdiction,
so one store holds them all; staff accounts, sessions and tokens are a city's own. A
server (``full_pool``, as :func:`app_from_env` builds it) opens that store's whole pool at
start, as ``create_app(full_pool=True)`` does for one city.
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
from voirie.cityset import CityHost, CitySite, load_hosts, load_sites
from voirie.errors import InvalidInput, NotFound, VoirieError
from voirie.gis.enrich import CityGIS
from voirie.settings import (
    CitiesSettings,
    CitySettings,
    RateLimitSettings,
    ServerSettings,
    StoreSettings,
)
from voirie.store import Store, open_store

# The scope key ``voirie.api.ogc.public_base`` writes absolute links on, when set.
CITY_URL = "voirie.city_url"


class MultiCity:
    """The ASGI app serving ``sites`` (two or more cities) on one store.

    ``full_pool`` (servers): on PostGIS, the store's pool opens all its connections at
    start and runs their first statements (``PostgisStore.fill_pool``, best effort), so
    that the first burst of requests, whichever city they ask, does not wait for them."""

    def __init__(
        self,
        store_settings: StoreSettings,
        sites: Sequence[CitySite],
        server_settings: ServerSettings | None = None,
        rate_limits: RateLimitSettings | None = None,
        gis: Mapping[str, CityGIS] | None = None,
        hosts: Sequence[CityHost] = (),
        full_pool: bool = False,
    ) -> None:
        server = server_settings or ServerSettings()
        self.store_settings = store_settings
        self.full_pool = full_pool
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
        for slug, app in self.apps.items():  # each city's photos in a folder of its own
            media = app.state.open311_settings
            app.state.open311_settings = media.model_copy(
                update={"media_dir": media.media_dir / slug}
            )
        self.by_jurisdiction = {site.city.jurisdiction_id: site.slug for site in sites}
        # Host name -> the city's app seen as made to its configured address.
        self.hosts: dict[str, ASGIApp] = {
            host.hostname: PublicHost(_at(self.apps[host.slug], host.url), host.url)
            for host in hosts
        }
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
            if self.full_pool and store.backend == "postgis":
                from voirie.store.postgis import PostgisStore  # psycopg: PostGIS only

                assert isinstance(store, PostgisStore)
                store.fill_pool()
            self._store = store
            for app in self.apps.values():
                await stack.enter_async_context(app.router.lifespan_context(app))
            yield
        self._store = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan.lifespan(scope, receive, send)
            return
        if self.hosts and scope["type"] in ("http", "websocket"):
            own = self.hosts.get(_hostname(scope))
            if own is not None:
                await own(scope, receive, send)
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
        """An Open311 request to the city its ``jurisdiction_id`` names, under that city's
        root path (the links it answers lead to the city's own paths)."""
        path: str = scope["path"]
        try:
            jurisdiction, receive = await jurisdiction_of(scope, receive)
            slug = self._slug_of(jurisdiction)
        except VoirieError as exc:
            errors = [Open311Error(code=exc.open311_code, description=exc.message)]
            await render_errors(format_of(path), exc.status, errors)(scope, receive, send)
            return
        child = {**scope, "root_path": scope.get("root_path", "") + f"/{slug}"}
        await self.apps[slug](child, receive, send)

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


def _hostname(scope: Scope) -> str:
    """The host name of a request's ``Host`` header, lower case, without its port (and
    an IPv6 literal without its brackets), as ``urlsplit`` gives a configured URL's."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == b"host":
            host = value.decode("latin-1").strip().lower()
            if host.startswith("["):  # an IPv6 literal: [::1]:8000
                return host[1:].partition("]")[0]
            return host.rpartition(":")[0] if ":" in host else host
    return ""


def _at(app: ASGIApp, url: str) -> ASGIApp:
    """``app`` with its absolute links written on ``url`` (``voirie.api.ogc.public_base``)."""

    async def served(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, CITY_URL: url}, receive, send)

    return served


def app_from_env() -> ASGIApp:
    """The application from ``VOIRIE_*`` variables, for servers that import a factory:
    ``uvicorn voirie.api.multicity:app_from_env --factory --workers 2``. Every city of
    ``VOIRIE_CITIES`` when it names several (with ``VOIRIE_CITY_HOSTS``), else the one
    city it names, else ``VOIRIE_CITY``, as ``voirie serve`` chooses."""
    settings = CitiesSettings()
    sites = load_sites(settings.cities) if settings.cities else []
    if len(sites) > 1:
        return MultiCity(
            StoreSettings(),
            sites,
            rate_limits=RateLimitSettings(),
            hosts=load_hosts(settings.city_hosts, sites),
            full_pool=True,
        )
    city = CitySettings(city=str(sites[0].city.folder)) if sites else CitySettings()
    return create_app(StoreSettings(), city, rate_limits=RateLimitSettings(), full_pool=True)
