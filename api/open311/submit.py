"""Open311 POST requests: read the form, check it against the service definition, store.

https://wiki.open311.org/GeoReport_v2#POST_Service_Request: the body is
``application/x-www-form-urlencoded`` (JSON is accepted too), with ``attribute[CODE]=V`` and
``attribute[CODE][]=V`` for the service's attributes; ``api_key`` is required; the place is
``lat``/``long`` or an ``address_string`` located on the city's street layer.

The report goes through ``Pipeline.submit`` (stored, enriched, deduplicated and routed in
one transaction before the answer). A retry never makes a second report: the report's
external id is derived from the ``Idempotency-Key`` header, or failing that from the client,
device, service, place and description within ``resubmit_window_s``; a stored one is
answered as the first answer was.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, cast

from fastapi import APIRouter, Header, Request, Response
from fastapi.concurrency import run_in_threadpool

from voirie.api.deps import PipelineDep
from voirie.api.open311 import wire
from voirie.api.open311.deps import JurisdictionDep, SettingsDep, check_jurisdiction, client
from voirie.api.open311.render import Format, render, responses
from voirie.api.open311.requests import OPEN311_SOURCE
from voirie.api.open311.settings import Open311Settings
from voirie.city import Service, ServiceAttribute
from voirie.errors import InvalidInput
from voirie.gis.streetsearch import geocode_street
from voirie.model import Contact, Report
from voirie.pipeline import Pipeline
from voirie.services.auth import Role
from voirie.services.intake import Submission

router = APIRouter(prefix="/open311/v2", tags=["open311"])

MAX_DESCRIPTION = 4000
MAX_FIELD = 500
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


def _text(value: object) -> str:
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
            attributes.setdefault(match.group(1), []).append(_text(value))
        else:
            fields.setdefault(key, _text(value))
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


def _answer(attribute: ServiceAttribute, values: list[str]) -> list[str]:
    """The answer's values, checked against the attribute's datatype and values."""
    name = f"attribute[{attribute.code}]"
    values = [v.strip() for v in values if v.strip()]
    if attribute.datatype != "multivaluelist" and len(values) > 1:
        raise InvalidInput(f"{name}: takes one value, got {len(values)}", field=name)
    keys = {v.key for v in attribute.values}
    for value in values:
        if len(value) > MAX_FIELD:
            raise InvalidInput(f"{name}: too long", field=name)
        if keys and value not in keys:
            raise InvalidInput(
                f"{name}: {value[:40]!r} is not one of {', '.join(sorted(keys))}", field=name
            )
        if attribute.datatype == "number":
            try:
                ok = math.isfinite(float(value))
            except ValueError:
                ok = False
            if not ok:
                raise InvalidInput(f"{name}: not a number: {value[:40]!r}", field=name)
        if attribute.datatype == "datetime":
            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise InvalidInput(f"{name}: not an ISO 8601 datetime", field=name) from None
    return values


def check_attributes(service: Service, given: Mapping[str, list[str]]) -> list[tuple[str, str]]:
    """(code, value) rows of the answers; every required attribute answered, no unknown one."""
    defined = {attribute.code: attribute for attribute in service.attributes}
    unknown = sorted(set(given) - set(defined))
    if unknown:
        name = f"attribute[{unknown[0]}]"
        raise InvalidInput(
            f"{name}: not an attribute of service {service.code}; GET services/"
            f"{service.code} lists them",
            field=name,
        )
    rows: list[tuple[str, str]] = []
    for code, attribute in defined.items():
        values = _answer(attribute, given.get(code, []))
        if attribute.required and not values:
            name = f"attribute[{code}]"
            raise InvalidInput(f"{name}: required ({attribute.description})", field=name)
        rows += [(code, value) for value in dict.fromkeys(values)]
    return rows


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def external_ids(
    client_name: str,
    key: str | None,
    form: Form,
    lon: float,
    lat: float,
    now: datetime,
    window_s: int,
) -> list[str]:
    """The external id a new report gets (first), then the ids a retry of it may carry.

    With an Idempotency-Key it is the key (per client); without, the client, device,
    service, place (to about a metre) and description in this window or the previous one.
    """
    if key is not None:
        return [f"k-{_digest(client_name, key)}"]
    material = (
        client_name,
        form.get("device_id") or "",
        form.get("service_code") or "",
        f"{lon:.5f}",
        f"{lat:.5f}",
        form.get("description") or "",
    )
    bucket = int(now.timestamp()) // window_s
    return [f"f-{_digest(*material, str(b))}" for b in (bucket, bucket - 1)]


def _stored(
    pipeline: Pipeline, ids: list[str], since: datetime | None
) -> tuple[Submission, str] | None:
    """The first stored report among these external ids (received since ``since``), with
    its token: keyed lookups in one transaction."""
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        found = [
            (known, external_id)
            for external_id in ids
            if (known := uow.known_report(OPEN311_SOURCE, external_id)) is not None
            and known.incident_id is not None
            and (since is None or known.received_at >= since)
        ]
        if not found:
            return None
        first, token = min(found, key=lambda pair: pair[0].report_id)
        incident_id = cast(int, first.incident_id)
        incident = uow.incident(incident_id)
    # Answered as the first time: attached unless the report opened its incident.
    attached = incident is not None and incident["origin_report_id"] != first.report_id
    return Submission(first.report_id, incident_id, attached, True), token


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
    now = datetime.now(UTC)
    ids = external_ids(principal.name, key, form, lon, lat, now, settings.resubmit_window_s)
    since = None if key is not None else now - timedelta(seconds=settings.resubmit_window_s)
    if (found := _stored(pipeline, ids, since)) is not None:
        return found
    name = " ".join(filter(None, (form.get("first_name"), form.get("last_name")))) or None
    report = Report(
        external_id=ids[0],
        source=OPEN311_SOURCE,
        service_code=service.code,
        lon=lon,
        lat=lat,
        requested_at=now,
        description=form.get("description"),
        address=form.get("address_string"),
        channel=principal.name,
        media_url=media_url,
        contact=Contact(
            name=name, email=email, phone=form.get("phone"), device_id=form.get("device_id")
        ),
        attributes=tuple(answers),
    )
    try:
        submission = pipeline.submit(report)
    except InvalidInput as exc:
        # The same request sent twice at once: the second finds the first's external id.
        if exc.field != "external_id" or (found := _stored(pipeline, ids[:1], None)) is None:
            raise
        return found
    return submission, ids[0]


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
