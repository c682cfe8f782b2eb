"""Open311 POST requests: read the form, check it against the service definition, store.

https://wiki.open311.org/GeoReport_v2#POST_Service_Request: the body is
``application/x-www-form-urlencoded`` (JSON is accepted too), with ``attribute[CODE]=V`` and
``attribute[CODE][]=V`` for the service's attributes; ``api_key`` is required; the place is
``lat``/``long`` or an ``address_string`` located on the city's street layer.

The report goes through ``Intake.submit`` (stored, enriched, deduplicated and routed in
one transaction before the answer). A retry never makes a second report: the handler
passes the client's key, the ``Idempotency-Key`` header and ``resubmit_window_s``, from
which intake derives the report's external id and answers a stored one as the first
answer was (a key reused for another body: 422).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from starlette.datastructures import Headers

from voirie.api.deps import PipelineDep
from voirie.api.open311 import wire
from voirie.api.open311.deps import (
    JurisdictionDep,
    SettingsDep,
    admitted,
    check_jurisdiction,
    client,
)
from voirie.api.open311.errors import too_many_requests
from voirie.api.open311.render import Format, render, responses
from voirie.api.open311.requests import OPEN311_SOURCE
from voirie.api.open311.settings import Open311Settings
from voirie.api.ratelimit import charge_key
from voirie.api.validation import EMAIL_OR_BLANK, HTTP_URL_OR_BLANK, STORABLE, check_text
from voirie.errors import Forbidden, InvalidInput
from voirie.ingest.attributes import MAX_FIELD, check_attributes
from voirie.model import Contact, Report
from voirie.services import geocoding
from voirie.services.auth import Credential, Principal, Role, principal_of
from voirie.services.intake import Retry, Submission
from voirie.services.pipeline import Pipeline
from voirie.store.base import TokenRecord

router = APIRouter(prefix="/open311/v2", tags=["open311"])

MAX_DESCRIPTION = 4000
MAX_IDEMPOTENCY_KEY = 255
CLIENTS = frozenset({Role.CLIENT})
"""The roles whose keys may POST requests."""
_ATTRIBUTE = re.compile(r"^attribute\[([^\[\]]+)\](\[\])?$")
_FIELDS = (
    "api_key",
    "jurisdiction_id",
    "service_code",
    "lat",
    "long",
    "address_string",
    "address_id",
    "email",
    "device_id",
    "account_id",
    "first_name",
    "last_name",
    "phone",
    "description",
    "media_url",
)
IDEMPOTENCY_KEY = f"^[\\u0020-\\u007e]{{1,{MAX_IDEMPOTENCY_KEY}}}$"
"""An Idempotency-Key: printable ASCII (the IETF draft's structured-field string)."""
TEXT_FIELD = {"type": "string", "maxLength": MAX_FIELD, "pattern": STORABLE}
"""A form field as ``Form.get`` reads it: storable text, at most ``MAX_FIELD`` characters."""
# What ``create`` checks, declared (JSON Schema 2020-12, as OpenAPI 3.1 has it): text
# fields storable and bounded, an email or blank, an http(s) URL or blank, coordinates in
# range and given together. What no schema can say stays in the descriptions: the
# service must be one of GET services, the place inside the city or on one of its streets.
_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["api_key", "service_code"],
    "properties": {
        **dict.fromkeys(_FIELDS, TEXT_FIELD),
        "description": {**TEXT_FIELD, "maxLength": MAX_DESCRIPTION},
        "email": {"type": "string", "maxLength": MAX_FIELD, "pattern": EMAIL_OR_BLANK},
        "media_url": {
            "type": "string",
            "maxLength": MAX_FIELD,
            "allOf": [{"pattern": STORABLE}, {"pattern": HTTP_URL_OR_BLANK}],
        },
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "long": {"type": "number", "minimum": -180, "maximum": 180},
    },
    "dependentRequired": {"lat": ["long"], "long": ["lat"]},
    "additionalProperties": {**TEXT_FIELD, "description": "attribute[CODE]=VALUE"},
}


