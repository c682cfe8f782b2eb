"""The staff API (``/api/v1``): incidents for dispatchers, team agents and GIS officers.

Every route needs a bearer token (``voirie tokens add``) whose role the route allows
(``require``); what a role may do on which team is decided by ``voirie.services.auth`` on the
incident's current team, inside the transaction that changes it. Handlers parse, authorise
and render: every change is a use case of ``voirie.services`` that opens its own transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Depends, Query, status

from voirie.api.auth import require
from voirie.api.deps import IncidentId, PipelineDep, ReportId
from voirie.api.staff_models import (
    MAX_PAGE,
    AssignmentOut,
    CaseFileOut,
    CommentIn,
    ContactOut,
    EventOut,
    IncidentList,
    IncidentOut,
    MergeIn,
    MergeOut,
    NotDuplicateIn,
    NotDuplicateOut,
    Reassignment,
    ReportOut,
    SplitIn,
    StatusChange,
    cell_value,
    row_values,
)
from voirie.api.validation import MAX_OFFSET, InputSettingsDep, check_due_at
from voirie.errors import InvalidInput, NotFound
from voirie.model import EventKind, Status
from voirie.services import merging, workflow
from voirie.services.auth import PERMISSIONS, Action, Principal, Role
from voirie.services.casefile import case_file, scoped
from voirie.services.pipeline import Pipeline
from voirie.store.selection import Selection

router = APIRouter(prefix="/api/v1", tags=["staff"])


def roles_for(action: Action) -> tuple[Role, ...]:
    """The roles that may do ``action`` on at least their own team's incidents."""
    return tuple(PERMISSIONS[action])


Reader = Annotated[Principal, Depends(require(*roles_for(Action.READ)))]
Worker = Annotated[Principal, Depends(require(*roles_for(Action.STATUS)))]
Assigner = Annotated[
    Principal, Depends(require(*roles_for(Action.ASSIGN), *roles_for(Action.HAND_BACK)))
]
Commenter = Annotated[Principal, Depends(require(*roles_for(Action.COMMENT)))]
Merger = Annotated[Principal, Depends(require(*roles_for(Action.MERGE)))]

