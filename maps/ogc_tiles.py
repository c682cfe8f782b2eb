"""OGC API Tiles documents for the incident vector tiles, without the web framework.

The tiles themselves are those of ``/tiles/incidents/{z}/{x}/{y}.mvt`` (Mapbox Vector
Tiles from the store); this module describes them the OGC way: the tile matrix set
(WebMercatorQuad, from ``morecantile``, which ships the OGC definitions), the collection's
list of tilesets, one tileset with its templated tile URL and the limits of the matrices
that hold the city, and the same as TileJSON for web maps.

Specs: https://docs.ogc.org/is/20-057/20-057.html (OGC API Tiles),
https://docs.ogc.org/is/17-083r4/17-083r4.html (TileMatrixSet 2.0).
"""

from __future__ import annotations

import functools
from typing import Any

import morecantile

from voirie.codecs import mvt
from voirie.errors import InvalidInput, NotFound

TILE_MATRIX_SET = "WebMercatorQuad"
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
)
REL_TILING_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
REL_TILING_SCHEMES = "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes"
REL_VECTOR_TILESETS = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
JSON = "application/json"
TILEJSON = "application/vnd.mapbox.tile+json"
MIN_ZOOM = 0


@functools.cache
def tile_matrix_set() -> morecantile.TileMatrixSet:
    """The one tile matrix set served: OGC's WebMercatorQuad."""
    return morecantile.tms.get(TILE_MATRIX_SET)


def check_tile_matrix_set(name: str) -> None:
    """Refuse any other tile matrix set, naming the one there is."""
    if name != TILE_MATRIX_SET:
        raise NotFound(
            f"tileMatrixSetId: no tile matrix set {name!r}; use {TILE_MATRIX_SET}",
            field="tileMatrixSetId",
        )


def _crs_uri() -> str:
    """The tile matrix set's CRS as its OGC URI."""
    return str(tile_matrix_set().crs.root)


def check_tile(matrix: int, row: int, col: int) -> None:
    """Refuse a tile that does not exist in WebMercatorQuad, naming the path part."""
    if not MIN_ZOOM <= matrix <= mvt.MAX_ZOOM:
        raise InvalidInput(
            f"tileMatrix: {matrix} is outside {MIN_ZOOM}..{mvt.MAX_ZOOM}", field="tileMatrix"
        )
    side = 1 << matrix
    for name, value in (("tileRow", row), ("tileCol", col)):
        if not 0 <= value < side:
            raise InvalidInput(
                f"{name}: {value} is outside 0..{side - 1} in tile matrix {matrix}", field=name
            )


def matrix_sets(base: str) -> dict[str, Any]:
    """``/tileMatrixSets``: the list, each with a link to its definition."""
    tms = tile_matrix_set()
    return {
        "tileMatrixSets": [
            {
                "id": TILE_MATRIX_SET,
                "title": tms.title,
                "uri": str(tms.uri),
                "crs": _crs_uri(),
                "links": [
                    _link(f"{base}/tileMatrixSets/{TILE_MATRIX_SET}", "self", JSON),
                    _link(f"{base}/tileMatrixSets/{TILE_MATRIX_SET}", REL_TILING_SCHEME, JSON),
                ],
            }
        ]
    }


def matrix_set(base: str) -> dict[str, Any]:
    """``/tileMatrixSets/WebMercatorQuad``: the OGC TileMatrixSet 2.0 JSON definition, with
    the keys of its 1.0 encoding (17-083r2) alongside: GDAL before 3.7 (Debian 12's 3.6)
    reads only those (``identifier``, ``supportedCRS``, ``boundingBox``, each matrix's
    ``identifier`` and ``topLeftCorner``); clients of 2.0 ignore them."""
    tms = tile_matrix_set()
    body: dict[str, Any] = tms.model_dump(mode="json", exclude_none=True)
    left, bottom, right, top = tms.xy_bbox
    body |= {
        "type": "TileMatrixSetType",
        "identifier": TILE_MATRIX_SET,
        "supportedCRS": body["crs"],
        "boundingBox": {
            "type": "BoundingBoxType",
            "crs": body["crs"],
            "lowerCorner": [left, bottom],
            "upperCorner": [right, top],
        },
    }
    for matrix in body["tileMatrices"]:
        matrix |= {
            "type": "TileMatrixType",
            "identifier": matrix["id"],
            "topLeftCorner": matrix["pointOfOrigin"],
        }
    body["links"] = [_link(f"{base}/tileMatrixSets/{TILE_MATRIX_SET}", "self", JSON)]
    return body


