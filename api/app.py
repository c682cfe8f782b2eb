"""The FastAPI application factory. Settings are passed in; nothing is built at import time.

The app's lifespan owns the store (and its connection pool) and the city's GIS indexes:
opened once on start, kept on ``app.state``, closed on exit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from voirie.api import citizen, exports, ogc, open311, pages, staff, tiles
from voirie.city import load_city
from voirie.errors import Conflict, Unauthorized, VoirieError
from voirie.maps.static import STATIC_DIR
from voirie.pipeline import Pipeline
from voirie.settings import CitySettings, StoreSettings
from voirie.store import open_store


def create_app(store_settings: StoreSettings, city_settings: CitySettings) -> FastAPI:
    """Build the web application for one city and one store."""
    city = load_city(city_settings.city)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(store_settings)
        store.upgrade()
        app.state.pipeline = Pipeline(city, store)
        try:
            yield
        finally:
            store.close()

    app = FastAPI(
        title=f"voirie — {city.config.name}",
        summary="Street incident reports: snapped, deduplicated, routed and published.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(exports.router)
    app.include_router(ogc.router)
    app.include_router(tiles.router)
    app.include_router(pages.router)
    app.include_router(citizen.router)
    app.include_router(staff.router)

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
        body = {"type": "about:blank", "title": type(exc).__name__, "status": exc.status,
                "detail": exc.message}
        if exc.field:
            body["field"] = exc.field
        if isinstance(exc, Conflict) and exc.allowed:
            body["allowed"] = list(exc.allowed)
        # RFC 9110: a 401 names the scheme the client should use.
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        return JSONResponse(body, status_code=exc.status, media_type="application/problem+json",
                            headers=headers)

    open311.install(app)  # last: its error rendering wraps the handlers above
    return app
