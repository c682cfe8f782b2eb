"""Each request's id, its access log line and its metrics.

Applied by the outermost layer (``voirie.api.edge.Edge``), so that refusals (413, 429)
and errors are logged and counted too. The route template is read from the request scope
once the router has matched it (Starlette puts the matched route there).
"""

from __future__ import annotations

import logging

from starlette.types import Scope

from voirie.api.metrics import UNMATCHED, observe

ACCESS = logging.getLogger("voirie.access")
HEADER = "X-Request-ID"
HEADER_KEY = HEADER.lower().encode()  # as ASGI gives header names


def route_of(scope: Scope) -> str:
    """The template of the route that answered (``/ogc/collections/{collectionId}``);
    static files count as one route, and unknown paths as ``<unmatched>``."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str) and path:
        return path
    if scope["path"].startswith("/static/"):
        return "/static/{path}"
    return UNMATCHED


def finished(scope: Scope, status: int, seconds: float) -> None:
    """Count and time one answered request and write its access line (JSON with
    ``method``, ``route``, ``path``, ``status``, ``duration_ms``, ``client``)."""
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
