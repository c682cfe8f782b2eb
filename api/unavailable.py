"""A database that is down answers 503, also when a middleware met it first.

The app's exception handlers render a ``StoreError`` raised by a route as a 503. A
middleware outside them that reads the store (HTTP caching's change counter) would let it
escape as a bare 500 instead; ``voirie.api.edge.Gate`` renders it like the handlers do:
problem details, or the Open311 error list on ``/open311`` routes, with ``Retry-After``.
Once an answer has started, the error goes on up and the server aborts the connection, so
a client never takes a cut answer for a whole. Every 503 passing through gets
``Retry-After`` too, whichever handler rendered it (``with_retry_after``).
"""

from __future__ import annotations

from fastapi.responses import JSONResponse, Response
from starlette.types import Message

from voirie.api.open311.errors import PREFIX as OPEN311_PREFIX
from voirie.api.open311.render import format_of, render_errors
from voirie.api.open311.wire import Open311Error
from voirie.api.problems import PROBLEM_MEDIA_TYPE, Problem
from voirie.errors import StoreError

RETRY_AFTER_S = 5
_RETRY_AFTER = str(RETRY_AFTER_S).encode()


def unavailable_response(path: str, exc: StoreError) -> Response:
    """The 503 answer of ``path`` for ``exc``, in the route's error shape."""
    response: Response
    if path.startswith(OPEN311_PREFIX):
        errors = [Open311Error(code=exc.open311_code, description=exc.message)]
        response = render_errors(format_of(path), exc.status, errors)
    else:
        problem = Problem(title=type(exc).__name__, status=exc.status, detail=exc.message)
        response = JSONResponse(
            problem.model_dump(exclude_none=True),
            status_code=exc.status,
            media_type=PROBLEM_MEDIA_TYPE,
        )
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def with_retry_after(start: Message) -> None:
    """``Retry-After`` on a 503's start that has none."""
    headers = start.get("headers", [])
    if start["status"] == 503 and not any(name.lower() == b"retry-after" for name, _ in headers):
        start["headers"] = [*headers, (b"retry-after", _RETRY_AFTER)]