# The wire fields read straight from a layer's row (the others are computed here).
_INCIDENT_FIELDS = tuple(set(IncidentOut.model_fields) - {"zones", "allowed_statuses", "overdue"})
_REPORT_FIELDS = tuple(set(ReportOut.model_fields) - {"contact"})
_CONTACT_FIELDS = tuple(ContactOut.model_fields)


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """``minlon,minlat,maxlon,maxlat`` in WGS84 degrees."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise InvalidInput(
            f"bbox: expected minlon,minlat,maxlon,maxlat (4 numbers), got {text!r}",
            field="bbox",
        )
    minlon, minlat, maxlon, maxlat = values
    if not (-180 <= minlon <= maxlon <= 180 and -90 <= minlat <= maxlat <= 90):
        raise InvalidInput(
            f"bbox: {text!r} is not a WGS84 box (min before max, lon in ±180, lat in ±90)",
            field="bbox",
        )
    return minlon, minlat, maxlon, maxlat


def parse_zone(text: str, layers: list[str]) -> tuple[str, str]:
    """``layer:code`` with a zone layer of the city."""
    layer, sep, code = text.partition(":")
    if not sep or not code:
        raise InvalidInput(f"zone: expected layer:code, got {text!r}", field="zone")
    if layer not in layers:
        raise InvalidInput(
            f"zone: unknown zone layer {layer!r}; one of {', '.join(layers)}", field="zone"
        )
    return layer, code


def incident_out(record: pd.Series | Mapping[str, object], now: datetime) -> IncidentOut:
    """A row of the incidents layer (a frame's row or ``Reads.records``'s) as the wire model."""
    data = row_values(record, _INCIDENT_FIELDS)
    current = Status(data["status"])
    due = data["due_at"]
    names = record.index if isinstance(record, pd.Series) else list(record)
    zones = {
        str(name).removeprefix("zone_"): cell_value(record[name])
        for name in names
        if str(name).startswith("zone_")
    }
    return IncidentOut(
        **data,
        zones=zones,
        allowed_statuses=list(workflow.allowed_statuses(current)),
        overdue=current.is_open and due is not None and due < now,
    )


def _incident(pipeline: Pipeline, incident_id: int) -> IncidentOut:
    found = pipeline.reads.incidents(Selection(ids=(incident_id,)))
    if found.empty:
        raise NotFound(f"incident {incident_id} does not exist", field="incident_id")
    return incident_out(found.iloc[0], datetime.now(UTC))


@router.get(
    "/incidents",
    response_model=IncidentList,
    summary="List and filter incidents",
    description="Agents see their teams' incidents only; asking for another team is 403.",
)
def list_incidents(
    pipeline: PipelineDep,
    principal: Reader,
    team: Annotated[list[str] | None, Query(description="team code (repeatable)")] = None,
    status_: Annotated[
        list[Status] | None, Query(alias="status", description="status (repeatable)")
    ] = None,
    service: Annotated[list[str] | None, Query(description="service code (repeatable)")] = None,
    zone: Annotated[str | None, Query(description="layer:code, e.g. arrondissement:75113")] = None,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (WGS84)")] = None,
    overdue: Annotated[bool, Query(description="only open incidents past their due date")] = False,
    q: Annotated[
        str | None, Query(max_length=200, description="text in street, description or address")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> IncidentList:
    """Incidents matching every filter given, by id."""
    now = datetime.now(UTC)
    city = pipeline.city
    for name, given, known in (("team", team, city.teams), ("service", service, city.services)):
        unknown = [v for v in given or () if v not in known]
        if unknown:  # as the API definition says (the city's codes)
            raise InvalidInput(f"{name}: unknown code {unknown[0][:80]!r}", field=name)
    selection = scoped(
        principal,
        Selection(
            teams=tuple(team) if team else None,
            statuses=tuple(s.value for s in status_) if status_ else None,
            service_codes=tuple(service) if service else None,
            zone=parse_zone(zone, list(pipeline.gis.zones)) if zone else None,
            bbox=parse_bbox(bbox) if bbox else None,
            overdue_at=now if overdue else None,
            text=q or None,
            limit=limit,
            offset=offset,
        ),
    )
    frame = pipeline.reads.incidents(selection)
    return IncidentList(
        total=pipeline.reads.count("incidents", selection, public=False),
        limit=limit,
        offset=offset,
        incidents=[incident_out(record, now) for _, record in frame.iterrows()],
    )


@router.get(
    "/incidents/{incident_id}",
    response_model=CaseFileOut,
    summary="An incident with its reports, assignments and history",
)
def get_incident(pipeline: PipelineDep, principal: Reader, incident_id: IncidentId) -> CaseFileOut:
    """The case file; reporters' contact data only for staff of the incident's team."""
    found = case_file(pipeline, principal, incident_id)
    contacts: dict[int, ContactOut] = {}
    if found.contacts is not None:
        for _, contact in found.contacts.iterrows():
            data = row_values(contact, _CONTACT_FIELDS)
            if any(v is not None for v in data.values()):
                contacts[int(contact["report_id"])] = ContactOut(**data)
    return CaseFileOut(
        incident=incident_out(found.incident, datetime.now(UTC)),
        contacts_visible=found.contacts is not None,
        reports=[
            ReportOut(**row_values(r, _REPORT_FIELDS), contact=contacts.get(int(r["report_id"])))
            for _, r in found.reports.iterrows()
        ],
        assignments=[
            AssignmentOut(**row_values(a, tuple(AssignmentOut.model_fields)))
            for _, a in found.assignments.iterrows()
        ],
        history=[
            EventOut(**row_values(e, tuple(EventOut.model_fields)))
            for _, e in found.history.iterrows()
        ],
    )


@router.post(
    "/incidents/{incident_id}/status",
    response_model=IncidentOut,
    summary="Move an incident along the workflow",
)
def change_status(
    pipeline: PipelineDep, principal: Worker, incident_id: IncidentId, body: StatusChange
) -> IncidentOut:
    """A transition the workflow does not allow is 409 with the allowed statuses listed."""
    workflow.change_status(
        pipeline.store, pipeline.city, incident_id, principal, body.status, body.reason
    )
    return _incident(pipeline, incident_id)


@router.post(
    "/incidents/{incident_id}/assignment",
    response_model=IncidentOut,
    summary="Reassign an incident to another team, with a reason",
)
def reassign(
    pipeline: PipelineDep,
    principal: Assigner,
    incident_id: IncidentId,
    body: Reassignment,
    limits: InputSettingsDep,
) -> IncidentOut:
    """Dispatchers assign to any team; agents may only hand their incidents back to triage."""
    workflow.reassign(
        pipeline.store,
        pipeline.city,
        incident_id,
        principal,
        body.team,
        body.reason,
        priority=body.priority,
        due_at=check_due_at(body.due_at, limits),
    )
    return _incident(pipeline, incident_id)


@router.post(
    "/incidents/{incident_id}/comments",
    response_model=EventOut,
    status_code=status.HTTP_201_CREATED,
    summary="Comment on an incident (internal)",
)
def add_comment(
    pipeline: PipelineDep, principal: Commenter, incident_id: IncidentId, body: CommentIn
) -> EventOut:
    """The comment becomes an event of the incident's history (staff only)."""
    stored = workflow.comment(pipeline.store, pipeline.city, incident_id, principal, body.text)
    return EventOut(
        id=stored.event_id,
        entity="incident",
        entity_id=incident_id,
        kind=EventKind.COMMENTED,
        actor=principal.name,
        reason=stored.text,
        at=stored.at,
    )


