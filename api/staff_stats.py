"""The statistics dashboard ``/staff/stats`` and its CSV downloads (issue 16 item 6).

For signed-in staff (``voirie.api.staff_session``): an agent sees the figures of their own
teams, the other reading roles every team's (``voirie.services.stats``). Each table
downloads as CSV made for a spreadsheet of the page's language (``voirie.codecs.spreadsheet``:
a byte-order mark; in French ``;`` between fields and decimal commas, as a French Excel
opens with a double click), through the neutralising writer (``voirie.codecs.csvsafe``): a
team or zone name a spreadsheet would take for a formula stays text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from voirie.api.deps import PipelineDep
from voirie.api.pages import PAGE_HEADERS
from voirie.api.staff_pages import page_context
from voirie.api.staff_session import StaffPage
from voirie.codecs.spreadsheet import spreadsheet_csv
from voirie.maps.staff_stats import STATS_LABELS, render_stats_page
from voirie.services.stats import DEFAULT_WEEKS, MAX_WEEKS, MEASURES, Dimension, dashboard

router = APIRouter(tags=["staff pages"], include_in_schema=False)

Language = Annotated[Literal["fr", "en"], Query(description="page language")]
Weeks = Annotated[int, Query(ge=1, le=MAX_WEEKS, description="the period: the last N weeks")]
WEEK_CHOICES = (4, 12, 26, 52)


@router.get("/staff/stats", response_class=HTMLResponse)
def stats_page(
    request: Request,
    pipeline: PipelineDep,
    principal: StaffPage,
    weeks: Weeks = DEFAULT_WEEKS,
    lang: Language = "fr",
) -> HTMLResponse:
    """Backlog, delays and SLA compliance by team, zone, service and week, with charts."""
    figures = dashboard(pipeline, principal, datetime.now(UTC), weeks)
    visible = principal.visible_teams
    page = render_stats_page(
        page_context(request, principal, lang, "stats"),
        figures,
        timezone=pipeline.city.config.timezone,
        scope=None if visible is None else sorted(visible),
        week_choices=tuple(sorted({*WEEK_CHOICES, weeks})),
    )
    return HTMLResponse(page, headers=PAGE_HEADERS)


@router.get("/staff/stats/{dimension}.csv")
def stats_csv(
    dimension: Dimension,
    pipeline: PipelineDep,
    principal: StaffPage,
    weeks: Weeks = DEFAULT_WEEKS,
    lang: Language = "fr",
) -> Response:
    """One table of the dashboard as CSV for a spreadsheet of the page's language (the
    byte-order mark, its separators: ``voirie.codecs.spreadsheet``), headed in it."""
    figures = dashboard(pipeline, principal, datetime.now(UTC), weeks)
    labels = STATS_LABELS[lang]
    table = figures.tables[dimension][["key", "label", *MEASURES]]
    text = spreadsheet_csv(table.rename(columns=labels), lang)
    name = f"voirie-stats-{dimension}-{figures.now:%Y%m%d}.csv"
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
