"""The FixMyStreet ``servicerequestupdates`` extension: a back office pushes status changes.

https://wiki.open311.org/GeoReport_v2/Servicerequestupdates. POST changes the status of the
incident a request (report) belongs to through the staff workflow (``voirie.services.workflow``:
allowed transitions, team scope, an event in the same transaction); the key must be a
staff token (admin, dispatcher, or an agent of the incident's team). GET lists the status
changes in a time window, one update per report of the incident that changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import pandas as pd
from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from voirie.api.deps import PipelineDep
from voirie.api.open311 import wire
from voirie.api.open311.deps import JurisdictionDep, SettingsDep, check_jurisdiction, client
from voirie.api.open311.errors import too_many_requests
from voirie.api.open311.render import Format, render, responses
from voirie.api.open311.requests import local_time, window
from voirie.api.open311.submit import MAX_DESCRIPTION, TEXT_FIELD, Form, read_form
from voirie.api.ratelimit import charge_key
from voirie.api.validation import IsoDateTime
from voirie.errors import InvalidInput, NotFound
from voirie.model import EventKind, Status
from voirie.services.auth import Role
from voirie.services.pipeline import Pipeline
from voirie.services.workflow import StatusChange, change_status
from voirie.store.selection import Selection

router = APIRouter(prefix="/open311/v2", tags=["open311"])

# FixMyStreet's update statuses, as the voirie status each one means; voirie's own status
# names are accepted as they are.
FIXMYSTREET_STATUSES: dict[str, Status] = {
    "OPEN": Status.ACKNOWLEDGED,
    "INVESTIGATING": Status.ACKNOWLEDGED,
    "ACTION_SCHEDULED": Status.SCHEDULED,
    "IN_PROGRESS": Status.IN_PROGRESS,
    "FIXED": Status.RESOLVED,
    "CLOSED": Status.CLOSED,
    "NO_FURTHER_ACTION": Status.REJECTED,
    "NOT_COUNCILS_RESPONSIBILITY": Status.REJECTED,
}
STAFF = frozenset({Role.ADMIN, Role.DISPATCHER, Role.AGENT})
_UPDATE_FIELDS = ("api_key", "service_request_id", "status", "description", "media_url")


def _status(raw: str | None) -> Status:
    if raw is None:
        raise InvalidInput("status: required", field="status")
    if raw.upper() in FIXMYSTREET_STATUSES:
        return FIXMYSTREET_STATUSES[raw.upper()]
    try:
        return Status(raw.lower())
    except ValueError:
        known = sorted({*FIXMYSTREET_STATUSES, *(s.value for s in Status)})
        raise InvalidInput(
            f"status: unknown status {raw[:40]!r}; one of {', '.join(known)}", field="status"
        ) from None


def push(pipeline: Pipeline, form: Form) -> str:
    """Apply one update; return its update_id (the event id)."""
    check_jurisdiction(pipeline, form.get("jurisdiction_id"))
    principal = client(pipeline, form.get("api_key"), STAFF)
    raw_id = form.get("service_request_id") or ""
    reports = (
        pipeline.reads.reports(Selection(ids=(int(raw_id),)))
        if raw_id.isascii() and raw_id.isdigit() and len(raw_id) < 19
        else pd.DataFrame()
    )
    if not len(reports):
        raise NotFound(
            f"service_request_id: no request {raw_id[:40]!r}", field="service_request_id"
        )
    status = _status(form.get("status"))
    incident_id = int(reports["incident_id"].iloc[0])
    event_id = change_status(
        pipeline.store, pipeline.city, incident_id, principal, status, form.get("description") or ""
    )
    return str(event_id)


@router.post(
    "/servicerequestupdates.{fmt}",
    summary="POST Service Request Update (FixMyStreet extension)",
    dependencies=[JurisdictionDep],
    response_class=Response,
    responses=responses(list[wire.UpdateCreated], 403, 409),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media: {
                    "schema": {
                        "type": "object",
                        "required": ["api_key", "service_request_id", "status"],
                        "properties": {
                            **dict.fromkeys(_UPDATE_FIELDS, TEXT_FIELD),
                            "description": {**TEXT_FIELD, "maxLength": MAX_DESCRIPTION},
                        },
                    }
                }
                for media in ("application/x-www-form-urlencoded", "application/json")
            },
        }
    },
)
async def post_update(fmt: Format, request: Request, pipeline: PipelineDep) -> Response:
    """Change the status of the incident a request belongs to (back-office push)."""
    form = await read_form(request)
    if (refusal := await charge_key(request, form.get("api_key"))) is not None:
        return too_many_requests(fmt, refusal)
    update_id = await run_in_threadpool(push, pipeline, form)
    return render(
        fmt,
        [wire.UpdateCreated(update_id=update_id)],
        root="service_request_updates",
        item="request_update",
    )


def status_updates(
    pipeline: Pipeline, start: datetime, end: datetime
) -> list[wire.ServiceRequestUpdate]:
    """Status changes between ``start`` and ``end``, one per report of the incident."""
    city = pipeline.city
    events = pipeline.reads.events_between(EventKind.STATUS_CHANGED.value, start, end)
    events = events[events["entity"] == "incident"]
    if not len(events):
        return []
    ids = tuple(int(i) for i in events["entity_id"].unique())
    reports = pipeline.reads.reports(Selection(incident_ids=ids))
    by_incident = reports.groupby("incident_id")["report_id"].apply(list).to_dict()
    tz = ZoneInfo(city.config.timezone)
    updates = []
    for event in events.to_dict("records"):
        change = StatusChange.parse(str(event["reason"]))
        if change is None:
            continue
        status = change.status
        moment = local_time(event["at"], tz)
        assert moment is not None  # an event always has its time
        updates += [
            wire.ServiceRequestUpdate(
                update_id=str(int(event["id"])),
                service_request_id=str(int(report_id)),
                status=status.open311,
                detailed_status=status.value,
                updated_datetime=moment,
                description=change.note,
                media_url=None,
            )
            for report_id in by_incident.get(int(event["entity_id"]), [])
        ]
    return updates


@router.get(
    "/servicerequestupdates.{fmt}",
    summary="GET Service Request Updates (FixMyStreet extension)",
    response_class=Response,
    responses=responses(list[wire.ServiceRequestUpdate]),
    dependencies=[JurisdictionDep],
)
def get_updates(
    fmt: Format,
    pipeline: PipelineDep,
    settings: SettingsDep,
    start_date: Annotated[IsoDateTime | None, Query(description="updated at or after")] = None,
    end_date: Annotated[IsoDateTime | None, Query(description="updated at or before")] = None,
) -> Response:
    """Status changes in a window of at most 90 days (the most recent by default)."""
    tz = ZoneInfo(pipeline.city.config.timezone)
    start, end = window(start_date, end_date, tz, settings)
    return render(
        fmt,
        status_updates(pipeline, start, end),
        root="service_request_updates",
        item="request_update",
    )
