"""What every request must hold before any route reads it: text that can be stored,
numbers in range, dates in a plausible window; a refusal names the field, never a 500.

Found by sending the bad inputs of a hostile client to every route on both backends:
a NUL byte in a query reached PostgreSQL (which refuses it) and answered 500; a lone
surrogate in a JSON body could not be encoded, nor could the 422 that echoed it; ``²`` is
a digit to ``int()`` but not an id; a due date of year 9999 was stored and then broke
every answer that showed it. The rules are kept here, once, and applied at the edge:

- ``guard_request``, a dependency of the whole app: every query parameter and path
  parameter holds storable text (``voirie.values.text_problem``, the import's own rule);
- ``StoredText``, the type of every free-text field of a JSON body model;
- ``MAX_OFFSET``, ``within`` (bounds) and the patterns (``STORABLE``, ``WORDS``, ``EMAIL``,
  ``ID_LIST``, ``HTTP_URL_OR_BLANK``), each declared in the OpenAPI document as checked;
- ``check_due_at``, the due-date horizon (``VOIRIE_DUE_HORIZON_DAYS``, 5 years);
- ``validation_problem``, request validation errors rendered without the input they
  refuse (which may be the unencodable text itself);
- ``allow_every_method``, a 405's ``Allow`` header naming every method of the path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema
from starlette.applications import Starlette
from starlette.routing import Match
from starlette.types import Message, Scope

from voirie.errors import InvalidInput
from voirie.services.workflow import REASON_REQUIRED
from voirie.settings import InputSettings
from voirie.store.schema import MAX_ID
from voirie.values import aware_utc, text_problem

MAX_OFFSET = MAX_ID
"""The largest page offset: larger ones overflow the stores' 64-bit integers."""

# Patterns the OpenAPI document declares (JSON Schema regular expressions, which
# hypothesis-based clients generate from): they accept exactly what the server does.
# Python's ``strip`` and ``\s`` mean every character ``str.isspace`` knows, listed here
# as escapes both dialects read; control characters are refused anyway (``StoredText``).
_CONTROL = "\\u0000-\\u001f\\u007f-\\u009f"
_CONTROL_BUT_SPACE = "\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f"
_WHITESPACE = "".join(f"\\u{c:04x}" for c in range(0x10000) if chr(c).isspace())
_SPACE = "".join(
    f"\\u{c:04x}" for c in range(0x10000) if chr(c).isspace() and not text_problem(chr(c))
)
_PART = f"[^@{_WHITESPACE}{_CONTROL}]+"
_ADDRESS = f"{_PART}@{_PART}\\.{_PART}"
EMAIL = f"^[{_SPACE}]*{_ADDRESS}[{_SPACE}]*$"
"""An email as the server accepts it: name@domain.tld, surrounding spaces ignored."""
EMAIL_OR_BLANK = f"^[{_SPACE}]*({_ADDRESS})?[{_SPACE}]*$"
"""An optional email: blank means none."""
_ID_PART = f"[{_SPACE}]*([0-9]{{1,18}}[{_SPACE}]*)?"
ID_LIST = f"^({_ID_PART},)*[{_SPACE}]*[0-9]{{1,18}}[{_SPACE}]*(,{_ID_PART})*$"
"""Comma-separated ids (ASCII digits, at most 18 each), at least one; blanks ignored."""
HTTP_URL_OR_BLANK = f"^[{_SPACE}]*($|https?://)"
"""An optional link: blank, or starting ``http://`` or ``https://`` (spaces around ignored)."""


