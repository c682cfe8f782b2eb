"""Downloads: ``/exports/{reports|incidents}.{geojson|gpkg|csv|zip}`` and the QGIS project.

GeoJSON and CSV are streamed chunk by chunk as they are read from the store, so memory does
not grow with the layer. The first chunk is read before the status line is sent, so a
database that is down answers 503, never a 200 with an empty body; a failure after that
aborts the connection (the chunked body never ends), which every client reports as an
error rather than a short file. GeoPackage and zipped Shapefile are appended chunk by chunk to a
temporary file, which is sent then deleted. Public fields only, in any CRS, filtered by
status, service, team, zone, bbox and dates.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from voirie.api.deps import PipelineDep
from voirie.api.ogc import public_base
from voirie.api.openapi_city import CityValues, check_listed, check_zone
from voirie.maps import export
from voirie.maps.export import MEDIA_TYPES, Format
from voirie.maps.qgis import MEDIA_TYPE as QGS_MEDIA_TYPE
from voirie.maps.qgis import QGZ_MEDIA_TYPE, project_qgz, project_xml
from voirie.model import Status

router = APIRouter(tags=["exports"])


@router.get(
    "/exports/voirie.qgs",
    summary="QGIS project of the OGC API layers",
    response_class=Response,
    responses={
        200: {
            "content": {QGS_MEDIA_TYPE: {}},
            "description": "A QGIS project: incidents by status and by team, reports, "
            "streets and zones, read live from this server's OGC API (on VOIRIE_PUBLIC_URL "
            "when set), in the city's metric CRS.",
        }
    },
)
def qgis_project(request: Request, pipeline: PipelineDep) -> Response:
    """One file a GIS officer opens in QGIS to get every layer, styled by status and team."""
    return Response(
        project_xml(pipeline, f"{public_base(request)}/ogc"),
        media_type=QGS_MEDIA_TYPE,
        headers={"Content-Disposition": 'attachment; filename="voirie.qgs"'},
    )


@router.get(
    "/exports/voirie.qgz",
    summary="QGIS project of the OGC API layers, zipped",
    response_class=Response,
    responses={
        200: {
            "content": {QGZ_MEDIA_TYPE: {}},
            "description": "The same project as voirie.qgs, as the .qgz QGIS saves by default.",
        }
    },
)
def qgis_project_zipped(request: Request, pipeline: PipelineDep) -> Response:
    """The QGIS project as a ``.qgz`` archive."""
    return Response(
        project_qgz(project_xml(pipeline, f"{public_base(request)}/ogc")),
        media_type=QGZ_MEDIA_TYPE,
        headers={"Content-Disposition": 'attachment; filename="voirie.qgz"'},
    )


@router.get(
    "/exports/{layer}.{fmt}",
    summary="Download a layer",
    response_class=Response,
    responses={
        200: {
            "content": {media: {} for media in MEDIA_TYPES.values()},
            "description": "The layer (public fields only), streamed; WGS84 unless crs is given.",
        }
    },
)
def export_layer(
    layer: Literal["reports", "incidents"],
    fmt: Format,
    pipeline: PipelineDep,
    status: Annotated[str | None, Query(description="incident statuses, comma-separated")] = None,
    service: Annotated[str | None, Query(description="service codes, comma-separated")] = None,
    team: Annotated[str | None, Query(description="team codes, comma-separated")] = None,
    zone: Annotated[str | None, Query(description="layer:code, e.g. arrondissement:75111")] = None,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (WGS84)")] = None,
    start: Annotated[
        str | None,
        Query(
            description="ISO 8601 date or date-time (UTC if no offset): reports requested, "
            "incidents active, since"
        ),
    ] = None,
    end: Annotated[str | None, Query(description="ISO 8601 date or date-time: until")] = None,
    crs: Annotated[
        str | None, Query(description="output CRS, one of those listed (the OGC API's)")
    ] = None,
) -> Response:
    """The report or incident layer as GeoJSON, CSV, GeoPackage or zipped Shapefile."""
    selection = export.download_selection(
        status=status, service=service, team=team, zone=zone, bbox=bbox, start=start, end=end
    )
    # The city's values, as the OpenAPI document lists them: a typo is a 400 naming the
    # field, not a silently empty file.
    city = CityValues.of(pipeline.city)
    check_listed(selection.statuses, (s.value for s in Status), "status")
    check_listed(selection.service_codes, city.services, "service")
    check_listed(selection.teams, city.teams, "team")
    check_zone(selection.zone, city.zone_layers)
    if crs is not None:
        check_listed([crs], city.export_crs, "crs")
    filename = f"{layer}.{fmt}"
    disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
    chunks = export.layer_chunks(pipeline, layer, selection)
    if fmt in ("geojson", "csv"):
        # Read before answering: an error here is still a proper 503 (or 4xx).
        chunks = itertools.chain([next(chunks)], chunks)
        stream = (
            export.geojson_chunks(chunks, export.ID_COLUMNS[layer], crs)
            if fmt == "geojson"
            else export.csv_chunks(chunks, crs)
        )
        return StreamingResponse(stream, media_type=MEDIA_TYPES[fmt], headers=disposition)
    handle, name = tempfile.mkstemp(prefix="voirie-export-", suffix=f".{fmt}")
    os.close(handle)
    path = Path(name)
    path.unlink()
    try:
        export.write_layer(
            chunks, path, fmt, id_column=export.ID_COLUMNS[layer], crs=crs, layer=layer
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return FileResponse(
        path,
        media_type=MEDIA_TYPES[fmt],
        filename=filename,
        background=BackgroundTask(path.unlink, missing_ok=True),
    )
