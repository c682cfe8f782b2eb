"""The round sheet ``/staff/tournee?team=...&date=...`` (feuille de tournée, issue 16
item 5): the page with its print stylesheet, and the same sheet as PDF (``format=pdf``).

For signed-in staff; an agent chooses among and prints their own teams' rounds only
(``voirie.services.workorder``). Without a team the page shows the form.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from voirie.api.deps import PipelineDep
from voirie.api.pages import PAGE_HEADERS, outlines
from voirie.api.staff_pages import page_context
from voirie.api.staff_session import StaffPage
from voirie.maps.staff_tournee import render_tournee_page, sheet_pdf
from voirie.services.workorder import MAX_STOPS, round_sheet

router = APIRouter(tags=["staff pages"], include_in_schema=False)

Language = Annotated[Literal["fr", "en"], Query(description="page language")]


@router.get("/staff/tournee", response_class=HTMLResponse)
def tournee_page(
    request: Request,
    pipeline: PipelineDep,
    principal: StaffPage,
    team: Annotated[str | None, Query(max_length=100, description="the team's code")] = None,
    day: Annotated[date | None, Query(alias="date", description="the day (YYYY-MM-DD)")] = None,
    lang: Language = "fr",
    format: Annotated[Literal["html", "pdf"], Query(description="html or pdf")] = "html",
) -> Response:
    """A team's open incidents for a day, in visiting order, with a map; or the PDF."""
    city = pipeline.city
    now = datetime.now(UTC)
    day = day or now.astimezone(ZoneInfo(city.config.timezone)).date()
    visible = principal.visible_teams
    teams = {code: t.name for code, t in city.teams.items() if visible is None or code in visible}
    sheet = None if team is None else round_sheet(pipeline, principal, team, day, now)
    context = page_context(request, principal, lang, "round")
    page = render_tournee_page(
        context,
        sheet,
        teams=teams,
        team=team,
        day=day.isoformat(),
        zones=outlines(pipeline),
        timezone=city.config.timezone,
        max_stops=MAX_STOPS,
    )
    if format == "pdf" and sheet is not None:
        name = f"tournee-{sheet.team}-{sheet.day.isoformat()}.pdf".replace('"', "")
        return Response(
            sheet_pdf(page, str(context["root"])),
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return HTMLResponse(page, headers=PAGE_HEADERS)