def _check_teams(
    pipeline: Pipeline, principal: Principal, action: Action, incident_ids: tuple[int, ...]
) -> None:
    """Refuse unless ``principal`` may do ``action`` on every one of these incidents' teams
    (an id that does not exist is left to the operation, which names it)."""
    for team in pipeline.reads.incidents(Selection(ids=incident_ids))["team"]:
        principal.check(action, str(team))


@router.post(
    "/incidents/{incident_id}/merge",
    response_model=MergeOut,
    summary="Merge this incident into another (duplicates)",
)
def merge(
    pipeline: PipelineDep, principal: Merger, incident_id: IncidentId, body: MergeIn
) -> MergeOut:
    """Its reports, supporters and followers move to ``into``; it becomes ``duplicate``."""
    _check_teams(pipeline, principal, Action.MERGE, (incident_id, body.into))
    done = merging.merge(pipeline, body.into, incident_id, principal.name, body.reason)
    return MergeOut(
        survivor_id=done.survivor_id,
        merged_id=done.merged_id,
        reports_moved=done.reports_moved,
        report_count=done.report_count,
        supporters=done.supporters,
    )


@router.post(
    "/reports/{report_id}/split",
    response_model=IncidentOut,
    status_code=status.HTTP_201_CREATED,
    summary="Take a report out of its incident into a new incident",
)
def split(
    pipeline: PipelineDep,
    principal: Merger,
    report_id: ReportId,
    body: SplitIn,
) -> IncidentOut:
    """The new incident is routed like any new one; the two are marked not duplicates."""
    found = pipeline.reads.reports(Selection(ids=(report_id,)))
    _check_teams(pipeline, principal, Action.MERGE, tuple(int(i) for i in found["incident_id"]))
    new_id = merging.split(pipeline, report_id, principal.name, body.reason)
    return _incident(pipeline, new_id)


@router.post(
    "/incidents/{incident_id}/not-duplicate",
    response_model=NotDuplicateOut,
    summary="Mark two incidents as different problems",
)
def not_duplicate(
    pipeline: PipelineDep, principal: Merger, incident_id: IncidentId, body: NotDuplicateIn
) -> NotDuplicateOut:
    """Re-clustering never merges a marked pair; ``marked`` is false when it already was."""
    _check_teams(pipeline, principal, Action.MERGE, (incident_id, body.other))
    marked = merging.not_duplicates(pipeline, incident_id, body.other, principal.name, body.reason)
    return NotDuplicateOut(incident_id=incident_id, other=body.other, marked=marked)
