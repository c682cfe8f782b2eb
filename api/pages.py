"""HTML pages: the dispatch map for technical services."""

from __future__ import annotations

from typing import Annotated, Literal

import pandas as pd
from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from voirie.api.deps import PipelineDep
from voirie.maps.dispatch import render_dispatch_map
from voirie.model import OPEN_STATUSES

router = APIRouter(tags=["maps"])


@router.get("/maps/dispatch", response_class=HTMLResponse, summary="Dispatch map")
def dispatch_map(
    pipeline: PipelineDep,
    team: Annotated[str | None, Query(description="show one team's incidents only")] = None,
    days: Annotated[
        int, Query(ge=1, le=3650, description="incidents reported in the last N days of data")
    ] = 30,
    lang: Annotated[Literal["fr", "en"], Query()] = "fr",
) -> HTMLResponse:
    """Open incidents coloured by team, for the people who dispatch the work."""
    incidents = pipeline.incident_layer()
    keep = incidents["status"].isin([s.value for s in OPEN_STATUSES])
    if len(incidents):
        newest = incidents["last_reported_at"].max()
        keep &= incidents["last_reported_at"] >= newest - pd.Timedelta(days=days)
    if team is not None:
        keep &= incidents["team"] == team
    teams = {code: t.name for code, t in pipeline.city.teams.items()}
    territory = pipeline.gis.zones[pipeline.city.config.territory.layer].zones
    # Simplified to a few metres: outlines for orientation, not for measurement.
    outlines = territory.set_geometry(territory.geometry.simplify(5))
    return HTMLResponse(
        render_dispatch_map(incidents[keep], teams, lang=lang, background=outlines)
    )