def _link(href: str, rel: str, media: str, title: str = "", **extra: Any) -> dict[str, Any]:
    link = {"href": href, "rel": rel, "type": media, **extra}
    if title:
        link["title"] = title
    return link


def _limits(bounds: tuple[float, float, float, float]) -> list[dict[str, Any]]:
    """Rows and columns of each zoom that hold the city's box (``tileMatrixSetLimits``)."""
    tms = tile_matrix_set()
    out = []
    for zoom in range(MIN_ZOOM, mvt.MAX_ZOOM + 1):
        upper_left = tms.tile(bounds[0], bounds[3], zoom)
        lower_right = tms.tile(bounds[2], bounds[1], zoom)
        out.append(
            {
                "tileMatrix": str(zoom),
                "minTileRow": upper_left.y,
                "maxTileRow": lower_right.y,
                "minTileCol": upper_left.x,
                "maxTileCol": lower_right.x,
            }
        )
    return out


def tilesets(collection_url: str, base: str, title: str, attribution: str) -> dict[str, Any]:
    """``/collections/incidents/tiles``: the collection's one vector tileset."""
    tileset_url = f"{collection_url}/tiles/{TILE_MATRIX_SET}"
    tms = tile_matrix_set()
    return {
        "links": [_link(f"{collection_url}/tiles", "self", JSON, f"{title}: tilesets")],
        "tilesets": [
            {
                "title": title,
                "dataType": "vector",
                "crs": _crs_uri(),
                "tileMatrixSetURI": str(tms.uri),
                "attribution": attribution,
                "links": [
                    _link(tileset_url, "self", JSON, f"{title}: {TILE_MATRIX_SET}"),
                    _link(f"{base}/tileMatrixSets/{TILE_MATRIX_SET}", REL_TILING_SCHEME, JSON),
                ],
            }
        ],
    }


def tileset(
    collection_url: str,
    base: str,
    title: str,
    attribution: str,
    bounds: tuple[float, float, float, float],
) -> dict[str, Any]:
    """``/collections/incidents/tiles/WebMercatorQuad``: the tileset, its tile URL template,
    its layer and fields, and the limits of each matrix."""
    tileset_url = f"{collection_url}/tiles/{TILE_MATRIX_SET}"
    tms = tile_matrix_set()
    fields = {key: {"description": text} for key, text in mvt.FIELDS.items()}
    return {
        "title": title,
        "dataType": "vector",
        "crs": _crs_uri(),
        "tileMatrixSetURI": str(tms.uri),
        "attribution": attribution,
        "boundingBox": {
            "lowerLeft": [bounds[0], bounds[1]],
            "upperRight": [bounds[2], bounds[3]],
            "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        },
        "tileMatrixSetLimits": _limits(bounds),
        "layers": [
            {
                "id": mvt.LAYER,
                "dataType": "vector",
                "geometryType": "points",
                "minTileMatrix": str(MIN_ZOOM),
                "maxTileMatrix": str(mvt.MAX_ZOOM),
                "propertiesSchema": {"type": "object", "properties": fields},
            }
        ],
        "links": [
            _link(tileset_url, "self", JSON, title),
            _link(f"{base}/tileMatrixSets/{TILE_MATRIX_SET}", REL_TILING_SCHEME, JSON),
            _link(
                f"{tileset_url}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}",
                "item",
                mvt.MEDIA_TYPE,
                "one tile (Mapbox Vector Tile)",
                templated=True,
            ),
            _link(f"{tileset_url}/metadata", "describedby", TILEJSON, "TileJSON"),
        ],
    }


def tilejson(
    collection_url: str, title: str, attribution: str, bounds: tuple[float, float, float, float]
) -> dict[str, object]:
    """The tileset as TileJSON 3.0.0 (the document web maps read)."""
    return mvt.tilejson(
        f"{collection_url}/tiles/{TILE_MATRIX_SET}/{{z}}/{{y}}/{{x}}",
        name=title,
        bounds=bounds,
        attribution=attribution,
    )
