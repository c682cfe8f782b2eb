"""The Open311 POST answered at the edge of the app, outside the framework (issue 20).

``voirie.api.edge.Gate`` hands a POST of ``/open311/v2/requests.{json,xml}`` here, behind
its body limit, instead of to the app's exception layer, router and dependency solving
(0.2–0.35 ms of a served POST's ~3.3 ms of worker CPU, bench/RESULTS.md). What the
route's dependencies did is done here, in their order: the app-wide check of parameters
(``validation.GUARD``) and the query's ``jurisdiction_id`` (``deps.JurisdictionDep``);
then the route's own body (``submit.submitted``). A refusal is rendered as the app's
Open311 error handler renders it.

Left to the route, which answers them as before: another path or format, a body that
is neither JSON nor a url-encoded form (photos in multipart, odd types, which the route
refuses in its own words), and an ``Idempotency-Key`` the route's header validation
refuses (its 400 is FastAPI's validation error).
"""

from __future__ import annotations

import re

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette._utils import get_route_path
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope

from voirie.api.open311 import submit
from voirie.api.open311.deps import check_jurisdiction
from voirie.api.open311.errors import open311_response
from voirie.api.open311.render import FORMATS, Format
from voirie.api.open311.settings import Open311Settings
from voirie.api.validation import check_request
from voirie.errors import VoirieError
from voirie.services.pipeline import Pipeline

SUBMIT_ROUTE = next(
    r for r in submit.router.routes if isinstance(r, APIRoute) and r.endpoint is submit.post_request
)
"""The route of POST requests, answered by ``quick_submit`` too."""
_FORMATS: dict[str, Format] = {fmt: fmt for fmt in FORMATS}
_KINDS = frozenset({"application/json", "application/x-www-form-urlencoded"})
_KEY = re.compile(submit.IDEMPOTENCY_KEY)


def quick_format(scope: Scope) -> Format | None:
    """The format of a POST the edge answers as the route would; None when the route
    must answer it (another request, a multipart or odd body, an invalid key)."""
    if scope["method"] != "POST":
        return None
    found = SUBMIT_ROUTE.path_regex.match(get_route_path(scope))
    fmt = _FORMATS.get(found["fmt"]) if found else None
    if fmt is None:
        return None
    headers = Headers(scope=scope)
    if submit.content_kind(headers) not in _KINDS:
        return None
    key = headers.get("idempotency-key")
    return fmt if key is None or _KEY.search(key) else None


async def quick_submit(scope: Scope, receive: Receive, fmt: Format) -> Response:
    """The route's answer to a POST ``quick_format`` accepted (``scope`` routed to
    ``SUBMIT_ROUTE``). A store that is down is a 503 in the Open311 shape, as the route
    answers it; an error no handler renders goes on up, as from the route."""
    request = Request(scope, receive)
    pipeline: Pipeline = request.app.state.pipeline
    settings: Open311Settings = request.app.state.open311_settings
    try:
        check_request(request)
        check_jurisdiction(pipeline, request.query_params.get("jurisdiction_id"))
        key = request.headers.get("idempotency-key")
        return await submit.submitted(fmt, request, pipeline, settings, key)
    except (VoirieError, HTTPException) as exc:
        return open311_response(fmt, exc)