@dataclass(frozen=True)
class Form:
    """A POST's fields (text) and its attribute answers (code -> values)."""

    fields: Mapping[str, str]
    attributes: Mapping[str, list[str]]

    def get(self, name: str) -> str | None:
        """A field's value, stripped; None when absent or blank; refused when it cannot be
        stored (fields the request does not read are ignored, as the spec has it)."""
        value = self.fields.get(name)
        value = check_text(value, name).strip() if value is not None else None
        if value and len(value) > (MAX_DESCRIPTION if name == "description" else MAX_FIELD):
            raise InvalidInput(f"{name}: too long", field=name)
        return value or None


def _form_text(value: object) -> str:
    """A form value as text; a JSON body's other values (numbers, booleans) as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def content_kind(headers: Headers) -> str:
    """A request's media type (``Content-Type`` without its parameters, lower case)."""
    return headers.get("content-type", "").split(";")[0].strip().lower()


async def read_form(request: Request) -> Form:
    """The body as a ``Form``, from url-encoded, multipart or JSON content."""
    kind = content_kind(request.headers)
    fields: dict[str, str] = {}
    attributes: dict[str, list[str]] = {}
    if kind == "application/json":
        try:
            body = json.loads(await request.body() or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"request body: not valid JSON ({exc})", field="body") from exc
        except RecursionError:
            raise InvalidInput("request body: JSON nested too deep", field="body") from None
        if not isinstance(body, dict):
            raise InvalidInput("request body: expected a JSON object", field="body")
        items: list[tuple[str, object]] = []
        for key, value in body.items():
            if key == "attribute" and isinstance(value, dict):
                items += [(f"attribute[{code}][]", v) for code, v in value.items()]
            else:
                items.append((key, value))
        pairs = [
            (key, v)
            for key, value in items
            for v in (value if isinstance(value, list) else [value])
            if v is not None
        ]
    elif kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        pairs = [(key, value) for key, value in form.multi_items() if isinstance(value, str)]
    else:
        raise InvalidInput(
            "request body: send application/x-www-form-urlencoded (or JSON), "
            f"not {kind or 'nothing'}",
            field="body",
        )
    for key, value in pairs:
        match = _ATTRIBUTE.match(key)
        if match:
            check_text(key, "attribute")
            check_text(_form_text(value), key)
            attributes.setdefault(match.group(1), []).append(_form_text(value))
        else:
            fields.setdefault(key, _form_text(value))
    return Form(fields, attributes)


def _coordinate(form: Form, name: str, limit: float) -> float | None:
    raw = form.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{name}: not a number: {raw[:40]!r}", field=name) from None
    if not math.isfinite(value) or abs(value) > limit:
        raise InvalidInput(f"{name}: out of range ±{limit:g}", field=name)
    return value


def _location(pipeline: Pipeline, form: Form) -> tuple[float, float]:
    """(lon, lat): given, or located from ``address_string`` on the street layer."""
    lat, lon = _coordinate(form, "lat", 90), _coordinate(form, "long", 180)
    if lat is not None and lon is not None:
        return lon, lat
    if (lat is None) != (lon is None):
        missing = "long" if lon is None else "lat"
        raise InvalidInput(f"{missing}: lat and long go together", field=missing)
    address = form.get("address_string")
    if address is None:
        raise InvalidInput(
            "lat: a location is required: lat and long, or address_string", field="lat"
        )
    matches = geocoding.geocode(pipeline, address, limit=3)
    if not matches or not matches[0].exact:
        hint = f" (did you mean {', '.join(m.street_name for m in matches)}?)" if matches else ""
        raise InvalidInput(
            f"address_string: no street of {pipeline.city.config.name} is named as in "
            f"{address[:120]!r}{hint}; send lat and long",
            field="address_string",
        )
    return matches[0].lon, matches[0].lat


def _admitted(record: TokenRecord | None, now: datetime) -> Principal:
    """The holder of an Open311 client key as the write's transaction read it; 403 naming
    ``api_key`` otherwise, as ``deps.client`` answers."""
    return admitted(lambda: principal_of(record, now), CLIENTS)


