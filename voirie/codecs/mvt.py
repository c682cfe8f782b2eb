"""Mapbox Vector Tiles (MVT 2.1) for point layers: tile maths and a vectorized encoder.

PostGIS encodes tiles with ``ST_AsMVT``; the embedded store has no such function, so it
encodes with ``encode_points``, which writes the same protocol buffer message with numpy
array operations (no Python loop per feature: a z14 tile over a dense district holds
thousands of incidents). Attributes follow ``ST_AsMVT``'s choice of value types (text as
``string_value``, non-negative integers as ``uint_value``, negative ones as ``sint_value``,
floats as ``double_value``), so both backends give tiles that decode to the same features.

Below ``CLUSTER_BELOW_ZOOM`` a tile does not carry every incident (a z10 tile over a million
incidents would be tens of megabytes): as tile servers do, its ``incidents`` layer holds one
point per grid cell of ``CELL`` × ``CELL`` tile units, placed at the cell's centre (not the
mean position: the centre is exact integer arithmetic, so both backends agree to the unit),
with ``CLUSTER_FIELDS`` as attributes. A point belongs to cell ``floor(px / CELL)`` of its
integer tile coordinate (cells of the buffer clamped to stay inside it); the feature id is
the cell's number in the tile, row by row from the buffer's top-left cell.

Spec: https://github.com/mapbox/vector-tile-spec/tree/master/2.1
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pandas as pd

from voirie.errors import InvalidInput
from voirie.model import OPEN_STATUSES

EXTENT = 4096
"""Tile coordinate range, as ``ST_AsMVT``'s default."""
BUFFER = 64
"""Margin kept around a tile, in tile units (``ST_AsMVTGeom``'s buffer; its default is 256)."""
FETCH_BUFFER = BUFFER + 0.5
"""Margin of the candidates a store fetches: half a unit more than ``BUFFER``, since a point
up to half a unit beyond the buffer rounds onto its edge and is kept by both encoders."""
MAX_ZOOM = 22
MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
LAYER = "incidents"
FIELDS: dict[str, str] = {
    "service_code": "service (category) code",
    "status": "incident status (new, acknowledged, scheduled, in_progress, resolved, ...)",
    "team": "code of the team the incident is assigned to",
    "priority": "1 (highest) to 5",
    "report_count": "number of reports grouped in the incident",
    "last_reported": "day of the latest report (YYYY-MM-DD, UTC)",
}
"""Public attributes of every incident feature (TileJSON ``fields``); both backends write these."""
CLUSTER_BELOW_ZOOM = 14
"""Tiles of a lower zoom hold one aggregated point per cell; at and above it, one per incident."""
CELL = EXTENT // 64
"""Side of an aggregation cell, in tile units (64: a cell is 16 screen pixels of a 256 px tile)."""
CELL_RANGE = (-(BUFFER // CELL), (EXTENT + BUFFER) // CELL - 1)
"""First and last cell number along each axis (the buffer's cells included)."""
OPEN_STATUS_CODES = sorted(str(status) for status in OPEN_STATUSES)
"""``status`` values counted in ``open`` (both backends use this list)."""
CLUSTER_FIELDS: dict[str, str] = {
    "count": "number of incidents in the cell",
    "open": f"incidents of the cell in an open status ({', '.join(OPEN_STATUS_CODES)})",
    "reports": "reports grouped in the cell's incidents (sum of report_count)",
}
"""Attributes of the aggregated features of tiles below ``CLUSTER_BELOW_ZOOM``."""
_HALF_WORLD_M = 20037508.342789244  # half the width of the Web Mercator square
_MAX_LAT = 85.0511287798066
_VARINT_LIMITS = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)
_MOVE_TO_ONE = (1 & 0x7) | (1 << 3)  # MoveTo command, count 1
_POINT = 1


def check_tile(z: int, x: int, y: int) -> None:
    """Refuse tile addresses that do not exist, naming the coordinate."""
    if not 0 <= z <= MAX_ZOOM:
        raise InvalidInput(f"z: zoom {z} is outside 0..{MAX_ZOOM}", field="z")
    side = 1 << z
    for name, value in (("x", x), ("y", y)):
        if not 0 <= value < side:
            raise InvalidInput(f"{name}: {value} is outside 0..{side - 1} at zoom {z}", field=name)


def mercator_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) of a tile in EPSG:3857 metres (XYZ scheme, y down)."""
    size = 2 * _HALF_WORLD_M / (1 << z)
    minx = -_HALF_WORLD_M + x * size
    maxy = _HALF_WORLD_M - y * size
    return minx, maxy - size, minx + size, maxy


def lonlat_bounds(
    z: int, x: int, y: int, buffer: float = FETCH_BUFFER
) -> tuple[float, float, float, float]:
    """WGS84 (minlon, minlat, maxlon, maxlat) of a tile widened by ``buffer`` tile units."""
    minx, miny, maxx, maxy = mercator_bounds(z, x, y)
    margin = (maxx - minx) * buffer / EXTENT
    lon0, lat0 = _to_lonlat(minx - margin, miny - margin)
    lon1, lat1 = _to_lonlat(maxx + margin, maxy + margin)
    return lon0, lat0, lon1, lat1


def _to_lonlat(mx: float, my: float) -> tuple[float, float]:
    lon = max(-180.0, min(180.0, math.degrees(mx / 6378137.0)))
    lat = math.degrees(2 * math.atan(math.exp(my / 6378137.0)) - math.pi / 2)
    return lon, max(-_MAX_LAT, min(_MAX_LAT, lat))


def tile_coordinates(
    lon: np.ndarray, lat: np.ndarray, z: int, x: int, y: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer tile coordinates of WGS84 points, and which points lie within the buffer."""
    lat = np.clip(np.asarray(lat, dtype=float), -_MAX_LAT, _MAX_LAT)
    mx = np.radians(np.asarray(lon, dtype=float)) * 6378137.0
    my = np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)) * 6378137.0
    minx, miny, maxx, _ = mercator_bounds(z, x, y)
    scale = EXTENT / (maxx - minx)
    px = np.rint((mx - minx) * scale).astype(np.int64)
    py = np.rint(EXTENT - (my - miny) * scale).astype(np.int64)
    keep = (px >= -BUFFER) & (px <= EXTENT + BUFFER) & (py >= -BUFFER) & (py <= EXTENT + BUFFER)
    return px, py, keep


