"""Rate limits at the door: the middleware that charges every request to its client address
(and to its API key when the key is in a header or the query string) before the app reads
the body or checks a token, and the 429 answers it gives.

The budgets themselves are in :mod:`voirie.api.ratelimit`. Refusals are problem details,
or the Open311 error list on ``/open311`` routes, always with ``Retry-After``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from voirie.api.open311.errors import PREFIX as OPEN311_PREFIX
from voirie.api.open311.errors import too_many_requests
from voirie.api.open311.render import format_of
from voirie.api.problems import PROBLEM_MEDIA_TYPE, Problem
from voirie.api.ratelimit import (
    KEY_BUDGET,
    STATUS,
    RateLimits,
    Refusal,
    address_bucket,
    client_address,
    key_digest,
)
from voirie.settings import RateLimitSettings

_READS = frozenset({"GET", "HEAD", "OPTIONS"})
# Probes and assets are never refused: a monitor or a page's stylesheet is not an abuser.
EXEMPT = ("/healthz", "/readyz", "/metrics", "/static/")


def refused_response(path: str, refusal: Refusal) -> Response:
    """The 429 of ``path``: the Open311 error list on Open311 routes, problem details
    elsewhere; ``Retry-After`` on both."""
    if path.startswith(OPEN311_PREFIX):
        return too_many_requests(format_of(path), refusal)
    problem = Problem(title=STATUS.phrase, status=STATUS, detail=refusal.detail)
    return JSONResponse(
        problem.model_dump(exclude_none=True),
        status_code=STATUS,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=refusal.headers,
    )


def _token(scope: Scope) -> str | None:
    """The API key a request carries in its headers or query string, unchecked."""
    headers: dict[bytes, bytes] = dict(scope["headers"])
    scheme, _, credentials = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    query: bytes = scope.get("query_string", b"")
    for pair in query.decode("latin-1").split("&"):
        name, _, value = pair.partition("=")
        if name == "api_key" and value:
            return value
    return None


class RateLimitMiddleware:
    """Charge every request to its client address (and its key, when in its headers or
    query string) before the app sees it; 429 once a budget is spent. The resolved client
    address replaces the request's ``client`` for everything behind."""

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT):
            await self.app(scope, receive, send)
            return
        peer, port = scope.get("client") or ("", 0)
        forwarded = dict(scope["headers"]).get(b"x-forwarded-for")
        address = client_address(
            peer, forwarded.decode("latin-1") if forwarded else None, self.limits.proxies
        )
        scope["client"] = (address, port)
        reads = scope["method"] in _READS
        refusal = await self.limits.charge(
            "from this address",
            self.limits.address_reads if reads else self.limits.address_writes,
            "reads" if reads else "writes",
            address_bucket(address),
        )
        token = _token(scope)
        if refusal is None and token is not None:
            refusal = await self.limits.charge(KEY_BUDGET, self.limits.key, key_digest(token))
        if refusal is not None:
            await refused_response(scope["path"], refusal)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _declare_429(document: dict[str, Any]) -> None:
    """Declare the 429 on every limited operation of an OpenAPI document, in the
    operation's own error shape (copied from its 400 or 404: problem details or the
    Open311 error list), with ``Retry-After``."""
    declared = {
        "description": "Too many requests: wait Retry-After seconds",
        "headers": {
            "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
        },
    }
    problem = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in document.get("paths", {}).items():
        if path.startswith(EXEMPT):
            continue
        for operation in operations.values():
            answers = operation.get("responses", {})
            shaped = answers.get("400") or answers.get("404") or {"content": problem}
            answers.setdefault("429", {**shaped, **declared})


def install(app: FastAPI, settings: RateLimitSettings | None) -> None:
    """Enforce ``settings``' rates on ``app`` (no limits when ``None`` or disabled); call
    after every route is included, so the 429 is declared on each."""
    if settings is None or not settings.rate_limits_enabled:
        app.state.rate_limits = None
        return
    limits = RateLimits(settings)
    app.state.rate_limits = limits
    app.add_middleware(RateLimitMiddleware, limits=limits)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()
        _declare_429(document)
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point
