"""Dependency aliases shared by the routers.

Dependencies that only read the app's state are ``async``: FastAPI runs a sync dependency
in its thread pool, one thread hop per request for nothing (issue 19's profile of the
OGC item route found four of them per request).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from voirie.services.pipeline import Pipeline
from voirie.store.schema import MAX_ID


async def _pipeline(request: Request) -> Pipeline:
    pipeline: Pipeline = request.app.state.pipeline
    return pipeline


PipelineDep = Annotated[Pipeline, Depends(_pipeline)]

# Ids are signed 64-bit integers in both backends: a larger one names nothing and is
# refused at the edge, never sent to the database.
IncidentId = Annotated[int, Path(ge=1, le=MAX_ID, description="the incident's id")]
ReportId = Annotated[int, Path(ge=1, le=MAX_ID, description="the report's id")]
