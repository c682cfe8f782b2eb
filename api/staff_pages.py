"""The staff pages: the queue (``/staff/``) and the case page (sign-in: ``staff_login``).

Pages are for people signed in with a staff account (``voirie.api.staff_session``); what
each may see is the same authorization as the staff API (roles, team scope). The pages
draw themselves from JSON they fetch here (``/staff/api/...``), with the session cookie;
their writes are in ``voirie.api.staff_actions``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, get_args

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from voirie.api import staff_login, staff_oidc
from voirie.api.deps import IncidentId, PipelineDep
from voirie.api.pages import PAGE_HEADERS, language_urls, outlines
from voirie.api.staff import incident_out, parse_zone
from voirie.api.staff_models import IncidentOut, row_values
from voirie.api.staff_session import (
    StaffPage,
    StaffUser,
    csrf_token,
)
from voirie.errors import InvalidInput
from voirie.maps.staff import staff_context
from voirie.maps.staff_case import (
    ASSIGNMENT_FIELDS,
    DUPLICATE_RADIUS_M,
    EVENT_FIELDS,
    MAX_DUPLICATES,
    REPORT_FIELDS,
    render_case_page,
)
from voirie.maps.staff_queue import render_queue_page
from voirie.model import OPEN_STATUSES, Status
from voirie.services.auth import Action, Principal
from voirie.services.casefile import case_file, marked_not_duplicates, scoped
from voirie.services.moderation import staff_reports
from voirie.services.pipeline import Pipeline
from voirie.store.selection import Selection, SortKey

router = APIRouter(tags=["staff pages"], include_in_schema=False)
router.include_router(staff_login.router)
router.include_router(staff_oidc.router)  # OpenID Connect sign-in (VOIRIE_OIDC_*)

Language = Annotated[Literal["fr", "en"], Query(description="page language")]
OPEN = tuple(sorted(s.value for s in OPEN_STATUSES))
QUEUE_PAGE = 50
Age = Literal["any", "lt1", "lt7", "gt7", "gt30"]
"""Age filters: last reported within 1 or 7 days, or first reported over 7 or 30 days ago."""
Sort = Literal["age", "due", "priority", "reports"]
AGES: tuple[str, ...] = get_args(Age)
SORTS: tuple[str, ...] = get_args(Sort)
MAX_QUEUE_PAGE = 200


def page_context(
    request: Request, principal: Principal, lang: str, active: str
) -> dict[str, object]:
    """The frame's variables for a staff page of this request."""
    return staff_context(
        lang=lang,
        user=principal.name,
        role=principal.role.value,
        csrf_token=csrf_token(request),
        root=request.scope.get("root_path", ""),
        active=active,
        language_urls=language_urls(request),
    )


def _visible_teams(pipeline: Pipeline, principal: Principal) -> dict[str, str]:
    visible = principal.visible_teams
    return {
        code: team.name
        for code, team in pipeline.city.teams.items()
        if visible is None or code in visible
    }


@router.get("/staff/", response_class=HTMLResponse)
def queue_page(
    request: Request, pipeline: PipelineDep, principal: StaffPage, lang: Language = "fr"
) -> HTMLResponse:
    """The dispatcher's home: the incidents table beside the map, filters and bulk actions."""
    page = render_queue_page(
        page_context(request, principal, lang, "queue"),
        city=pipeline.city,
        teams=_visible_teams(pipeline, principal),
        zones=_zone_choices(pipeline),
        background=outlines(pipeline),
        api_url=f"{request.scope.get('root_path', '')}/staff/api",
        principal=principal,
        ages=AGES,
        sorts=SORTS,
    )
    return HTMLResponse(page, headers=PAGE_HEADERS)


def _zone_choices(pipeline: Pipeline) -> list[tuple[str, str]]:
    """(``layer:code``, label) of the zones of the city's small layers (a list to pick
    from; a layer of hundreds of zones is left to the URL)."""
    choices: list[tuple[str, str]] = []
    for layer, index in pipeline.gis.zones.items():
        zones = index.zones
        if len(zones) > 100:
            continue
        names = zones["name"] if "name" in zones.columns else zones["code"]
        for code, name in sorted(zip(zones["code"], names, strict=True), key=lambda z: str(z[0])):
            choices.append((f"{layer}:{code}", f"{layer} — {name}"))
    return choices


class Queue(BaseModel):
    """One page of the queue with the counts per status of the same filters."""

    total: int
    limit: int
    offset: int
    counts: dict[str, int]
    incidents: list[IncidentOut]


_SORT_COLUMNS: dict[str, SortKey] = {
    "age": "first_reported_at",
    "due": "due_at",
    "priority": "priority",
    "reports": "report_count",
}