def create(
    pipeline: Pipeline, settings: Open311Settings, form: Form, key: str | None
) -> tuple[Submission, str]:
    """Store one Open311 request, or find the one it repeats; (submission, token).

    The api_key is checked in the transaction that stores the report (``Credential``:
    no round trip of its own; a revoked key is refused from the next request on). A key
    refused goes before any other refusal, as when it was checked first: a request the
    form or the place refuses has its key checked (``deps.client``) before the answer.
    """
    check_jurisdiction(pipeline, form.get("jurisdiction_id"))
    api_key = form.get("api_key")
    if not api_key:  # in the words of ``deps.client``
        raise Forbidden("api_key: missing; ask the city for an Open311 client key", field="api_key")
    try:
        report = _report(pipeline, form)
        # Retries are recognised per token (the key, never the token's name, which two
        # tokens may share).
        retry = Retry(api_key, key, settings.resubmit_window_s)
        submission = pipeline.intake.submit(report, retry, Credential(api_key, _admitted))
    except InvalidInput:
        client(pipeline, api_key, CLIENTS)  # a refused key says so first
        raise
    return submission, submission.external_id


def _report(pipeline: Pipeline, form: Form) -> Report:
    """The report a form describes, checked against the city's catalogue and territory
    (its channel, the client's name, is set when its key is admitted)."""
    code = form.get("service_code")
    if code is None:
        raise InvalidInput("service_code: required", field="service_code")
    service = pipeline.city.services.get(code)
    if service is None:
        raise InvalidInput(
            f"service_code: no service {code[:80]!r} in {pipeline.city.config.name}; "
            "GET services lists them",
            field="service_code",
        )
    lon, lat = _location(pipeline, form)
    answers = check_attributes(service, form.attributes)
    media_url = form.get("media_url")
    if media_url is not None and not media_url.startswith(("https://", "http://")):
        raise InvalidInput("media_url: an http(s) URL", field="media_url")
    email = form.get("email")
    if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise InvalidInput("email: not an email address", field="email")
    name = " ".join(filter(None, (form.get("first_name"), form.get("last_name")))) or None
    return Report(
        external_id="",  # derived by intake from the request's retry
        source=OPEN311_SOURCE,
        service_code=service.code,
        lon=lon,
        lat=lat,
        requested_at=datetime.now(UTC),
        description=form.get("description"),
        address=form.get("address_string"),
        media_url=media_url,
        contact=Contact(
            name=name, email=email, phone=form.get("phone"), device_id=form.get("device_id")
        ),
        attributes=tuple(answers),
    )


@router.post(
    "/requests.{fmt}",
    summary="POST Service Request",
    dependencies=[JurisdictionDep],
    status_code=201,
    response_class=Response,
    responses={
        **responses(list[wire.RequestCreated], 403, ok=201, description="Stored."),
        200: {
            "model": list[wire.RequestCreated],
            "content": {"application/xml": {}},
            "description": "A retry: the first answer again, nothing stored.",
        },
        422: {
            "model": list[wire.Open311Error],
            "content": {"application/xml": {}},
            "description": "The Idempotency-Key was already used for another request.",
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {"schema": _BODY_SCHEMA},
                "application/json": {"schema": _BODY_SCHEMA},
            },
        }
    },
)
async def post_request(
    fmt: Format,
    request: Request,
    pipeline: PipelineDep,
    settings: SettingsDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=IDEMPOTENCY_KEY,
            description="retries with the same key (per api_key) store once; "
            f"1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters",
        ),
    ] = None,
) -> Response:
    """Store a report and answer its service_request_id and the incident it joined."""
    return await submitted(fmt, request, pipeline, settings, idempotency_key)


async def submitted(
    fmt: Format,
    request: Request,
    pipeline: Pipeline,
    settings: Open311Settings,
    idempotency_key: str | None,
) -> Response:
    """The answer to a POST whose parameters are checked: its form read, its key charged,
    its report stored in a worker thread, its ids rendered. The route's body, also run by
    the edge (``voirie.api.open311.quick_submit``) without the framework around it."""
    form = await read_form(request)
    if (refusal := await charge_key(request, form.get("api_key"))) is not None:
        return too_many_requests(fmt, refusal)
    submission, token = await asyncio.to_thread(create, pipeline, settings, form, idempotency_key)
    answer = wire.RequestCreated(
        service_request_id=str(submission.report_id),
        token=token,
        service_notice=None,
        account_id=None,
        incident_id=str(submission.incident_id),
        attached=submission.attached,
    )
    status = 200 if submission.already_stored else 201
    return render(fmt, [answer], root="service_requests", item="request", status=status)
