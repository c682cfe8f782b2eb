"""Whole-layer downloads: ``/exports/{reports|incidents}.{geojson|gpkg|csv}``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from voirie.api.deps import PipelineDep
from voirie.maps.export import MEDIA_TYPES, Format, write_layer

router = APIRouter(tags=["exports"])


@router.get(
    "/exports/{layer}.{fmt}",
    summary="Download a whole layer",
    response_class=FileResponse,
    responses={
        200: {
            "content": {media: {} for media in MEDIA_TYPES.values()},
            "description": "The layer in WGS84, public fields only.",
        }
    },
)
def export_layer(
    layer: Literal["reports", "incidents"], fmt: Format, pipeline: PipelineDep
) -> FileResponse:
    """The report or incident layer as GeoJSON, GeoPackage or CSV (public fields only)."""
    frame = pipeline.report_layer() if layer == "reports" else pipeline.incident_layer()
    handle, name = tempfile.mkstemp(suffix=f".{fmt}")
    os.close(handle)
    path = Path(name)
    path.unlink()
    write_layer(frame, path, fmt, layer=layer)
    return FileResponse(
        path,
        media_type=MEDIA_TYPES[fmt],
        filename=f"{layer}.{fmt}",
        background=BackgroundTask(path.unlink, missing_ok=True),
    )
