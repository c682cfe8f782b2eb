"""Open311 GeoReport v2 at ``/open311/v2`` (https://wiki.open311.org/GeoReport_v2).

The app factory calls ``include_routes(app)`` among the public routers (where a request
is matched: early, since partner apps poll GET requests more than anything else) and
``install(app)`` once, after its own error handlers, for the settings and the Open311
error rendering.
"""

from __future__ import annotations

from fastapi import FastAPI

from voirie.api.open311 import media, requests, services, submit, updates
from voirie.api.open311.errors import install_error_handlers
from voirie.api.open311.settings import Open311Settings


def include_routes(app: FastAPI) -> None:
    """Add the Open311 routes to ``app``."""
    for module in (services, requests, submit, updates, media):
        app.include_router(module.router)


def install(app: FastAPI, settings: Open311Settings | None = None) -> None:
    """Serve Open311 on ``app``, whose routes ``include_routes`` added (settings from
    ``VOIRIE_*`` variables unless given): its settings and its error rendering, which
    wraps the handlers the app registered before."""
    app.state.open311_settings = settings or Open311Settings()
    install_error_handlers(app)
