"""The citizen API (no authentication): what is open nearby, "me too", follow-ups, geocoding.

Handlers only translate between the wire and :mod:`voirie.services.citizens`; every check and every
error (naming its field) lives there. Emails come in, never go out: no response carries one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Body, Query, Request, Response, status
from pydantic import BaseModel, Field

from voirie.api.deps import IncidentId, PipelineDep
from voirie.api.ratelimit import SupportLimit
from voirie.api.validation import (
    EMAIL,
    EMAIL_OR_BLANK,
    LATITUDE,
    LONGITUDE,
    MAX_OFFSET,
    StoredText,
    within,
)
from voirie.errors import NotFound
from voirie.model import OPEN_STATUSES
from voirie.services import citizens, geocoding
from voirie.store.selection import Selection

router = APIRouter(prefix="/api/v1", tags=["citizens"])
_OPEN = tuple(sorted(s.value for s in OPEN_STATUSES))


class NearbyIncident(BaseModel):
    """An open incident near the citizen (public fields only)."""

    incident_id: int
    service_code: str
    service_name: str
    status: str
    street_name: str | None
    description: str | None = Field(description="text of the report that opened the incident")
    lon: float
    lat: float
    distance_m: float
    first_reported_at: datetime
    last_reported_at: datetime
    age_days: int = Field(description="whole days since the first report")
    report_count: int
    supporters: int = Field(description='citizens who said "me too"')


class Nearby(BaseModel):
    """Open incidents within a radius, nearest first: one page of them, and how many
    there are in all."""

    lon: float
    lat: float
    radius_m: float
    total: int = Field(description="open incidents within the radius, all pages together")
    offset: int = Field(description="incidents before this page")
    limit: int = Field(description="most incidents a page holds")
    incidents: list[NearbyIncident]


class SupportIn(BaseModel):
    """A "me too"; an email (optional) also subscribes its owner to the incident's updates."""

    # The address rule is the service's (400 naming the field), declared here.
    email: Annotated[StoredText, Field(max_length=citizens.MAX_EMAIL_LENGTH)] | None = Field(
        default=None,
        description="name@domain; blank or absent: no email",
        json_schema_extra={"pattern": EMAIL_OR_BLANK},
    )
    lang: Literal["fr", "en"] | None = Field(
        default=None, description="language of the emails to this address (city's default)"
    )


class SupportOut(BaseModel):
    """The incident's supporters after the "me too"."""

    incident_id: int
    supporters: int
    counted: bool = Field(
        description="false when this email, or this device today, had already supported it"
    )
    following: bool


class FollowIn(BaseModel):
    """The email to (un)subscribe."""

    email: StoredText = Field(
        max_length=citizens.MAX_EMAIL_LENGTH,
        description="name@domain",
        json_schema_extra={"pattern": EMAIL},  # the service's rule (400 naming the field)
    )
    lang: Literal["fr", "en"] | None = Field(
        default=None, description="language of the emails to this address (city's default)"
    )


class FollowOut(BaseModel):
    """Whether the email follows the incident now, and whether this call changed it."""

    incident_id: int
    following: bool
    changed: bool


class StreetOut(BaseModel):
    """A street of the city and a point on it (WGS84): the house number's when the
    query gives one that can be located, else the street's."""

    street_name: str
    lon: float
    lat: float
    exact: bool = Field(description="the query names the whole street (typos forgiven)")
    house_number: int | None = Field(default=None, description="the number the query gives")
    precision: Literal["address", "interpolated", "street"] = Field(
        description="address: the number's known position; interpolated: between its "
        "known neighbours; street: a point of the street"
    )


class Geocoded(BaseModel):
    """Streets the query names, best first."""

    query: str
    matches: list[StreetOut]


