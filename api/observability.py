"""Each request's id, its access log line and its metrics, in one middleware.

Outside every other middleware, so that refusals (413, 429) and errors are logged and
counted too. The route template is read from the request scope once the router has
matched it (Starlette puts the matched route there).
"""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voirie.api.logs import REQUEST_ID, request_id
from voirie.api.metrics import UNMATCHED, observe

ACCESS = logging.getLogger("voirie.access")
HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode()  # as ASGI gives header names


def route_of(scope: Scope) -> str:
    """The template of the route that answered (``/ogc/collections/{collectionId}``);
    static files count as one route, and unknown paths as ``<unmatched>``."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str) and path:
        return path
    if scope["path"].startswith("/static/"):
        return "/static/{path}"
    return UNMATCHED


class Observability:
    """Give the request its id (echoed as ``X-Request-ID``), then count it, time it and
    write its access line (JSON with ``method``, ``route``, ``path``, ``status``,
    ``duration_ms``, ``client``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        offered = next((v for k, v in scope["headers"] if k == _HEADER_KEY), None)
        rid = request_id(offered.decode("latin-1") if offered else None)
        token = REQUEST_ID.set(rid)
        status = 500

        async def tagged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, tagged)
        finally:
            seconds = time.perf_counter() - started
            route = route_of(scope)
            observe(scope["method"], route, status, seconds)
            if ACCESS.isEnabledFor(logging.INFO):  # the line costs more than the request
                client = scope.get("client")
                ACCESS.info(
                    "%s %s %d",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "method": scope["method"],
                        "route": route,
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(seconds * 1000, 2),
                        "client": client[0] if client else None,
                    },
                )
            REQUEST_ID.reset(token)


def install(app: FastAPI) -> None:
    """Log and count every request of ``app`` (call last: outside every other middleware)."""
    app.add_middleware(Observability)
