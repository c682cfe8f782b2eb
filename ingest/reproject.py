"""Source coordinates in another reference system, turned into WGS 84 longitude/latitude.

French municipal layers are in Lambert-93 (EPSG:2154) or its conic zones (CC42-CC50): a
GeoJSON saved by QGIS or ``ogr2ogr`` from such a layer keeps that system in a ``crs``
member (GeoJSON 2008; RFC 7946 dropped it, GDAL still reads and writes it), and a CSV
export gives X/Y columns. Read as degrees, every row was quarantined ("lat: out of range
±90"). Coordinates are converted once, on the way in: a GeoJSON's ``crs`` member by its
reader, a CSV's columns by validation when the column mapping names their ``crs``. x is
always the easting (the ``lon`` column), y the northing (``lat``), whatever order the
system's definition gives its axes, as GIS files store them.
"""

from __future__ import annotations

import functools

import numpy as np
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

WGS84 = CRS.from_user_input("OGC:CRS84")


def known_crs(name: str) -> CRS:
    """The reference system ``name`` stands for (``EPSG:2154``, ``urn:ogc:def:crs:EPSG::2154``,
    a WKT or PROJ string...); ``ValueError`` saying so when pyproj knows none."""
    try:
        return CRS.from_user_input(name)
    except CRSError:
        raise ValueError(f"unknown coordinate reference system {name!r} (e.g. EPSG:2154)") from None


def is_wgs84(name: str) -> bool:
    """Whether coordinates in ``name`` are already WGS 84 longitude/latitude."""
    return known_crs(name).equals(WGS84, ignore_axis_order=True)


@functools.lru_cache(maxsize=8)
def _to_wgs84(name: str) -> Transformer:
    return Transformer.from_crs(known_crs(name), WGS84, always_xy=True)


def to_wgs84(x: np.ndarray, y: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes and latitudes of the points (x, y) of system ``name``; a point the
    conversion cannot take gives ``inf`` or NaN (one far outside the system's area may
    give degrees anywhere: the territory check refuses it)."""
    if is_wgs84(name):
        return x.astype(float), y.astype(float)
    lon, lat = _to_wgs84(name).transform(x.astype(float), y.astype(float), errcheck=False)
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