@router.get("/staff/api/queue", response_model=Queue)
def queue(
    pipeline: PipelineDep,
    principal: StaffUser,
    team: Annotated[list[str] | None, Query()] = None,
    status: Annotated[str, Query(description="open, all, or one status")] = "open",
    service: Annotated[list[str] | None, Query()] = None,
    zone: Annotated[str | None, Query(max_length=200)] = None,
    overdue: bool = False,
    age: Age = "any",
    q: Annotated[str | None, Query(max_length=200)] = None,
    sort: Sort = "age",
    order: Literal["asc", "desc"] = "asc",
    limit: Annotated[int, Query(ge=1, le=MAX_QUEUE_PAGE)] = QUEUE_PAGE,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Queue:
    """The queue's incidents (those the principal may see), filtered, sorted and paged.

    The database sorts and pages (``Selection.sort``: one page read, through the sort's
    index) and counts per status in one grouped read; the total is the sum of the
    counts of the statuses shown."""
    now = datetime.now(UTC)
    statuses = _statuses(status)
    start, end = _age_window(age, now)
    base = scoped(
        principal,
        Selection(
            teams=tuple(team) if team else None,
            service_codes=tuple(service) if service else None,
            zone=parse_zone(zone, list(pipeline.gis.zones)) if zone else None,
            overdue_at=now if overdue else None,
            text=q.strip() if q and q.strip() else None,
            start=start,
            end=end,
        ),
    )
    found = pipeline.reads.status_counts("incidents", base, public=False)
    counts = {s.value: found.get(s.value, 0) for s in Status}
    page = replace(
        base,
        statuses=statuses,
        sort=_SORT_COLUMNS[sort],
        descending=order == "desc",
        limit=limit,
        offset=offset,
    )
    # Plain records (``Reads.records``): no frame to build and no Series per row.
    rows = pipeline.reads.records("incidents", page, public=False)
    return Queue(
        total=sum(n for s, n in found.items() if statuses is None or s in statuses),
        limit=limit,
        offset=offset,
        counts=counts,
        incidents=[incident_out(row, now) for row in rows],
    )


def _statuses(status: str) -> tuple[str, ...] | None:
    if status == "open":
        return OPEN
    if status == "all":
        return None
    try:
        return (Status(status).value,)
    except ValueError:
        raise InvalidInput(
            f"status: {status!r} is not open, all or one of {', '.join(Status)}", field="status"
        ) from None


def _age_window(age: str, now: datetime) -> tuple[datetime | None, datetime | None]:
    """(start, end) of the incidents' report times for an age filter: ``lt1``, ``lt7``
    (last reported within 1 or 7 days), ``gt7``, ``gt30`` (first reported before)."""
    if age.startswith("lt"):
        return now - timedelta(days=int(age[2:])), None
    if age.startswith("gt"):
        return None, now - timedelta(days=int(age[2:]))
    return None, None


@router.get("/staff/incidents/{incident_id}", response_class=HTMLResponse)
def case_page(
    request: Request,
    pipeline: PipelineDep,
    principal: StaffPage,
    incident_id: IncidentId,
    lang: Language = "fr",
) -> HTMLResponse:
    """Everything about one incident, and what the principal may do to it."""
    found = case_file(pipeline, principal, incident_id)
    incident = incident_out(found.incident, datetime.now(UTC))
    team = incident.team
    page = render_case_page(
        page_context(request, principal, lang, ""),
        city=pipeline.city,
        incident=incident.model_dump(mode="json"),
        reports=staff_reports(pipeline, _rows(found.reports, REPORT_FIELDS)),
        assignments=_rows(found.assignments, ASSIGNMENT_FIELDS),
        history=_rows(found.history, EVENT_FIELDS),
        duplicates=_duplicates(pipeline, principal, incident),
        may={
            "status": principal.may(Action.STATUS, team),
            "comment": principal.may(Action.COMMENT, team),
            "assign": principal.may(Action.ASSIGN, team),
            "hand_back": principal.may(Action.HAND_BACK, team),
            "merge": principal.may(Action.MERGE, team),
        },
        api_url=f"{request.scope.get('root_path', '')}/staff/api",
        background=outlines(pipeline),
    )
    return HTMLResponse(page, headers=PAGE_HEADERS)


def _rows(frame: pd.DataFrame, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows of a frame as JSON-able dicts of these columns (instants as ISO text)."""
    return [
        {
            k: v.isoformat() if isinstance(v, datetime) else v
            for k, v in row_values(r, names).items()
        }
        for _, r in frame.iterrows()
    ]


def _duplicates(
    pipeline: Pipeline, principal: Principal, incident: IncidentOut
) -> list[dict[str, Any]]:
    """Open incidents near this one that the principal may see, nearest first; one marked
    "not a duplicate" of it says so instead of a score (staff have decided)."""
    others = Selection(statuses=OPEN, limit=MAX_DUPLICATES + 1)
    near = pipeline.reads.nearby(
        incident.lon, incident.lat, DUPLICATE_RADIUS_M, scoped(principal, others)
    )
    near = near[near["incident_id"] != incident.incident_id].head(MAX_DUPLICATES)
    fields = ("incident_id", "service_name", "street_name", "status", "report_count", "team")
    # How likely each is the same problem (DedupePolicy.near_scores; None: never joined).
    x, y = pipeline.gis.project(
        np.r_[incident.lon, near["lon"].to_numpy(float)],
        np.r_[incident.lat, near["lat"].to_numpy(float)],
    )
    score, likely = pipeline.policy.near_scores(incident.model_dump(), near, x, y)
    marked = marked_not_duplicates(pipeline, incident.incident_id)
    return [
        row_values(row, fields)
        | {"distance_m": round(float(row["distance_m"]))}
        | (
            {"not_duplicate": True, "score": None, "likelihood": None}
            if int(row["incident_id"]) in marked
            else {"not_duplicate": False, "score": _rounded(s), "likelihood": _rounded(p)}
        )
        for (_, row), s, p in zip(near.iterrows(), score.tolist(), likely.tolist(), strict=True)
    ]


def _rounded(value: float) -> float | None:
    """A score or likelihood to two decimals, None where there is none (NaN)."""
    return None if value != value else round(value, 2)