def _varint_lengths(values: np.ndarray) -> np.ndarray:
    """Bytes each unsigned value takes as a protobuf varint (one binary search per value)."""
    v = np.asarray(values, dtype=np.uint64)
    found = np.searchsorted(_VARINT_LIMITS, v.ravel(), side="right").reshape(v.shape)
    return found.astype(np.int64) + 1


def _varints(values: np.ndarray, lengths: np.ndarray) -> bytes:
    """Concatenated varints of a 2-D array row by row, skipping cells of length 0."""
    flat = values.astype(np.uint64).ravel()
    sizes = lengths.ravel()
    kept = sizes > 0
    flat, sizes = flat[kept], sizes[kept]
    offsets = np.cumsum(sizes) - sizes
    out = np.empty(int(sizes.sum()), dtype=np.uint8)
    # One pass per byte position (at most ten), each over the values that long only.
    for k in range(int(sizes.max(initial=0))):
        longer = np.flatnonzero(sizes > k) if k else slice(None)
        group = (flat[longer] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (sizes[longer] > k + 1).astype(np.uint64) << np.uint64(7)
        out[offsets[longer] + k] = (group | more).astype(np.uint8)
    return bytes(out.tobytes())


def _zigzag(values: np.ndarray) -> np.ndarray:
    v = values.astype(np.int64)
    return ((v << 1) ^ (v >> 63)).astype(np.uint64)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    """One unsigned varint (for the few header fields and distinct values)."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _value(item: object) -> bytes:
    """One ``Tile.Value`` message, typed as ``ST_AsMVT`` types it."""
    if isinstance(item, bool | np.bool_):
        return _varint(7 << 3) + _varint(int(item))
    if isinstance(item, int | np.integer):
        number = int(item)
        if number >= 0:
            return _varint(5 << 3) + _varint(number)
        return _varint(6 << 3) + _varint(int(_zigzag(np.array([number]))[0]))
    if isinstance(item, float | np.floating):
        return _varint(3 << 3 | 1) + struct.pack("<d", float(item))
    return _field(1, str(item).encode("utf-8"))


def encode_points(
    ids: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    properties: pd.DataFrame,
    layer: str = LAYER,
) -> bytes:
    """One-layer tile of point features at integer tile coordinates; ``b""`` when empty.

    ``properties`` has one row per feature; missing values are left out of the feature
    (MVT has no null). Feature ids must be non-negative integers.
    """
    n = len(ids)
    if n == 0:
        return b""
    keys = list(properties.columns)
    values: list[bytes] = []
    tags = np.zeros((n, 2 * len(keys)), dtype=np.uint64)
    has_tag = np.zeros((n, 2 * len(keys)), dtype=bool)
    for k, name in enumerate(keys):
        codes, uniques = pd.factorize(properties[name], use_na_sentinel=True)
        # One message per distinct value (a handful per column), not per feature.
        tags[:, 2 * k] = k
        tags[:, 2 * k + 1] = np.where(codes >= 0, codes + len(values), 0)
        has_tag[:, 2 * k : 2 * k + 2] = (codes >= 0)[:, None]
        values.extend(_value(item) for item in uniques.tolist())
    tag_lengths = _varint_lengths(tags) * has_tag
    geometry = np.column_stack(
        [np.full(n, _MOVE_TO_ONE, dtype=np.uint64), _zigzag(px), _zigzag(py)]
    )
    geometry_lengths = _varint_lengths(geometry)
    ids = np.asarray(ids, dtype=np.uint64)
    head = np.column_stack(
        [np.full(n, 1 << 3), ids, np.full(n, 2 << 3 | 2), tag_lengths.sum(axis=1)]
    ).astype(np.uint64)
    tail = np.column_stack(
        [
            np.full(n, 3 << 3),
            np.full(n, _POINT),
            np.full(n, 4 << 3 | 2),
            geometry_lengths.sum(axis=1),
        ]
    ).astype(np.uint64)
    body_lengths = np.column_stack(
        [_varint_lengths(head), tag_lengths, _varint_lengths(tail), geometry_lengths]
    )
    feature_bytes = body_lengths.sum(axis=1)
    rows = np.column_stack(
        [np.full(n, 2 << 3 | 2, dtype=np.uint64), feature_bytes, head, tags, tail, geometry]
    )
    row_lengths = np.column_stack(
        [np.ones(n, dtype=np.int64), _varint_lengths(feature_bytes), body_lengths]
    )
    content = (
        _field(1, layer.encode("utf-8"))
        + _varints(rows, row_lengths)
        + b"".join(_field(3, key.encode("utf-8")) for key in keys)
        + b"".join(_field(4, value) for value in values)
        + _varint(5 << 3)
        + _varint(EXTENT)
        + _varint(15 << 3)
        + _varint(2)
    )
    return _field(3, content)


def encode_cells(
    px: np.ndarray,
    py: np.ndarray,
    status: np.ndarray,
    report_count: np.ndarray,
    layer: str = LAYER,
) -> bytes:
    """Aggregated tile: one point per ``CELL`` at its centre, with ``CLUSTER_FIELDS``.

    ``px``/``py`` are the integer tile coordinates of the incidents kept in the tile,
    ``status`` and ``report_count`` their attributes. Grouped with numpy (no loop per point).
    """
    if len(px) == 0:
        return b""
    first, last = CELL_RANGE
    cx = np.clip(np.floor_divide(px, CELL), first, last)
    cy = np.clip(np.floor_divide(py, CELL), first, last)
    side = last - first + 1
    cells, which = np.unique((cy - first) * side + (cx - first), return_inverse=True)
    is_open = np.isin(np.asarray(status, dtype=object), OPEN_STATUS_CODES)
    reports = np.asarray(report_count, dtype=np.int64)
    properties = pd.DataFrame(
        {
            "count": np.bincount(which, minlength=len(cells)).astype(np.int64),
            "open": np.bincount(which, weights=is_open, minlength=len(cells)).astype(np.int64),
            "reports": np.bincount(which, weights=reports, minlength=len(cells)).astype(np.int64),
        }
    )
    centre_x = (cells % side + first) * CELL + CELL // 2
    centre_y = (cells // side + first) * CELL + CELL // 2
    return encode_points(cells, centre_x, centre_y, properties, layer)


def tilejson(
    tiles_url: str,
    *,
    name: str,
    bounds: tuple[float, float, float, float],
    min_zoom: int = 0,
    max_zoom: int = MAX_ZOOM,
    attribution: str = "",
) -> dict[str, object]:
    """A TileJSON 3.0.0 document for the one-layer incident tiles.

    The layer's ``fields`` declare both kinds of features: per-incident ``FIELDS`` from
    ``CLUSTER_BELOW_ZOOM`` up, aggregated ``CLUSTER_FIELDS`` below it.

    Spec: https://github.com/mapbox/tilejson-spec/tree/master/3.0.0
    """
    minlon, minlat, maxlon, maxlat = bounds
    fields = {key: f"{text} (zoom {CLUSTER_BELOW_ZOOM} and more)" for key, text in FIELDS.items()}
    fields.update(
        (key, f"{text} (zoom below {CLUSTER_BELOW_ZOOM})") for key, text in CLUSTER_FIELDS.items()
    )
    description = (
        f"From zoom {CLUSTER_BELOW_ZOOM}, one point per incident (feature id = incident id); "
        f"below, one point per cell of {CELL}x{CELL} of the tile's {EXTENT}x{EXTENT} units, at "
        f"the cell's centre, with the count, open count and reports of its incidents."
    )
    return {
        "tilejson": "3.0.0",
        "name": name,
        "tiles": [tiles_url],
        "minzoom": min_zoom,
        "maxzoom": max_zoom,
        "bounds": [minlon, minlat, maxlon, maxlat],
        "center": [(minlon + maxlon) / 2, (minlat + maxlat) / 2, 12],
        "attribution": attribution,
        "vector_layers": [
            {
                "id": LAYER,
                "description": description,
                "fields": fields,
                "minzoom": min_zoom,
                "maxzoom": max_zoom,
            }
        ],
    }
