"""Open311 POST requests: read the form, check it against the service definition, store.

https://wiki.open311.org/GeoReport_v2#POST_Service_Request: the body is
``application/x-www-form-urlencoded`` (JSON is accepted too), with ``attribute[CODE]=V`` and
``attribute[CODE][]=V`` for the service's attributes; ``api_key`` is required; the place is
``lat``/``long`` or an ``address_string`` located on the city's street layer.

The report goes through ``Intake.submit`` (stored, enriched, deduplicated and routed in
one transaction before the answer). A retry never makes a second report: the handler
passes the client, the ``Idempotency-Key`` header and ``resubmit_window_s``, from which
intake derives the report's external id and answers a stored one as the first answer was.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.concurrency import run_in_threadpool

from voirie.api.deps import PipelineDep
from voirie.api.open311 import wire
from voirie.api.open311.deps import JurisdictionDep, SettingsDep, check_jurisdiction, client
from voirie.api.open311.render import Format, render, responses
from voirie.api.open311.requests import OPEN311_SOURCE
from voirie.api.open311.settings import Open311Settings
from voirie.errors import InvalidInput
from voirie.gis.streetsearch import geocode_street
from voirie.ingest.attributes import MAX_FIELD, check_attributes
from voirie.model import Contact, Report
from voirie.services.auth import Role
from voirie.services.intake import Retry, Submission
from voirie.services.pipeline import Pipeline

router = APIRouter(prefix="/open311/v2", tags=["open311"])

MAX_DESCRIPTION = 4000
MAX_IDEMPOTENCY_KEY = 255
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
_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["api_key", "service_code"],
    "properties": {
        **{name: {"type": "string"} for name in _FIELDS},
        "lat": {"type": "number"},
        "long": {"type": "number"},
    },
    "additionalProperties": {"type": "string", "description": "attribute[CODE]=VALUE"},
}


@dataclass(frozen=True)
class Form:
    """A POST's fields (text) and its attribute answers (code -> values)."""

    fields: Mapping[str, str]
    attributes: Mapping[str, list[str]]

    def get(self, name: str) -> str | None:
        """A field's value, stripped; None when absent or blank."""
        value = self.fields.get(name)
        value = value.strip() if value is not None else None
        if value and len(value) > (MAX_DESCRIPTION if name == "description" else MAX_FIELD):
            raise InvalidInput(f"{name}: too long", field=name)
        return value or None


def _form_text(value: object) -> str:
    """A form value as text; a JSON body's other values (numbers, booleans) as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


async def read_form(request: Request) -> Form:
    """The body as a ``Form``, from url-encoded, multipart or JSON content."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields: dict[str, str] = {}
    attributes: dict[str, list[str]] = {}
    if kind == "application/json":
        try:
            body = json.loads(await request.body() or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"request body: not valid JSON ({exc})", field="body") from exc
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
    matches = geocode_street(pipeline.gis, address, limit=3)
    if not matches or not matches[0].exact:
        hint = f" (did you mean {', '.join(m.street_name for m in matches)}?)" if matches else ""
        raise InvalidInput(
            f"address_string: no street of {pipeline.city.config.name} is named as in "
            f"{address[:120]!r}{hint}; send lat and long",
            field="address_string",
        )
    return matches[0].lon, matches[0].lat


def create(
    pipeline: Pipeline, settings: Open311Settings, form: Form, key: str | None
) -> tuple[Submission, str]:
    """Store one Open311 request, or find the one it repeats; (submission, token)."""
    check_jurisdiction(pipeline, form.get("jurisdiction_id"))
    principal = client(pipeline, form.get("api_key"), frozenset({Role.CLIENT}))
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
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
        raise InvalidInput(
            f"Idempotency-Key: 1 to {MAX_IDEMPOTENCY_KEY} printable characters",
            field="Idempotency-Key",
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
    report = Report(
        external_id="",  # derived by intake from the retry below
        source=OPEN311_SOURCE,
        service_code=service.code,
        lon=lon,
        lat=lat,
        requested_at=datetime.now(UTC),
        description=form.get("description"),
        address=form.get("address_string"),
        channel=principal.name,
        media_url=media_url,
        contact=Contact(
            name=name, email=email, phone=form.get("phone"), device_id=form.get("device_id")
        ),
        attributes=tuple(answers),
    )
    submission = pipeline.intake.submit(
        report, Retry(principal.name, key, settings.resubmit_window_s)
    )
    return submission, submission.external_id


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
        Header(alias="Idempotency-Key", description="retries with the same key store once"),
    ] = None,
) -> Response:
    """Store a report and answer its service_request_id and the incident it joined."""
    form = await read_form(request)
    submission, token = await run_in_threadpool(create, pipeline, settings, form, idempotency_key)
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