def _safe(text: str) -> str:
    """Text that can be shown and encoded whatever it holds (surrogates escaped)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_text(value: str, field: str) -> str:
    """``value`` when it can be stored; ``InvalidInput`` naming ``field`` otherwise."""
    problem = text_problem(value)
    if problem is not None:
        raise InvalidInput(f"{_safe(field)}: {problem}", field=_safe(field))
    return value


STORABLE = f"^[^{_CONTROL_BUT_SPACE}]*$"
"""Text ``voirie.values.text_problem`` accepts, as a JSON Schema pattern (unpaired
surrogates cannot be written in a valid JSON document, and pydantic refuses them)."""
WORDS = f"^[^{_CONTROL_BUT_SPACE}]*[^{_WHITESPACE}{_CONTROL}][^{_CONTROL_BUT_SPACE}]*$"
"""Storable text with something besides spaces: a required reason or comment, which the
services read stripped and refuse when blank (``reason: must not be empty``)."""
StoredText = Annotated[str, Field(pattern=STORABLE)]
"""A text field of a request body: refused (422, naming the field) when it holds a NUL
byte, a control character other than tab and line breaks, or an unpaired surrogate; the
OpenAPI document declares it."""


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


def _iso_text(value: object) -> object:
    """Refuse what pydantic would read as a Unix time (``0.5``, ``1700000000``): the
    schema's ``date-time`` format is ISO 8601 text."""
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("not an ISO 8601 date-time (e.g. 2024-03-01T08:00:00Z)")
    return value


QUERY_YEARS = range(1900, 2200)
"""Years a date of a query may name: a window's arithmetic (± its span, the city's
offset) stays within what ``datetime`` holds, and no city's data lies outside."""


def _plausible(value: datetime) -> datetime:
    """Refuse a date no data can be near (year 1 or 9999 overflowed the window: a 500)."""
    if value.year not in QUERY_YEARS:
        first, last = QUERY_YEARS[0], QUERY_YEARS[-1]
        raise ValueError(f"year {value.year} is outside {first}..{last}")
    return value


IsoDateTime = Annotated[
    datetime,
    BeforeValidator(_iso_text),
    AfterValidator(_plausible),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "format": "date"},
            ],
            "description": "W3C datetime (GeoReport v2): a date-time, or a date alone "
            "(midnight at its start); without an offset, the city's local time; years "
            "1900 to 2199",
        }
    ),
]
"""A date-time query parameter: ISO 8601 text only, a full date-time or a date alone (the
W3C datetime profile GeoReport v2 names allows both), as its schema says."""


LATITUDE: dict[str, float] = {"minimum": -90, "maximum": 90}
LONGITUDE: dict[str, float] = {"minimum": -180, "maximum": 180}


def within(value: float, field: str, bounds: Mapping[str, float]) -> float:
    """``value`` when finite and within JSON Schema ``bounds`` (``minimum``, ``maximum``,
    ``exclusiveMinimum``), the same mapping the OpenAPI document declares; else
    ``InvalidInput`` naming ``field``."""
    low, high = bounds.get("minimum", -math.inf), bounds.get("maximum", math.inf)
    above = bounds.get("exclusiveMinimum", -math.inf)
    if not (math.isfinite(value) and low <= value <= high and value > above):
        shown = ", ".join(f"{name} {limit:g}" for name, limit in bounds.items())
        raise InvalidInput(f"{field}: {value:g} is out of range ({shown})", field=field)
    return value


def check_due_at(due_at: datetime | None, settings: InputSettings) -> datetime | None:
    """A due date within the horizon around now (a naive one is UTC), else
    ``InvalidInput`` naming ``due_at``."""
    if due_at is None:
        return None
    moment = aware_utc(due_at)
    now = datetime.now(UTC)
    horizon = timedelta(days=settings.due_horizon_days)
    if not now - horizon <= moment <= now + horizon:
        raise InvalidInput(
            f"due_at: {moment.isoformat()} is more than {settings.due_horizon_days} days from now",
            field="due_at",
        )
    return moment


async def _input_settings(request: Request) -> InputSettings:
    settings: InputSettings = request.app.state.input_settings
    return settings


InputSettingsDep = Annotated[InputSettings, Depends(_input_settings)]


def check_request(request: Request) -> None:
    """Refuse a request whose query or path parameters hold text that cannot be stored,
    naming the parameter (before any route reads them)."""
    for name, value in request.query_params.multi_items():
        check_text(name, "query parameter name")
        check_text(value, name)
    for name, value in request.path_params.items():
        if isinstance(value, str):
            check_text(value, name)


async def guard_request(request: Request) -> None:
    """``check_request`` as a dependency."""
    check_request(request)


GUARD = Depends(guard_request)
"""``guard_request`` as the app-wide dependency ``create_app`` declares."""


