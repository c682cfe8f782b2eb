"""HTML pages: the dispatch map for technical services and the citizens' nearby page."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlencode

import geopandas as gpd
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from voirie.api.deps import PipelineDep
from voirie.errors import InvalidInput
from voirie.maps.dispatch import LANGUAGES, render_dispatch_map
from voirie.maps.nearby import render_nearby_page
from voirie.model import OPEN_STATUSES
from voirie.services.citizens import MAX_RADIUS_M
from voirie.services.pipeline import Pipeline
from voirie.services.recent import days_with_data_start
from voirie.store.selection import Selection

router = APIRouter(tags=["maps"])

Language = Annotated[Literal["fr", "en"], Query(description="page language")]
_OPEN = tuple(sorted(status.value for status in OPEN_STATUSES))
# Outlines are for orientation, not measurement: a few metres of simplification keep the
# page light.
_OUTLINE_TOLERANCE_M = 5
# Defence in depth behind the escaping: the pages run only the app's own scripts and
# talk only to the app. Inline styles stay allowed (Leaflet positions everything with them).
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'self'"
    ),
    "Referrer-Policy": "same-origin",
}


@router.get("/maps/dispatch", response_class=HTMLResponse, summary="Dispatch map")
def dispatch_map(
    request: Request,
    pipeline: PipelineDep,
    team: Annotated[str | None, Query(description="one team's own view")] = None,
    days: Annotated[
        int, Query(ge=1, le=3650, description="incidents reported in the last N days of data")
    ] = 30,
    lang: Language = "fr",
) -> HTMLResponse:
    """Open incidents, clustered and filterable, for the people who dispatch the work."""
    teams = {code: t.name for code, t in pipeline.city.teams.items()}
    if team is not None and team not in teams:
        raise InvalidInput(
            f"team: unknown team {team!r} in {pipeline.city.config.name}", field="team"
        )
    incidents = pipeline.reads.incidents(
        Selection(statuses=_OPEN, teams=None if team is None else (team,))
    )
    start = days_with_data_start(incidents["last_reported_at"], days, pipeline.city.config.timezone)
    if start is not None:
        incidents = incidents[incidents["last_reported_at"] >= start]
    root = request.scope.get("root_path", "")
    page = render_dispatch_map(
        incidents,
        teams,
        lang=lang,
        background=outlines(pipeline),
        static_url=f"{root}/static",
        api_url=f"{root}/api/v1",
        title_team=None if team is None else teams[team],
        language_urls=language_urls(request),
    )
    return HTMLResponse(page, headers=PAGE_HEADERS)


@router.get("/maps/nearby", response_class=HTMLResponse, summary="Open issues near me")
def nearby_page(
    request: Request,
    pipeline: PipelineDep,
    lang: Language = "fr",
    lat: Annotated[float | None, Query(description="search here on load (WGS84)")] = None,
    lon: Annotated[float | None, Query(description="search here on load (WGS84)")] = None,
    radius_m: Annotated[float, Query(gt=0, le=MAX_RADIUS_M)] = 500,
) -> HTMLResponse:
    """The citizens' page: open issues around a place, "me too" and follow-ups."""
    if (lat is None) != (lon is None):
        missing = "lat" if lat is None else "lon"
        raise InvalidInput(f"{missing}: give both lat and lon, or neither", field=missing)
    root = request.scope.get("root_path", "")
    page = render_nearby_page(
        city_name=pipeline.city.config.name,
        lang=lang,
        static_url=f"{root}/static",
        api_url=f"{root}/api/v1",
        background=outlines(pipeline),
        language_urls=language_urls(request),
        start=None if lat is None or lon is None else (lon, lat, radius_m),
        report_url=f"{root}/signaler",
    )
    return HTMLResponse(page, headers=PAGE_HEADERS)


def outlines(pipeline: Pipeline) -> gpd.GeoDataFrame:
    """The territory's zones, simplified, as the pages' offline background."""
    territory = pipeline.gis.zones[pipeline.city.config.territory.layer].zones
    return territory.set_geometry(territory.geometry.simplify(_OUTLINE_TOLERANCE_M))


def language_urls(request: Request) -> dict[str, str]:
    """This page in each language (a relative URL keeping the other parameters)."""
    params = dict(request.query_params)
    return {code: "?" + urlencode({**params, "lang": code}) for code in LANGUAGES}
