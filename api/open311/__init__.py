"""Open311 GeoReport v2 at ``/open311/v2`` (https://wiki.open311.org/GeoReport_v2).

``install(app)`` adds the routes, the photo upload and the Open311 error rendering; the
app factory calls it once, after its own error handlers.
"""

from __future__ import annotations

from fastapi import FastAPI

from voirie.api.open311 import media, requests, services, submit, updates
from voirie.api.open311.errors import install_error_handlers
from voirie.api.open311.settings import Open311Settings


def install(app: FastAPI, settings: Open311Settings | None = None) -> None:
    """Serve Open311 on ``app`` (settings from ``VOIRIE_*`` variables unless given)."""
    app.state.open311_settings = settings or Open311Settings()
    for module in (services, requests, submit, updates, media):
        app.include_router(module.router)
    install_error_handlers(app)
