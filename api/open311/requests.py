"""Open311 GET requests, GET requests/{id} and GET tokens/{token}.

https://wiki.open311.org/GeoReport_v2#GET_Service_Requests: ``service_request_id`` (a
comma-separated list of report ids) overrides every other filter; ``service_code`` and
``status`` take comma-separated lists; ``start_date``..``end_date`` spans at most 90 days
and defaults to the last 90 days with requests. Extensions: ``lat``/``long`` + ``radius``
(metres), ``bbox`` (minlon,minlat,maxlon,maxlat), ``page``/``page_size``, ``updated_after``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, cast
from zoneinfo import ZoneInfo

import orjson
import pandas as pd
from fastapi import APIRouter, Query, Response

from voirie.api.caching import current_mark
from voirie.api.deps import PipelineDep
from voirie.api.open311 import wire
from voirie.api.open311.deps import JurisdictionDep, SettingsDep
from voirie.api.open311.render import Format, render, render_data, responses
from voirie.api.open311.settings import Open311Settings
from voirie.api.validation import ID_LIST, IsoDateTime
from voirie.errors import InvalidInput, NotFound
from voirie.model import OPEN_STATUSES, EventKind, Status
from voirie.services.pipeline import Pipeline
from voirie.services.reads import instant
from voirie.services.workflow import StatusChange
from voirie.store.schema import MAX_ID
from voirie.store.selection import Selection
from voirie.values import aware_utc, optional_text

OPEN311_SOURCE = "open311"
router = APIRouter(prefix="/open311/v2", tags=["open311"], dependencies=[JurisdictionDep])

_POSTCODE = re.compile(r"\b(\d{5})\b")
_STATUSES = {
    "open": tuple(sorted(s.value for s in OPEN_STATUSES)),
    "closed": tuple(sorted(s.value for s in Status if s not in OPEN_STATUSES)),
}


def local_time(value: Any, tz: ZoneInfo) -> datetime | None:
    """A stored instant (UTC, or naive UTC) as the city's local time with its offset, to
    the second; None when missing."""
    if isinstance(value, datetime) and value is not pd.NaT:
        # A plain datetime (the lean path's records) costs no pandas call.
        moment = value.to_pydatetime() if isinstance(value, pd.Timestamp) else value
        return aware_utc(moment.replace(microsecond=0)).astimezone(tz)
    if value is None or pd.isna(value):
        return None
    return aware_utc(pd.Timestamp(value).floor("s").to_pydatetime()).astimezone(tz)


def _status_notes(changes: Sequence[tuple[object, ...]]) -> dict[int, str | None]:
    """The note of each incident's latest status change (what the updates feed publishes
    as that update's description), from ``(incident_id, reason)`` of its status-change
    events, oldest first; incidents never changed have none."""
    notes: dict[int, str | None] = {}
    for entity_id, reason in changes:  # oldest first: the latest change's note stays
        change = StatusChange.parse(str(reason))
        if change is not None:
            notes[int(cast(int, entity_id))] = change.note
    return notes


_WIRE_TIME = orjson.OPT_OMIT_MICROSECONDS | orjson.OPT_UTC_Z
# GeoReport's status (open, closed) of each of voirie's.
_OPEN311_STATUS = {status.value: status.open311 for status in Status}


def _wire_times(moments: Sequence[datetime | None]) -> list[str | None]:
    """Instants (``local_time``'s) as the wire models write them: RFC 3339 to the second,
    ``Z`` for a zero offset; None stays None. One orjson call formats them all: one by
    one, ``isoformat`` took half of a page's time (300 instants per 100 requests)."""
    texts: list[str | None] = orjson.loads(orjson.dumps(moments, option=_WIRE_TIME))
    return texts


def _local(value: object, tz: ZoneInfo) -> datetime | None:
    """A stored instant as the backend returns it (``instant``) in the city's local time,
    to the second (what ``local_time`` gives for a datetime); None when missing."""
    moment = instant(value)
    return None if moment is None else moment.replace(microsecond=0).astimezone(tz)


def request_records(pipeline: Pipeline, selection: Selection) -> list[dict[str, object]]:
    """The wire requests of the reports a selection keeps (one page), with their
    incident's team, times, status and latest status note: ``wire.ServiceRequest``'s
    fields in its order, as JSON-ready values, encoded once by the caller
    (``render_data``).

    The lean read path of GET requests: one round trip reads the page with its
    incidents' fields and their status changes (``Reads.request_records``); each row
    becomes one dict, and the page's instants are formatted in one call."""
    reports, changes = pipeline.reads.request_records(selection, EventKind.STATUS_CHANGED.value)
    if not reports:
        return []
    city = pipeline.city
    tz = ZoneInfo(city.config.timezone)
    notes = _status_notes(changes)
    services, teams = city.services, city.teams
    out: list[dict[str, object]] = []
    moments: list[datetime | None] = []  # three per request, formatted at once below
    for row in reports:
        incident_id = int(cast(int, row["incident_id"]))
        code = str(row["service_code"])
        service = services.get(code)
        team = teams.get(str(row["team"]))
        status = str(row["status"])
        address = optional_text(row["address"])
        postcode = _POSTCODE.search(address) if address else None
        moments += (
            _local(row["requested_at"], tz),
            _local(row["updated_at"], tz),
            _local(row["due_at"], tz),
        )
        out.append(
            {
                "service_request_id": str(int(cast(int, row["report_id"]))),
                "status": _OPEN311_STATUS[status],
                "status_notes": notes.get(incident_id),
                "service_name": service.name if service else code,
                "service_code": code,
                "description": optional_text(row["description"]),
                "agency_responsible": team.name if team else optional_text(row["team"]),
                "service_notice": None,
                "requested_datetime": None,
                "updated_datetime": None,
                "expected_datetime": None,
                "address": address,
                "address_id": None,
                "zipcode": postcode.group(1) if postcode else None,
                "lat": float(cast(float, row["lat"])),
                "long": float(cast(float, row["lon"])),
                "media_url": optional_text(row["media_url"]),
                "incident_id": str(incident_id),
                "detailed_status": status,
            }
        )
    texts = _wire_times(moments)
    for n, record in enumerate(out):
        requested, updated, expected = texts[3 * n : 3 * n + 3]
        record["requested_datetime"] = requested
        record["updated_datetime"] = updated
        record["expected_datetime"] = expected
    return out


def _ids(raw: str, field: str) -> tuple[int, ...]:
    values = [part.strip() for part in raw.split(",") if part.strip()]
    bad = [v for v in values if not (v.isascii() and v.isdigit()) or len(v) > 18]
    if bad or not values:
        raise InvalidInput(
            f"{field}: expected comma-separated request ids, got {raw[:80]!r}", field=field
        )
    return tuple(int(v) for v in values)


def _list(raw: str | None) -> tuple[str, ...] | None:
    if raw is None:
        return None
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _city_instant(value: datetime | None, tz: ZoneInfo) -> datetime | None:
    """A query datetime; one without an offset is local time of the city."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=tz)


def _bbox(raw: str) -> tuple[float, float, float, float]:
    try:
        parts = tuple(float(p) for p in raw.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4 or not all(map(math.isfinite, parts)):
        raise InvalidInput(
            f"bbox: expected minlon,minlat,maxlon,maxlat in degrees, got {raw[:80]!r}",
            field="bbox",
        )
    minx, miny, maxx, maxy = parts
    inside = -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90
    if not inside:
        raise InvalidInput("bbox: minimum above maximum or outside ±180/±90 degrees", field="bbox")
    return minx, miny, maxx, maxy


def window(
    start_date: datetime | None,
    end_date: datetime | None,
    tz: ZoneInfo,
    settings: Open311Settings,
    recent_start: datetime | None = None,
) -> tuple[datetime, datetime]:
    """start_date..end_date as the spec defines it: at most the configured number of
    days, defaulting to the most recent ones; times without offset are the city's.

    Without dates the window runs from ``recent_start`` (where the last days *with
    requests* begin, ``voirie.services.recent``) to now: a live city answers its last
    days, a store loaded with history its last days of history, and one new report does
    not hide that history.
    """
    start, end = _city_instant(start_date, tz), _city_instant(end_date, tz)
    span = timedelta(days=settings.max_range_days)
    if start is None and end is None and recent_start is not None:
        return recent_start, datetime.now(UTC)
    if start is None and end is None:
        end = datetime.now(UTC)
    if start is None:
        assert end is not None
        start = end - span
    if end is None:
        end = min(start + span, max(start, datetime.now(UTC)))
    if end < start:
        raise InvalidInput("end_date: before start_date", field="end_date")
    if end - start > span:
        raise InvalidInput(
            f"end_date: start_date..end_date spans {(end - start).days} days; "
            f"at most {settings.max_range_days}",
            field="end_date",
        )
    return start, end


def _circle(
    lat: float | None, long: float | None, radius: float | None, settings: Open311Settings
) -> tuple[float, float, float] | None:
    if lat is None and long is None:
        if radius is not None:
            raise InvalidInput("radius: needs lat and long", field="radius")
        return None
    if lat is None or long is None:
        missing = "lat" if lat is None else "long"
        raise InvalidInput(f"{missing}: lat and long go together", field=missing)
    radius = settings.max_radius_m / 5 if radius is None else radius
    if not 0 < radius <= settings.max_radius_m:
        raise InvalidInput(
            f"radius: metres, more than 0 and at most {settings.max_radius_m:g}", field="radius"
        )
    return lat, long, radius


@router.get(
    "/requests.{fmt}",
    summary="GET Service Requests",
    response_class=Response,
    responses=responses(list[wire.ServiceRequest]),
)
def get_requests(
    fmt: Format,
    pipeline: PipelineDep,
    settings: SettingsDep,
    service_request_id: Annotated[
        str | None,
        Query(pattern=ID_LIST, description="comma-separated request ids; overrides the rest"),
    ] = None,
    service_code: Annotated[str | None, Query(description="comma-separated codes")] = None,
    start_date: Annotated[IsoDateTime | None, Query(description="requested at or after")] = None,
    end_date: Annotated[IsoDateTime | None, Query(description="requested at or before")] = None,
    status: Annotated[str | None, Query(description="open, closed or open,closed")] = None,
    lat: Annotated[float | None, Query(ge=-90, le=90, description="extension")] = None,
    long: Annotated[float | None, Query(ge=-180, le=180, description="extension")] = None,
    radius: Annotated[float | None, Query(description="metres around lat/long")] = None,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat")] = None,
    updated_after: Annotated[
        IsoDateTime | None, Query(description="incident changed after (extension)")
    ] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int | None, Query(ge=1, description="extension")] = None,
) -> Response:
    """Reports matching every filter given, oldest id first, one page."""
    tz = ZoneInfo(pipeline.city.config.timezone)
    if service_request_id is not None:
        selection = Selection(ids=_ids(service_request_id, "service_request_id"))
        found = request_records(pipeline, selection)
        return render_data(fmt, found, root="service_requests", item="request")
    size = settings.page_size if page_size is None else page_size
    if size > settings.max_page_size:
        raise InvalidInput(f"page_size: at most {settings.max_page_size}", field="page_size")
    statuses = None
    if status is not None:
        wanted = _list(status) or ()
        unknown = [s for s in wanted if s not in _STATUSES]
        if unknown or not wanted:
            raise InvalidInput(
                f"status: expected open and/or closed, got {status[:80]!r}", field="status"
            )
        statuses = tuple(v for s in wanted for v in _STATUSES[s])
    recent = None
    if start_date is None and end_date is None:
        # The change mark HTTP caching read for this request: no second read of it.
        recent = pipeline.reads.recent_requests_start(settings.max_range_days, current_mark())
    start, end = window(start_date, end_date, tz, settings, recent)
    box = _bbox(bbox) if bbox is not None else None
    circle = _circle(lat, long, radius, settings)
    selection = Selection(
        service_codes=_list(service_code),
        statuses=statuses,
        bbox=box,
        start=start,
        end=end,
        updated_after=_city_instant(updated_after, tz),
    )
    selection = selection.page(size, (page - 1) * size)
    if circle is not None:  # the page measured in metres, then read as any page of ids
        within = pipeline.reads.reports_within(circle[1], circle[0], circle[2], selection)
        selection = Selection(ids=tuple(int(i) for i in within["report_id"]))
    found = request_records(pipeline, selection)
    return render_data(fmt, found, root="service_requests", item="request")


@router.get(
    "/requests/{service_request_id}.{fmt}",
    summary="GET Service Request",
    response_class=Response,
    responses=responses(list[wire.ServiceRequest]),
)
def get_request(service_request_id: str, fmt: Format, pipeline: PipelineDep) -> Response:
    """One request, as a one-element array (as the spec has it); 404 when unknown."""
    digits = service_request_id.isascii() and service_request_id.isdigit()
    report_id = int(service_request_id) if digits else None
    found = (
        request_records(pipeline, Selection(ids=(report_id,)))
        if report_id is not None and report_id <= MAX_ID
        else []
    )
    if not found:
        raise NotFound(
            f"service_request_id: no request {service_request_id[:40]!r}",
            field="service_request_id",
        )
    return render_data(fmt, found, root="service_requests", item="request")


@router.get(
    "/tokens/{token}.{fmt}",
    summary="GET request id from a token",
    response_class=Response,
    responses=responses(list[wire.TokenAnswer]),
)
def get_token(token: str, fmt: Format, pipeline: PipelineDep) -> Response:
    """The service_request_id a POST's token stands for; 404 for an unknown token."""
    known = pipeline.reads.known_reports(OPEN311_SOURCE, [token])
    if not len(known):
        raise NotFound(f"token: no request with token {token[:80]!r}", field="token")
    answer = wire.TokenAnswer(service_request_id=str(int(known["report_id"].iloc[0])), token=token)
    return render(fmt, [answer], root="service_requests", item="request")
