"""Vector tiles of the incidents: ``/tiles/incidents/{z}/{x}/{y}.mvt`` and their TileJSON.

The store encodes the tile (``ST_AsMVT`` on PostGIS, ``voirie.codecs.mvt`` on sqlite);
public attributes only. Tiles may be cached a minute by browsers and proxies: incidents
change as reports arrive, so a longer lifetime would show stale statuses.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from voirie.api.deps import PipelineDep
from voirie.api.ogc import public_base
from voirie.codecs import mvt
from voirie.maps import attribution
from voirie.maps.ogc import collections

router = APIRouter(prefix="/tiles", tags=["tiles"])

CACHE_CONTROL = "public, max-age=60"


@router.get(
    "/incidents/{z}/{x}/{y}.mvt",
    summary="Incident vector tile",
    response_class=Response,
    responses={
        200: {
            "content": {mvt.MEDIA_TYPE: {}},
            "description": "Mapbox Vector Tile, layer `incidents` (empty when none; "
            "aggregated cells below zoom "
            f"{mvt.CLUSTER_BELOW_ZOOM})",
        },
        400: {"description": "no such tile"},
    },
)
def incident_tile(z: int, x: int, y: int, pipeline: PipelineDep) -> Response:
    """One tile (XYZ scheme, as in web maps) of incidents with their public attributes.

    Below zoom ``mvt.CLUSTER_BELOW_ZOOM`` the features are cells aggregating the
    incidents (``count``, ``open``, ``reports``), as described in the TileJSON.
    """
    mvt.check_tile(z, x, y)
    content = pipeline.reads.incident_tile(z, x, y)
    return Response(content, media_type=mvt.MEDIA_TYPE, headers={"Cache-Control": CACHE_CONTROL})


@router.get("/incidents.json", summary="TileJSON of the incident tiles")
def incident_tilejson(request: Request, pipeline: PipelineDep) -> JSONResponse:
    """Where the incident tiles are and what their features carry (TileJSON 3.0.0)."""
    document: dict[str, Any] = mvt.tilejson(
        f"{public_base(request)}/tiles/incidents/{{z}}/{{x}}/{{y}}.mvt",
        name=f"voirie — {pipeline.city.config.name}: incidents",
        bounds=collections(pipeline)["incidents"].bbox,
        attribution=attribution.text(pipeline.city),
    )
    return JSONResponse(document, headers={"Cache-Control": CACHE_CONTROL})
