"""OGC API Tiles at ``/ogc``: the tile matrix sets and the incidents' vector tilesets.

The WebMercatorQuad tiles are the ones ``/tiles/incidents/{z}/{x}/{y}.mvt`` serves (that
path stays: it is public contract), addressed the OGC way,
``{tileMatrix}/{tileRow}/{tileCol}``; the WorldCRS84Quad tiles are cut from the same
incidents (``ogc_tiles.crs84_tile``). The documents are built in ``voirie.maps.ogc_tiles``;
GDAL's ``OGCAPI:`` driver and web maps (through the TileJSON) read them.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from voirie.api.deps import PipelineDep
from voirie.api.ogc import public_base
from voirie.api.tiles import CACHE_CONTROL
from voirie.codecs import mvt
from voirie.errors import NotFound
from voirie.maps import attribution, ogc_tiles
from voirie.maps.ogc import collections
from voirie.services.pipeline import Pipeline

router = APIRouter(prefix="/ogc", tags=["OGC API Tiles"])

TILED = "incidents"
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such collection or tile matrix set"}
}


def _json(body: dict[str, Any] | dict[str, object], media: str = ogc_tiles.JSON) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False),
        media_type=media,
        headers={"Cache-Control": CACHE_CONTROL},
    )


def _base(request: Request) -> str:
    return f"{public_base(request)}/ogc"


def _tiled(collection_id: str) -> str:
    """The collection's URL path part, or ``NotFound`` for a collection without tiles."""
    if collection_id != TILED:
        raise NotFound(
            f"collectionId: {collection_id!r} has no tiles; {TILED} has", field="collectionId"
        )
    return collection_id


def _title(pipeline: Pipeline) -> str:
    return f"voirie — {pipeline.city.config.name}: incidents"


@router.get("/tileMatrixSets", summary="Tile matrix sets", response_class=Response)
def tile_matrix_sets(request: Request) -> Response:
    """The tile matrix sets the tiles are cut in (WebMercatorQuad, WorldCRS84Quad)."""
    return _json(ogc_tiles.matrix_sets(_base(request)))


@router.get(
    "/tileMatrixSets/{tileMatrixSetId}",
    summary="One tile matrix set",
    response_class=Response,
    responses=_NOT_FOUND,
)
def tile_matrix_set(tileMatrixSetId: str, request: Request) -> Response:  # noqa: N803
    """A tile matrix set's definition (OGC TileMatrixSet 2.0 JSON)."""
    ogc_tiles.check_tile_matrix_set(tileMatrixSetId)
    return _json(ogc_tiles.matrix_set(_base(request), tileMatrixSetId))


@router.get(
    "/collections/{collectionId}/tiles",
    summary="Vector tilesets of a collection",
    response_class=Response,
    responses=_NOT_FOUND,
)
def tilesets(collectionId: str, request: Request, pipeline: PipelineDep) -> Response:  # noqa: N803
    """The incidents' vector tilesets (one per tile matrix set)."""
    url = f"{_base(request)}/collections/{_tiled(collectionId)}"
    credit = attribution.text(pipeline.city)
    return _json(ogc_tiles.tilesets(url, _base(request), _title(pipeline), credit))


@router.get(
    "/collections/{collectionId}/tiles/{tileMatrixSetId}",
    summary="A vector tileset of a collection",
    response_class=Response,
    responses=_NOT_FOUND,
)
def tileset(
    collectionId: str,  # noqa: N803 (the OGC API path names)
    tileMatrixSetId: str,  # noqa: N803
    request: Request,
    pipeline: PipelineDep,
) -> Response:
    """The tileset: its tile URL template, layer, fields and the limits of each matrix."""
    url = f"{_base(request)}/collections/{_tiled(collectionId)}"
    ogc_tiles.check_tile_matrix_set(tileMatrixSetId)
    bounds = collections(pipeline)[TILED].bbox
    credit = attribution.text(pipeline.city)
    body = ogc_tiles.tileset(url, _base(request), _title(pipeline), credit, bounds, tileMatrixSetId)
    return _json(body)


@router.get(
    "/collections/{collectionId}/tiles/{tileMatrixSetId}/metadata",
    summary="The tileset as TileJSON",
    response_class=Response,
    responses=_NOT_FOUND,
)
def tileset_tilejson(
    collectionId: str,  # noqa: N803
    tileMatrixSetId: str,  # noqa: N803
    request: Request,
    pipeline: PipelineDep,
) -> Response:
    """TileJSON 3.0.0 of the WebMercatorQuad tileset, with the ODbL attribution, for web
    maps (TileJSON knows no other tile matrix set)."""
    url = f"{_base(request)}/collections/{_tiled(collectionId)}"
    ogc_tiles.check_tile_matrix_set(tileMatrixSetId)
    if tileMatrixSetId != ogc_tiles.TILE_MATRIX_SET:
        raise NotFound(
            f"tileMatrixSetId: TileJSON describes {ogc_tiles.TILE_MATRIX_SET} tiles only",
            field="tileMatrixSetId",
        )
    bounds = collections(pipeline)[TILED].bbox
    credit = attribution.text(pipeline.city)
    body = ogc_tiles.tilejson(url, _title(pipeline), credit, bounds)
    return _json(body, ogc_tiles.TILEJSON)


@router.get(
    "/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
    summary="One vector tile",
    response_class=Response,
    responses={
        200: {
            "content": {mvt.MEDIA_TYPE: {}},
            "description": "Mapbox Vector Tile, layer `incidents` (empty when none)",
        },
        400: {"description": "no such tile"},
        **_NOT_FOUND,
    },
)
def tile(
    collectionId: str,  # noqa: N803
    tileMatrixSetId: str,  # noqa: N803
    tileMatrix: int,  # noqa: N803
    tileRow: int,  # noqa: N803
    tileCol: int,  # noqa: N803
    pipeline: PipelineDep,
) -> Response:
    """The tile at zoom ``tileMatrix``, row ``tileRow`` (y), column ``tileCol`` (x)."""
    _tiled(collectionId)
    ogc_tiles.check_tile_matrix_set(tileMatrixSetId)
    ogc_tiles.check_tile(tileMatrixSetId, tileMatrix, tileRow, tileCol)
    if tileMatrixSetId == ogc_tiles.TILE_MATRIX_SET:
        content = pipeline.reads.incident_tile(tileMatrix, tileCol, tileRow)
    else:
        content = ogc_tiles.crs84_tile(pipeline.reads, tileMatrix, tileRow, tileCol)
    return Response(content, media_type=mvt.MEDIA_TYPE, headers={"Cache-Control": CACHE_CONTROL})