def _error(error: Any) -> dict[str, Any]:
    """One validation error without the input it refuses, its text made encodable."""
    return {
        "loc": [_safe(part) if isinstance(part, str) else part for part in error["loc"]],
        "msg": _safe(str(error["msg"])),
        "type": str(error["type"]),
    }


async def validation_problem(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 (``{"detail": [{"loc", "msg", "type"}]}``, the shape the OpenAPI
    document declares) without echoing the refused input."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": [_error(e) for e in exc.errors()]}, status_code=422)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(app: Starlette, scope: Scope) -> list[str]:
    """Every method some route of ``app`` accepts at the request's path (each asked of
    the routes as a request of that method, whatever kind of route or router they are)."""
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**scope, "method": method})[0] == Match.FULL
            for route in app.router.routes
        )
    ]


def allow_every_method(scope: Scope, start: Message) -> None:
    """A 405 answer's ``Allow`` lists every method of the path (RFC 9110 15.5.6).

    Starlette answers 405 from the first route whose path matches and lists only that
    route's methods; where GET and POST of one path are two routes, ``Allow`` omitted one.
    """
    if start["status"] == 405:
        allow = ", ".join(allowed_methods(scope["app"], scope)).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"allow"]
        start["headers"] = [*headers, (b"allow", allow)]


def _declare_storable(document: dict[str, Any]) -> None:
    """Declare ``guard_request``'s rule in the OpenAPI document: every text parameter of
    the query or the path without a pattern of its own gets ``STORABLE``, and every
    operation with parameters declares the 400 it answers (in the shape of its 404)."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            answers = operation.get("responses", {})
            if operation.get("parameters") and "400" not in answers and "404" in answers:
                answers["400"] = {**answers["404"], "description": "Invalid input"}
            for parameter in operation.get("parameters", []):
                if parameter.get("in") not in ("query", "path"):
                    continue
                schema = parameter.get("schema", {})
                for branch in schema.get("anyOf", [schema]):
                    if branch.get("type") == "string" and "pattern" not in branch:
                        branch["pattern"] = STORABLE
                    items = branch.get("items", {})
                    if items.get("type") == "string" and "pattern" not in items:
                        items["pattern"] = STORABLE


def _declare_words(document: dict[str, Any]) -> None:
    """A required ``StoredText`` field of a body (``min_length=1``) is a reason or a note,
    which the services strip and refuse when blank: declare ``WORDS`` for it, so that a
    blank one is invalid by the schema as it is for the server."""
    for schema in document.get("components", {}).get("schemas", {}).values():
        for field in schema.get("properties", {}).values():
            if field.get("pattern") == STORABLE and field.get("minLength", 0) >= 1:
                field["pattern"] = WORDS


def _declare_required_reason(document: dict[str, Any]) -> None:
    """A status change to a status that needs a reason (``REASON_REQUIRED``: rejected)
    comes with one that is not blank: a rule between two fields, which JSON Schema
    2020-12 (OpenAPI 3.1) states with ``if``/``then``."""
    schema = document.get("components", {}).get("schemas", {}).get("StatusChange")
    if schema is None:
        return
    schema["if"] = {
        "properties": {"status": {"enum": sorted(REASON_REQUIRED)}},
        "required": ["status"],
    }
    schema["then"] = {"required": ["reason"], "properties": {"reason": {"pattern": WORDS}}}


def _declare_edited_text(document: dict[str, Any]) -> None:
    """A moderator editing a report's public text (``text: edit``) gives the new text,
    not blank: the same kind of rule between two fields."""
    schema = document.get("components", {}).get("schemas", {}).get("ModerationIn")
    if schema is None:
        return
    schema["if"] = {"properties": {"text": {"const": "edit"}}, "required": ["text"]}
    schema["then"] = {
        "required": ["description"],
        "properties": {"description": {"type": "string", "pattern": WORDS}},
    }


def install(app: FastAPI, settings: InputSettings | None = None) -> None:
    """The input rules' settings, the 422 renderer (before Open311's error handlers, which
    wrap it) and the rules' declaration in the OpenAPI document."""
    app.state.input_settings = settings or InputSettings()
    app.add_exception_handler(RequestValidationError, validation_problem)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()
        _declare_storable(document)
        _declare_words(document)
        _declare_required_reason(document)
        _declare_edited_text(document)
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point
