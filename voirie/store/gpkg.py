"""GeoPackage encoding for the embedded store: geometry blobs and the R*Tree extension.

The sqlite store is a valid GeoPackage 1.3 so that QGIS and GDAL open it directly. The
R*Tree triggers call ``ST_*`` functions that GeoPackage readers provide; voirie registers
its own on every connection so that inserts keep the index current.
"""

from __future__ import annotations

import sqlite3
import struct

import numpy as np
import shapely

WGS84_SRS_ID = 4326
_HEADER = struct.Struct("<2sBBi")
_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}
_LITTLE_ENDIAN_NO_ENVELOPE = 0b0000_0001
_EMPTY_BIT = 0b0001_0000
# SpatiaLite's name for the function that makes a GeoPackage point blob from x, y and SRS.
MAKE_POINT = "gpkgMakePoint"


_POINT_RECORD = np.dtype(
    [("header", "V8"), ("order", "u1"), ("kind", "<u4"), ("x", "<f8"), ("y", "<f8")]
)
"""A GeoPackage binary point as it is laid out: the header, then little-endian WKB."""


def point_blobs(lon: np.ndarray, lat: np.ndarray, srs_id: int = WGS84_SRS_ID) -> list[bytes]:
    """GeoPackage binary points (little-endian WKB, no envelope) for lon/lat arrays: the
    bytes ``point_blob`` gives each, laid out by numpy for all at once (building shapely
    points to write their WKB took 30 times longer, a bulk import's frame after frame)."""
    records = np.zeros(len(lon), dtype=_POINT_RECORD)
    records["header"] = np.void(_HEADER.pack(b"GP", 0, _LITTLE_ENDIAN_NO_ENVELOPE, srs_id))
    records["order"], records["kind"] = 1, 1  # little-endian, Point
    records["x"], records["y"] = lon, lat
    blobs: list[bytes] = records.view(f"V{_POINT_RECORD.itemsize}").tolist()
    return blobs


def point_blob(lon: float, lat: float, srs_id: int = WGS84_SRS_ID) -> bytes:
    """One GeoPackage binary point, the bytes ``point_blobs`` gives for it."""
    return _HEADER.pack(b"GP", 0, _LITTLE_ENDIAN_NO_ENVELOPE, srs_id) + _POINT_LE.pack(
        1, 1, lon, lat
    )


def _wkb(blob: bytes) -> bytes:
    flags = blob[3]
    return blob[8 + _ENVELOPE_BYTES[(flags >> 1) & 0b111] :]


_POINT_LE = struct.Struct("<BIdd")


def _bounds(blob: bytes | None) -> tuple[float, float, float, float] | None:
    if blob is None or blob[3] & _EMPTY_BIT:
        return None
    wkb = _wkb(blob)
    if wkb[:5] == b"\x01\x01\x00\x00\x00":  # little-endian 2D point: the common case, no parse
        _, _, x, y = _POINT_LE.unpack_from(wkb)
        return x, y, x, y
    minx, miny, maxx, maxy = shapely.from_wkb(wkb).bounds
    return float(minx), float(miny), float(maxx), float(maxy)


def _is_empty(blob: bytes | None) -> int | None:
    return None if blob is None else int(bool(blob[3] & _EMPTY_BIT))


def _bound(position: int):  # type: ignore[no-untyped-def]
    def read(blob: bytes | None) -> float | None:
        bounds = _bounds(blob)
        return None if bounds is None else bounds[position]

    return read


def register_functions(conn: sqlite3.Connection) -> None:
    """Provide the ST_* functions that GeoPackage R*Tree triggers call, and ``MAKE_POINT``
    for statements that build a point from columns (a moved incident's)."""
    conn.create_function("ST_IsEmpty", 1, _is_empty, deterministic=True)
    conn.create_function(MAKE_POINT, 3, point_blob, deterministic=True)
    for name, position in (("ST_MinX", 0), ("ST_MinY", 1), ("ST_MaxX", 2), ("ST_MaxY", 3)):
        conn.create_function(name, 1, _bound(position), deterministic=True)


def rtree_name(table: str, column: str = "geom") -> str:
    """The name of a feature table's R*Tree (its triggers' names start with it)."""
    return f"rtree_{table}_{column}"


def rtree_sql(table: str, column: str = "geom", pk: str = "id") -> str:
    """DDL of the GeoPackage R*Tree spatial index extension for one feature table."""
    rtree = rtree_name(table, column)
    values = (
        f"NEW.{pk}, ST_MinX(NEW.{column}), ST_MaxX(NEW.{column}), "
        f"ST_MinY(NEW.{column}), ST_MaxY(NEW.{column})"
    )
    filled = f"(NEW.{column} NOTNULL AND NOT ST_IsEmpty(NEW.{column}))"
    blank = f"(NEW.{column} ISNULL OR ST_IsEmpty(NEW.{column}))"
    return f"""
CREATE VIRTUAL TABLE {rtree} USING rtree(id, minx, maxx, miny, maxy);
CREATE TRIGGER {rtree}_insert AFTER INSERT ON {table} WHEN {filled}
BEGIN INSERT OR REPLACE INTO {rtree} VALUES ({values}); END;
CREATE TRIGGER {rtree}_update1 AFTER UPDATE OF {column} ON {table}
WHEN OLD.{pk} = NEW.{pk} AND {filled}
BEGIN INSERT OR REPLACE INTO {rtree} VALUES ({values}); END;
CREATE TRIGGER {rtree}_update2 AFTER UPDATE OF {column} ON {table}
WHEN OLD.{pk} = NEW.{pk} AND {blank}
BEGIN DELETE FROM {rtree} WHERE id = OLD.{pk}; END;
CREATE TRIGGER {rtree}_update3 AFTER UPDATE ON {table}
WHEN OLD.{pk} != NEW.{pk} AND {filled}
BEGIN DELETE FROM {rtree} WHERE id = OLD.{pk};
INSERT OR REPLACE INTO {rtree} VALUES ({values}); END;
CREATE TRIGGER {rtree}_update4 AFTER UPDATE ON {table}
WHEN OLD.{pk} != NEW.{pk} AND {blank}
BEGIN DELETE FROM {rtree} WHERE id IN (OLD.{pk}, NEW.{pk}); END;
CREATE TRIGGER {rtree}_delete AFTER DELETE ON {table} WHEN OLD.{column} NOT NULL
BEGIN DELETE FROM {rtree} WHERE id = OLD.{pk}; END;
INSERT INTO gpkg_extensions VALUES ('{table}', '{column}', 'gpkg_rtree_index',
  'http://www.geopackage.org/spec120/#extension_rtree', 'write-only');
"""
