"""OGC API Tiles documents for the incident vector tiles, without the web framework.

The WebMercatorQuad tiles are those of ``/tiles/incidents/{z}/{x}/{y}.mvt`` (Mapbox Vector
Tiles from the store); this module describes them the OGC way: the tile matrix sets (from
``morecantile``, which ships the OGC definitions), the collection's list of tilesets, one
tileset with its templated tile URL and the limits of the matrices that hold the city, and
the same as TileJSON for web maps.

The same incidents are also cut in WorldCRS84Quad (``crs84_tile``), the other tile matrix
set of the OGC registry that servers commonly offer: a client whose area of interest is
the collection's CRS84 ``extent`` can work in it without reprojecting. GDAL's ``OGCAPI:``
driver is such a client: it prefers a WorldCRS84Quad tileset, and it computes the tiles of
its vector layers from the CRS84 ``extent`` without reprojecting it (in a WebMercatorQuad
tileset it finds Paris only at zooms 0-2). Debian 12's GDAL 3.6.2 is built without the
driver's vector-tiles code (no ``vectorType`` string in libgdal, the tiled layer's
constructor never called) and opens no layer from any OGC API Tiles server.

Specs: https://docs.ogc.org/is/20-057/20-057.html (OGC API Tiles),
https://docs.ogc.org/is/17-083r4/17-083r4.html (TileMatrixSet 2.0).
"""

from __future__ import annotations

import functools
from typing import Any

import morecantile
import numpy as np
import pandas as pd

from voirie.codecs import mvt
from voirie.errors import InvalidInput, NotFound
from voirie.services.reads import Reads
from voirie.store.selection import Selection

TILE_MATRIX_SET = "WebMercatorQuad"
"""The store's own tiles (``/tiles/...``), the default tileset."""
CRS84_QUAD = "WorldCRS84Quad"
"""Tiles in longitude/latitude, cut from the store's points by ``crs84_tile``."""
TILE_MATRIX_SETS = (TILE_MATRIX_SET, CRS84_QUAD)
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
def tile_matrix_set(name: str = TILE_MATRIX_SET) -> morecantile.TileMatrixSet:
    """One of the tile matrix sets served, as OGC defines it."""
    return morecantile.tms.get(name)


def check_tile_matrix_set(name: str) -> None:
    """Refuse any other tile matrix set, naming the ones there are."""
    if name not in TILE_MATRIX_SETS:
        raise NotFound(
            f"tileMatrixSetId: no tile matrix set {name!r}; "
            f"use one of {', '.join(TILE_MATRIX_SETS)}",
            field="tileMatrixSetId",
        )


def _crs_uri(name: str = TILE_MATRIX_SET) -> str:
    """A tile matrix set's CRS as its OGC URI."""
    return str(tile_matrix_set(name).crs.root)


def max_zoom(name: str) -> int:
    """The deepest tile matrix served in a tile matrix set."""
    return min(mvt.MAX_ZOOM, len(tile_matrix_set(name).tileMatrices) - 1)


def check_tile(name: str, matrix: int, row: int, col: int) -> None:
    """Refuse a tile that does not exist in the tile matrix set, naming the path part."""
    deepest = max_zoom(name)
    if not MIN_ZOOM <= matrix <= deepest:
        raise InvalidInput(
            f"tileMatrix: {matrix} is outside {MIN_ZOOM}..{deepest}", field="tileMatrix"
        )
    level = tile_matrix_set(name).matrix(matrix)
    for field, value, size in (
        ("tileRow", row, level.matrixHeight),
        ("tileCol", col, level.matrixWidth),
    ):
        if not 0 <= value < size:
            raise InvalidInput(
                f"{field}: {value} is outside 0..{size - 1} in tile matrix {matrix}", field=field
            )


def crs84_tile(reads: Reads, matrix: int, row: int, col: int) -> bytes:
    """A WorldCRS84Quad tile of the incidents, encoded as the store encodes its tiles.

    Longitude and latitude map linearly onto the tile's ``mvt.EXTENT`` units. A tile of
    this set spans the longitudes of a WebMercatorQuad tile one level deeper, so it is
    aggregated per cell (``mvt.encode_cells``) below ``mvt.CLUSTER_BELOW_ZOOM - 1``.
    """
    left, bottom, right, top = tile_matrix_set(CRS84_QUAD).xy_bounds(
        morecantile.Tile(col, row, matrix)
    )
    margin = (right - left) * mvt.FETCH_BUFFER / mvt.EXTENT
    box = (left - margin, bottom - margin, right + margin, top + margin)
    # A public read: a blurred incident is selected by its stored public point, and placed
    # there.
    records = reads.records("incidents", Selection(bbox=box), zones=False)
    if not records:
        return b""
    frame = pd.DataFrame.from_records(records)
    px = np.rint((frame["lon"].to_numpy(float) - left) * mvt.EXTENT / (right - left))
    py = np.rint((top - frame["lat"].to_numpy(float)) * mvt.EXTENT / (top - bottom))
    keep = (np.abs(px - mvt.EXTENT / 2) <= mvt.EXTENT / 2 + mvt.BUFFER) & (
        np.abs(py - mvt.EXTENT / 2) <= mvt.EXTENT / 2 + mvt.BUFFER
    )
    px, py, kept = px[keep].astype(np.int64), py[keep].astype(np.int64), frame[keep]
    if matrix < mvt.CLUSTER_BELOW_ZOOM - 1:
        return mvt.encode_cells(px, py, kept["status"].to_numpy(), kept["report_count"].to_numpy())
    last = pd.to_datetime(kept["last_reported_at"], utc=True)
    properties = kept.assign(last_reported=last.dt.strftime("%Y-%m-%d"))[list(mvt.FIELDS)]
    return mvt.encode_points(
        kept["incident_id"].to_numpy(), px, py, properties.reset_index(drop=True)
    )


