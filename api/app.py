"""The FastAPI application factory. Settings are passed in; nothing is built at import time.

The app's lifespan owns the store (and its connection pool) and the city's GIS indexes:
opened once on start, kept on ``app.state``, closed on exit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from voirie.api import (
    citizen,
    consent,
    docs,
    edge,
    exports,
    metrics,
    moderation,
    ogc,
    ogc_tiles,
    open311,
    openapi_city,
    pages,
    probes,
    report_form,
    staff,
    staff_actions,
    staff_pages,
    staff_rules,
    staff_session,
    staff_stats,
    staff_workorder,
    throttle,
    tiles,
    validation,
)
from voirie.api.problems import PROBLEM_MEDIA_TYPE, PROBLEMS, Problem
from voirie.api.public_url import install as use_public_url
from voirie.api.public_url import parse_public_url
from voirie.city import load_city
from voirie.cityset import city_folders
from voirie.errors import CityConfigError, Conflict, Unauthorized, VoirieError
from voirie.gis.enrich import CityGIS
from voirie.maps.static import STATIC_DIR
from voirie.services.pipeline import Pipeline
from voirie.settings import (
    CitiesSettings,
    CitySettings,
    RateLimitSettings,
    ServerSettings,
    StoreSettings,
)
from voirie.store import Store, open_store


def create_app(
    store_settings: StoreSettings,
    city_settings: CitySettings,
    server_settings: ServerSettings | None = None,
    rate_limits: RateLimitSettings | None = None,
    gis: CityGIS | None = None,
    shared_store: Callable[[], Store] | None = None,
    mounted_at: str = "",
    full_pool: bool = False,
) -> FastAPI:
    """Build the web application for one city and one store (server settings from
    ``VOIRIE_*`` variables unless given; rate limits only when ``rate_limits`` is given,
    as ``voirie serve`` and :func:`app_from_env` do, so that tests choose their own).

    The city's GIS indexes are built when the app starts, unless ``gis`` is given: a
    server forking its workers builds them once before the fork and shares them.

    Serving several cities (``voirie.api.multicity``), each city's app is given the one
    store of all (``shared_store``: opened, upgraded and closed by the dispatcher) and the
    path prefix it answers under (``mounted_at``: its absolute links carry it; the
    dispatcher in front puts requests on ``VOIRIE_PUBLIC_URL``).

    ``full_pool`` (servers: ``voirie serve``, :func:`app_from_env`): on PostGIS, the
    store's pool opens all its connections at start and runs their first statements
    (``PostgisStore.fill_pool``), so that a worker's first burst of requests does not
    wait for them."""
    city = load_city(city_settings.city)
    public_url = (server_settings or ServerSettings()).public_url

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = shared_store() if shared_store else open_store(store_settings)
        if shared_store is None:
            store.upgrade()
            if full_pool and store.backend == "postgis":
                from voirie.store.postgis import PostgisStore  # psycopg: PostGIS only

                assert isinstance(store, PostgisStore)
                store.fill_pool()
        app.state.pipeline = Pipeline(city, store, gis)
        try:
            yield
        finally:
            if (limits := getattr(app.state, "rate_limits", None)) is not None:
                await limits.close()
            if shared_store is None:
                store.close()

    app = FastAPI(
        title=f"voirie — {city.config.name}",
        summary="Street incident reports: snapped, deduplicated, routed and published.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load from a CDN: docs.install serves them offline
        redoc_url=None,
        dependencies=[validation.GUARD],  # storable text in every parameter
    )
    app.state.public_url = parse_public_url(public_url) + mounted_at if public_url else None
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    docs.install(app)
    # Requests are matched against the routers in this order (~15 µs of the GIL per
    # router passed): the public reads most asked for come first. No route shadows
    # another (tests/api/test_routes_and_pool.py resolves every documented path).
    app.include_router(ogc.router, responses=PROBLEMS)
    open311.include_routes(app)  # partner apps polling GET requests
    public = (citizen, tiles, exports, ogc_tiles, pages, report_form, consent)
    staff_side = (staff, moderation, staff_pages, staff_actions, staff_stats, staff_workorder)
    for module in (*public, *staff_side, staff_rules):
        app.include_router(module.router, responses=PROBLEMS)
    staff_session.install(app)  # VOIRIE_STAFF_* sign-in settings

    for operations in (probes, metrics):
        app.include_router(operations.router)

    @app.get("/healthz", tags=["operations"], summary="Liveness and store check")
    def healthz(request: Request) -> dict[str, object]:
        pipeline: Pipeline = request.app.state.pipeline
        return {
            "status": "ok",
            "city": city.config.name,
            "store": pipeline.store.backend,
            "schema_version": pipeline.store.schema_version(),
        }

    @app.exception_handler(VoirieError)
    async def voirie_error(request: Request, exc: VoirieError) -> JSONResponse:
        problem = Problem(
            title=type(exc).__name__,
            status=exc.status,
            detail=exc.message,
            field=exc.field,
            allowed=list(exc.allowed) if isinstance(exc, Conflict) and exc.allowed else None,
        )
        # RFC 9110: a 401 names the scheme the client should use.
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        return JSONResponse(
            problem.model_dump(exclude_none=True),
            status_code=exc.status,
            media_type=PROBLEM_MEDIA_TYPE,
            headers=headers,
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        # Raised by the framework itself (an unparseable body, a method not allowed...).
        if exc.status_code < 400:
            return Response(status_code=exc.status_code, headers=exc.headers)
        problem = Problem(
            title=HTTPStatus(exc.status_code).phrase, status=exc.status_code, detail=str(exc.detail)
        )
        return JSONResponse(
            problem.model_dump(exclude_none=True),
            status_code=exc.status_code,
            media_type=PROBLEM_MEDIA_TYPE,
            headers=exc.headers,
        )

    validation.install(app)
    open311.install(app)  # after the handlers above: its error rendering wraps them
    openapi_city.install(app, city)  # the city's values in the OpenAPI document
    # Two layers of fixed work per request (voirie.api.edge), with the optional ones between.
    edge.install(app)  # 503 on store errors, replicas, validators, body limits, 405's Allow
    throttle.install(app, rate_limits)  # outside the body limit: refused before reading
    if not mounted_at:  # else in front of every city, by the dispatcher
        use_public_url(app, public_url)  # no URL built on the client's Host header
    edge.install_edge(app)  # outermost: ids, security headers, logs and metrics
    return app


def app_from_env() -> FastAPI:
    """The application from ``VOIRIE_*`` variables, for servers that import a factory:
    ``uvicorn voirie.api.app:app_from_env --factory --workers 2`` (each worker builds its
    own app, store pool and GIS indexes). One city only: with several in ``VOIRIE_CITIES``
    it refuses to start rather than serve one of them (``voirie.api.multicity`` has the
    factory of several, which would import this module: a cycle)."""
    spec = CitiesSettings().cities
    if spec and len(city_folders(spec)) > 1:
        raise CityConfigError(
            [
                "VOIRIE_CITIES names several cities: serve them with "
                "uvicorn voirie.api.multicity:app_from_env --factory"
            ]
        )
    return create_app(
        StoreSettings(), CitySettings(), rate_limits=RateLimitSettings(), full_pool=True
    )
