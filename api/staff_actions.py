"""What the staff pages change, for signed-in staff: the case page's actions and the
queue's bulk actions (``/staff/api/...``, JSON, with the session's anti-forgery token).

A single-incident action is the staff API's own handler (``voirie.api.staff``) called with
the signed-in principal: the same checks, the same answer. Authorization is the services'
(roles and team scope, ``Principal.check``); these routes only authenticate and check CSRF.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from voirie.api import staff
from voirie.api.deps import IncidentId, PipelineDep
from voirie.api.staff_models import (
    CommentIn,
    EventOut,
    IncidentOut,
    MergeIn,
    MergeOut,
    NotDuplicateIn,
    NotDuplicateOut,
    Reassignment,
    StatusChange,
)
from voirie.api.staff_session import CsrfChecked, StaffUser
from voirie.api.validation import InputSettingsDep, StoredText
from voirie.errors import InvalidInput
from voirie.model import Status
from voirie.services.bulk import MAX_BULK, bulk_merge, bulk_reassign, bulk_status
from voirie.services.staff_edits import move, recategorize
from voirie.store.schema import MAX_JSON_ID
from voirie.store.selection import Selection

router = APIRouter(
    prefix="/staff/api", tags=["staff pages"], include_in_schema=False, dependencies=[CsrfChecked]
)


@router.post("/incidents/{incident_id}/status", response_model=IncidentOut)
def change_status(
    pipeline: PipelineDep, principal: StaffUser, incident_id: IncidentId, body: StatusChange
) -> IncidentOut:
    """Move an incident along the workflow (the reason is the public status note)."""
    return staff.change_status(pipeline, principal, incident_id, body)


@router.post("/incidents/{incident_id}/assignment", response_model=IncidentOut)
def reassign(
    pipeline: PipelineDep,
    principal: StaffUser,
    incident_id: IncidentId,
    body: Reassignment,
    limits: InputSettingsDep,
) -> IncidentOut:
    """Give an incident to another team, with a reason."""
    return staff.reassign(pipeline, principal, incident_id, body, limits)


@router.post(
    "/incidents/{incident_id}/comments",
    response_model=EventOut,
    status_code=status.HTTP_201_CREATED,
)
def add_comment(
    pipeline: PipelineDep, principal: StaffUser, incident_id: IncidentId, body: CommentIn
) -> EventOut:
    """An internal comment in the incident's history."""
    return staff.add_comment(pipeline, principal, incident_id, body)


@router.post("/incidents/{incident_id}/merge", response_model=MergeOut)
def merge(
    pipeline: PipelineDep, principal: StaffUser, incident_id: IncidentId, body: MergeIn
) -> MergeOut:
    """Merge this incident into another (a duplicate)."""
    return staff.merge(pipeline, principal, incident_id, body)


@router.post("/incidents/{incident_id}/not-duplicate", response_model=NotDuplicateOut)
def not_duplicate(
    pipeline: PipelineDep, principal: StaffUser, incident_id: IncidentId, body: NotDuplicateIn
) -> NotDuplicateOut:
    """Mark two incidents as different problems."""
    return staff.not_duplicate(pipeline, principal, incident_id, body)


class CategoryIn(BaseModel):
    """Another category for an incident, and why."""

    service_code: StoredText = Field(min_length=1, description="a service code of the city")
    reason: StoredText = Field(min_length=1, max_length=5_000)


@router.post("/incidents/{incident_id}/category", response_model=IncidentOut)
def change_category(
    pipeline: PipelineDep, principal: StaffUser, incident_id: IncidentId, body: CategoryIn
) -> IncidentOut:
    """Change the category and route the incident again (the rule's words in its history)."""
    recategorize(pipeline, principal, incident_id, body.service_code, body.reason)
    found = pipeline.reads.incidents(Selection(ids=(incident_id,)))
    return staff.incident_out(found.iloc[0], datetime.now(UTC))


class PlaceIn(BaseModel):
    """Where the incident really is (WGS84), and why the pin moves."""

    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    reason: StoredText = Field(min_length=1, max_length=5_000)


@router.post("/incidents/{incident_id}/location", response_model=IncidentOut)
def move_pin(
    pipeline: PipelineDep, principal: StaffUser, incident_id: IncidentId, body: PlaceIn
) -> IncidentOut:
    """Move the incident's pin (snapped to its street again, then routed again from there)."""
    move(pipeline, principal, incident_id, body.lon, body.lat, body.reason)
    found = pipeline.reads.incidents(Selection(ids=(incident_id,)))
    return staff.incident_out(found.iloc[0], datetime.now(UTC))


class BulkIn(BaseModel):
    """One action over a selection of the queue."""

    action: Literal["status", "assign", "merge"]
    ids: list[Annotated[int, Field(ge=1, le=MAX_JSON_ID)]] = Field(
        min_length=1,
        max_length=MAX_BULK,
        description="the selected incidents; a merge keeps the first",
    )
    status: Status | None = Field(default=None, description="the new status (action status)")
    team: StoredText | None = Field(default=None, description="the new team (action assign)")
    reason: StoredText = Field(default="", max_length=5_000)


class BulkOut(BaseModel):
    """The incidents the action changed (for a merge: those merged into the first)."""

    action: str
    changed: list[int]


@router.post("/bulk", response_model=BulkOut)
def bulk(pipeline: PipelineDep, principal: StaffUser, body: BulkIn) -> BulkOut:
    """Change every selected incident in one transaction, or none."""
    if body.action == "status":
        if body.status is None:
            raise InvalidInput("status: a status change needs the new status", field="status")
        changed = bulk_status(pipeline, principal, body.ids, body.status, body.reason)
    elif body.action == "assign":
        if not body.team:
            raise InvalidInput("team: a reassignment needs the team", field="team")
        changed = bulk_reassign(pipeline, principal, body.ids, body.team, body.reason)
    else:
        changed = bulk_merge(pipeline, principal, body.ids, body.reason)
    return BulkOut(action=body.action, changed=list(changed))
