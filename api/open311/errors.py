"""Errors on Open311 routes in the spec's shape; every other route keeps its own.

https://wiki.open311.org/GeoReport_v2#Errors: ``[{"code": 400, "description": "..."}]`` in
JSON, ``<errors><error><code/><description/></error></errors>`` in XML. Domain errors keep
their status; FastAPI's request validation errors (422) become 400, as the spec has no 422.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from voirie.api.open311.render import Format, format_of, render_errors
from voirie.api.open311.wire import Open311Error
from voirie.api.ratelimit import STATUS as TOO_MANY
from voirie.api.ratelimit import Refusal
from voirie.errors import VoirieError

PREFIX = "/open311"
Handler = Callable[[Request, Any], Awaitable[Response] | Response]


def _validation_errors(exc: RequestValidationError) -> list[Open311Error]:
    errors = []
    for error in exc.errors():
        location = [
            str(part)
            for part in error.get("loc", ())
            if part not in ("body", "query", "path", "form")
        ]
        field = ".".join(location) or "request"
        errors.append(Open311Error(code=400, description=f"{field}: {error.get('msg', '')}"))
    return errors or [Open311Error(code=400, description="invalid request")]


def open311_errors(exc: Exception) -> tuple[int, list[Open311Error]]:
    """The HTTP status and the Open311 errors of an exception raised on an Open311 route."""
    if isinstance(exc, VoirieError):
        return exc.status, [Open311Error(code=exc.open311_code, description=exc.message)]
    if isinstance(exc, RequestValidationError):
        return 400, _validation_errors(exc)
    if isinstance(exc, HTTPException):
        return exc.status_code, [Open311Error(code=exc.status_code, description=str(exc.detail))]
    raise TypeError(f"not an error voirie renders: {type(exc).__name__}")


def open311_response(fmt: Format, exc: Exception) -> Response:
    """An error raised on an Open311 route, rendered: by the app's handlers, and by the
    edge's POST (``voirie.api.open311.quick_submit``), which answers without them."""
    status, errors = open311_errors(exc)
    response = render_errors(fmt, status, errors)
    # Headers the error carries (a 405's Allow, a 503's Retry-After) are part of it.
    response.headers.update(getattr(exc, "headers", None) or {})
    return response


def install_error_handlers(app: FastAPI) -> None:
    """Render errors on ``/open311`` paths in the Open311 shape; others as before.

    Call after the app's own handlers are registered: those are kept for other paths.
    """
    fallback: dict[type[Exception], Handler] = {
        VoirieError: app.exception_handlers.get(VoirieError, http_exception_handler),
        RequestValidationError: app.exception_handlers.get(
            RequestValidationError, request_validation_exception_handler
        ),
        HTTPException: app.exception_handlers.get(HTTPException, http_exception_handler),
    }
    for kind, previous in fallback.items():

        async def handler(
            request: Request, exc: Exception, previous: Handler = previous
        ) -> Response:
            if not request.url.path.startswith(PREFIX):
                answer = previous(request, exc)
                return answer if isinstance(answer, Response) else await answer
            return open311_response(format_of(request.url.path), exc)

        app.add_exception_handler(kind, handler)


def too_many_requests(fmt: Format, refusal: Refusal) -> Response:
    """The 429 of an Open311 route whose rate budget is spent, with ``Retry-After``."""
    errors = [Open311Error(code=TOO_MANY, description=refusal.detail)]
    response = render_errors(fmt, TOO_MANY, errors)
    response.headers.update(refusal.headers)
    return response
