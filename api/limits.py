"""Request body limits enforced while the body streams in, before any other work.

Applied by ``voirie.api.edge.Gate``, outside every route: a declared ``Content-Length``
over the route's limit is refused at once, without calling the app (no authentication, no
parsing, nothing read); a chunked body is counted as it arrives and refused as soon as
it passes the limit, so at most one chunk beyond the limit is ever held. Without it, an
unauthenticated 1 GB POST was read whole into memory before its API key was checked.

Limits are per route: ``VOIRIE_BODY_MAX_BYTES`` for every JSON or form request, the
photo limit (``VOIRIE_MEDIA_MAX_BYTES`` plus the multipart overhead) for the photo upload,
read from the running app's Open311 settings so both checks agree.
"""

from __future__ import annotations

from http import HTTPStatus

from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive, Scope

from voirie.api.open311.errors import PREFIX as OPEN311_PREFIX
from voirie.api.open311.render import format_of, render_errors
from voirie.api.open311.settings import Open311Settings
from voirie.api.open311.wire import Open311Error
from voirie.api.problems import PROBLEM_MEDIA_TYPE, Problem
from voirie.settings import LimitSettings

MEDIA_PATHS = frozenset({"/open311/v2/media.json", "/open311/v2/media.xml"})
_STATUS = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class BodyTooLarge(HTTPException):
    """A body that grew past its route's limit while being read (rendered as a 413 by
    the app's own handlers, in the shape of the route)."""

    def __init__(self, limit: int) -> None:
        super().__init__(_STATUS, detail=f"request body: larger than {limit} bytes")


def too_large_response(path: str, limit: int) -> Response:
    """The 413 answer of ``path``: the Open311 error list on Open311 routes, problem
    details elsewhere."""
    detail = BodyTooLarge(limit).detail
    response: Response
    if path.startswith(OPEN311_PREFIX):
        errors = [Open311Error(code=_STATUS, description=detail)]
        response = render_errors(format_of(path), _STATUS, errors)
    else:
        problem = Problem(title=_STATUS.phrase, status=_STATUS, detail=detail)
        response = JSONResponse(
            problem.model_dump(exclude_none=True),
            status_code=_STATUS,
            media_type=PROBLEM_MEDIA_TYPE,
        )
    response.headers["Connection"] = "close"  # the rest of the body is never read
    return response


def limit_for(scope: Scope, settings: LimitSettings) -> int:
    """The largest body the request's route accepts, in bytes."""
    if scope["path"] in MEDIA_PATHS:
        media: Open311Settings = scope["app"].state.open311_settings
        return media.media_max_bytes + settings.multipart_overhead_bytes
    return settings.body_max_bytes


def declared_length(scope: Scope) -> int | None:
    """The body length a request declares (``Content-Length``), if it declares one."""
    declared = b""
    for name, value in scope["headers"]:
        if name == b"content-length":
            declared = value  # the last one, as a dict of the headers keeps
    return int(declared) if declared.isdigit() else None


def counted(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises ``BodyTooLarge`` once the body read passes ``limit``."""
    received = 0

    async def counting() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return counting