def matrix_sets(base: str) -> dict[str, Any]:
    """``/tileMatrixSets``: the list, each with a link to its definition."""
    listed = []
    for name in TILE_MATRIX_SETS:
        tms = tile_matrix_set(name)
        url = f"{base}/tileMatrixSets/{name}"
        listed.append(
            {
                "id": name,
                "title": tms.title,
                "uri": str(tms.uri),
                "crs": _crs_uri(name),
                "links": [_link(url, "self", JSON), _link(url, REL_TILING_SCHEME, JSON)],
            }
        )
    return {"tileMatrixSets": listed}


def matrix_set(base: str, name: str = TILE_MATRIX_SET) -> dict[str, Any]:
    """``/tileMatrixSets/{name}``: the OGC TileMatrixSet 2.0 JSON definition, with the keys
    of its 1.0 encoding (17-083r2) alongside: GDAL before 3.7 (Debian 12's 3.6) reads only
    those (``identifier``, ``supportedCRS``, ``boundingBox``, each matrix's ``identifier``
    and ``topLeftCorner``); clients of 2.0 ignore them."""
    tms = tile_matrix_set(name)
    body: dict[str, Any] = tms.model_dump(mode="json", exclude_none=True)
    left, bottom, right, top = tms.xy_bbox
    body |= {
        "type": "TileMatrixSetType",
        "identifier": name,
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
    body["links"] = [_link(f"{base}/tileMatrixSets/{name}", "self", JSON)]
    return body


def _link(href: str, rel: str, media: str, title: str = "", **extra: Any) -> dict[str, Any]:
    link = {"href": href, "rel": rel, "type": media, **extra}
    if title:
        link["title"] = title
    return link


def _limits(name: str, bounds: tuple[float, float, float, float]) -> list[dict[str, Any]]:
    """Rows and columns of each zoom that hold the city's box (``tileMatrixSetLimits``)."""
    tms = tile_matrix_set(name)
    out = []
    for zoom in range(MIN_ZOOM, max_zoom(name) + 1):
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
    """``/collections/incidents/tiles``: the collection's vector tilesets, one per tile
    matrix set (WebMercatorQuad first: the store's own tiles)."""
    listed = []
    for name in TILE_MATRIX_SETS:
        listed.append(
            {
                "title": f"{title} ({name})",
                "dataType": "vector",
                "crs": _crs_uri(name),
                "tileMatrixSetURI": str(tile_matrix_set(name).uri),
                "attribution": attribution,
                "links": [
                    _link(f"{collection_url}/tiles/{name}", "self", JSON, f"{title}: {name}"),
                    _link(f"{base}/tileMatrixSets/{name}", REL_TILING_SCHEME, JSON),
                ],
            }
        )
    return {
        "links": [_link(f"{collection_url}/tiles", "self", JSON, f"{title}: tilesets")],
        "tilesets": listed,
    }


def tileset(
    collection_url: str,
    base: str,
    title: str,
    attribution: str,
    bounds: tuple[float, float, float, float],
    name: str = TILE_MATRIX_SET,
) -> dict[str, Any]:
    """``/collections/incidents/tiles/{name}``: the tileset, its tile URL template, its
    layer and fields, and the limits of each matrix."""
    tileset_url = f"{collection_url}/tiles/{name}"
    fields = {key: {"description": text} for key, text in mvt.FIELDS.items()}
    links = [
        _link(tileset_url, "self", JSON, title),
        _link(f"{base}/tileMatrixSets/{name}", REL_TILING_SCHEME, JSON),
        _link(
            f"{tileset_url}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}",
            "item",
            mvt.MEDIA_TYPE,
            "one tile (Mapbox Vector Tile)",
            templated=True,
        ),
    ]
    if name == TILE_MATRIX_SET:  # TileJSON describes XYZ tiles in Web Mercator only
        links.append(_link(f"{tileset_url}/metadata", "describedby", TILEJSON, "TileJSON"))
    return {
        "title": title,
        "dataType": "vector",
        "crs": _crs_uri(name),
        "tileMatrixSetURI": str(tile_matrix_set(name).uri),
        "attribution": attribution,
        "boundingBox": {
            "lowerLeft": [bounds[0], bounds[1]],
            "upperRight": [bounds[2], bounds[3]],
            "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        },
        "tileMatrixSetLimits": _limits(name, bounds),
        "layers": [
            {
                "id": mvt.LAYER,
                "dataType": "vector",
                "geometryType": "points",
                "minTileMatrix": str(MIN_ZOOM),
                "maxTileMatrix": str(max_zoom(name)),
                "propertiesSchema": {"type": "object", "properties": fields},
            }
        ],
        "links": links,
    }


def tilejson(
    collection_url: str, title: str, attribution: str, bounds: tuple[float, float, float, float]
) -> dict[str, object]:
    """The WebMercatorQuad tileset as TileJSON 3.0.0 (the document web maps read)."""
    return mvt.tilejson(
        f"{collection_url}/tiles/{TILE_MATRIX_SET}/{{z}}/{{y}}/{{x}}",
        name=title,
        bounds=bounds,
        attribution=attribution,
    )