@router.get("/nearby", summary="Open incidents near a point", response_model=Nearby)
def nearby(
    pipeline: PipelineDep,
    # Bounds declared here and checked below with ``within`` (400 naming the field).
    lat: Annotated[float, Query(description="WGS84 latitude", json_schema_extra=LATITUDE)],
    lon: Annotated[float, Query(description="WGS84 longitude", json_schema_extra=LONGITUDE)],
    radius_m: Annotated[
        float,
        Query(
            description=f"metres, at most {citizens.MAX_RADIUS_M:g}",
            json_schema_extra={"exclusiveMinimum": 0, "maximum": citizens.MAX_RADIUS_M},
        ),
    ] = 500,
    offset: Annotated[
        int, Query(ge=0, le=MAX_OFFSET, description="skip this many (the next page)")
    ] = 0,
    limit: Annotated[
        int, Query(ge=1, le=citizens.MAX_NEARBY, description="most incidents on the page")
    ] = citizens.MAX_NEARBY,
) -> Response:
    """Open incidents within ``radius_m`` of the point, nearest first, with their age; a
    page of them (``offset``, ``limit``) and their ``total``.

    The lean read path (issue 19): the store's rows straight to JSON, no DataFrame and no
    model per incident (the query's bounds above are checked with ``within``)."""
    within(lat, "lat", LATITUDE)
    within(lon, "lon", LONGITUDE)
    within(radius_m, "radius_m", {"exclusiveMinimum": 0, "maximum": citizens.MAX_RADIUS_M})
    selection = Selection(statuses=_OPEN, limit=limit, offset=offset)
    found, total = pipeline.reads.nearby_records(lon, lat, radius_m, selection, datetime.now(UTC))
    body = {
        "lon": lon,
        "lat": lat,
        "radius_m": radius_m,
        "total": total,
        "offset": offset,
        "limit": limit,
        "incidents": found,
    }
    return Response(orjson.dumps(body, option=orjson.OPT_UTC_Z), media_type="application/json")


@router.post(
    "/incidents/{incident_id}/supporters",
    status_code=status.HTTP_201_CREATED,
    summary='"Me too" on an open incident',
    dependencies=[SupportLimit],
)
def support(
    pipeline: PipelineDep,
    incident_id: IncidentId,
    request: Request,
    body: Annotated[SupportIn | None, Body()] = None,
) -> SupportOut:
    """Count one more citizen affected by the incident; never opens a new incident.

    With an email, once per email; without, once per device (address and browser, only
    ever stored hashed with a salt deleted the next day) and day."""
    email = body.email if body is not None else None
    language = body.lang if body is not None else None
    client = citizens.Client(
        address=request.client.host if request.client else "",
        user_agent=request.headers.get("user-agent", ""),
    )
    outcome = citizens.support(pipeline, incident_id, email, client=client, language=language)
    return SupportOut(
        incident_id=outcome.incident_id,
        supporters=outcome.supporters,
        counted=outcome.counted,
        following=outcome.following,
    )


@router.post("/incidents/{incident_id}/followers", summary="Follow an open incident")
def follow(pipeline: PipelineDep, incident_id: IncidentId, body: FollowIn) -> FollowOut:
    """Subscribe an email to the incident's updates (idempotent)."""
    changed = citizens.follow(pipeline, incident_id, body.email, language=body.lang)
    return FollowOut(incident_id=incident_id, following=True, changed=changed)


@router.delete("/incidents/{incident_id}/followers", summary="Stop following an incident")
def unfollow(pipeline: PipelineDep, incident_id: IncidentId, body: FollowIn) -> FollowOut:
    """Unsubscribe an email (idempotent)."""
    changed = citizens.unfollow(pipeline, incident_id, body.email)
    return FollowOut(incident_id=incident_id, following=False, changed=changed)


@router.get("/geocode", summary="Find an address or a street of the city")
def geocode(
    pipeline: PipelineDep,
    q: Annotated[str, Query(min_length=2, max_length=200, description="street or address")],
) -> Geocoded:
    """Places of the city that ``q`` names, best first: suggestions while typing (a word
    begun, one typo per word forgiven), at the house number when it can be located."""
    matches = geocoding.geocode(pipeline, q)
    if not matches:
        raise NotFound(f"q: no street of {pipeline.city.config.name} matches {q!r}", field="q")
    return Geocoded(
        query=q,
        matches=[
            StreetOut(
                street_name=m.street_name,
                lon=m.lon,
                lat=m.lat,
                exact=m.exact,
                house_number=m.house_number,
                precision=m.precision,
            )
            for m in matches
        ],
    )
