"""Wire models of the staff API (``/api/v1``), separate from the stored rows.

Built from the pipeline's layers and case files at the edge; reporter contact data only
appears in ``ReportOut.contact``, filled for principals allowed to see it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from voirie.api.validation import StoredText
from voirie.model import Status
from voirie.store.schema import MAX_JSON_ID

MAX_PAGE = 1_000


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class IncidentOut(_Out):
    """An incident as staff see it in lists and case files."""

    incident_id: int
    service_code: str
    service_name: str
    status: Status
    allowed_statuses: list[Status] = Field(description="statuses it may move to next")
    team: str
    priority: int
    due_at: datetime | None
    overdue: bool
    report_count: int
    first_reported_at: datetime
    last_reported_at: datetime
    updated_at: datetime
    lon: float
    lat: float
    segment_id: str | None
    street_name: str | None
    zones: dict[str, str | None] = Field(description="zone code per zone layer")
    rule_id: str | None = Field(description="routing rule of the latest assignment")
    rule_version: int | None
    routing_reason: str | None = Field(description="why the latest assignment was made")


class IncidentList(_Out):
    """One page of incidents and how many match in all."""

    total: int
    limit: int
    offset: int
    incidents: list[IncidentOut]


class ContactOut(_Out):
    """A reporter's private contact data (staff only)."""

    name: str | None
    email: str | None
    phone: str | None
    device_id: str | None


class ReportOut(_Out):
    """One report of an incident."""

    report_id: int
    external_id: str
    source: str
    service_code: str
    description: str | None
    address: str | None
    channel: str | None
    requested_at: datetime
    received_at: datetime
    lon: float
    lat: float
    street_name: str | None
    segment_id: str | None
    snap_distance_m: float | None
    dedupe_score: float | None
    dedupe_reason: str | None
    contact: ContactOut | None = Field(
        description="null when the token may not see contact data, or none was given"
    )


class EventOut(_Out):
    """One entry of the history."""

    id: int
    entity: str
    entity_id: int
    kind: str
    actor: str
    reason: str | None
    at: datetime


class AssignmentOut(_Out):
    """One routing decision or reassignment."""

    team: str
    rule_id: str | None
    rule_version: int | None
    reason: str
    priority: int
    due_at: datetime | None
    assigned_at: datetime
    actor: str


class CaseFileOut(_Out):
    """An incident with its reports, assignments and history."""

    incident: IncidentOut
    contacts_visible: bool = Field(description="whether this token may see contact data")
    reports: list[ReportOut]
    assignments: list[AssignmentOut]
    history: list[EventOut]


class StatusChange(BaseModel):
    """Move an incident along the workflow."""

    status: Status
    reason: StoredText = Field(default="", max_length=5_000, description="why (required to reject)")


class Reassignment(BaseModel):
    """Give an incident to another team."""

    team: StoredText = Field(min_length=1, description="team code from the city's city.yaml")
    reason: StoredText = Field(min_length=1, max_length=5_000)
    priority: int | None = Field(default=None, ge=1, le=5, description="default: unchanged")
    due_at: datetime | None = Field(
        default=None,
        description="default: unchanged; within VOIRIE_DUE_HORIZON_DAYS (5 years) of now",
    )


class CommentIn(BaseModel):
    """A staff note on an incident (internal, never published)."""

    text: StoredText = Field(min_length=1, max_length=5_000)


class MergeIn(BaseModel):
    """Merge this incident into another (it becomes ``duplicate``)."""

    into: int = Field(ge=1, le=MAX_JSON_ID, description="the incident that absorbs this one")
    reason: StoredText = Field(min_length=1, max_length=2_000)


class MergeOut(_Out):
    """What a merge did."""

    survivor_id: int
    merged_id: int
    reports_moved: int
    report_count: int = Field(description="reports of the survivor after the merge")
    supporters: int = Field(description="supporters of the survivor after the merge")


class SplitIn(BaseModel):
    """Take a report out of its incident into a new one."""

    reason: StoredText = Field(min_length=1, max_length=2_000)


class NotDuplicateIn(BaseModel):
    """Two incidents that are different problems: never merge them."""

    other: int = Field(ge=1, le=MAX_JSON_ID, description="the other incident")
    reason: StoredText = Field(min_length=1, max_length=2_000)


class NotDuplicateOut(_Out):
    """Whether the pair was newly marked (false: it already was)."""

    incident_id: int
    other: int
    marked: bool


def cell_value(value: object) -> Any:
    """A DataFrame cell as JSON-able Python: NaN/NaT/NA -> None, numpy scalars -> Python."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    try:
        if pd.isna(value):  # type: ignore[call-overload]
            return None
    except (TypeError, ValueError):
        pass
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def row_values(
    record: pd.Series | Mapping[str, object], names: tuple[str, ...] | list[str]
) -> dict[str, Any]:
    """Selected cells of a row, as JSON-able Python values (``cell_value``)."""
    return {name: cell_value(record.get(name)) for name in names}
