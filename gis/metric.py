"""Metres around WGS84 points as a longitude/latitude box: the one rule for search boxes.

Spatial indexes (the sqlite R*Tree, the PostGIS GiST) take longitude/latitude boxes, while
voirie's distances are metres: the dedupe reach, the Open311 ``radius``. The exact
distance is measured afterwards, in the city's metric projection; the box only has to hold
every point within the distance, and not much more.

The rule is a bound, not an approximation. A path of length ``d`` from a point changes its
latitude by at most ``d`` over the shortest metre-length of a degree of latitude (at the
equator, where the WGS84 meridian radius is ``a(1 - e²)``), so it stays in that latitude
band; in the band, a degree of longitude is at least ``a·cos φ`` metres long at the latitude
``φ`` farthest from the equator, which bounds the longitude it can cross. The distance is
first raised by ``SLACK`` because a city's projection may measure a little more or less
than the ellipsoid. Boxes are not wrapped across the antimeridian; one that reaches a pole
spans every longitude.
"""

from __future__ import annotations

import math

BBox = tuple[float, float, float, float]

# WGS84: semi-major axis (m) and first eccentricity squared.
_A = 6_378_137.0
_E2 = 6.694_379_990_14e-3
# The shortest degree of latitude (at the equator, about 110 574 m) and the length of a
# degree of longitude on the equator (about 111 319 m), which times cos φ bounds it below.
_M_PER_DEG_LAT_MIN = math.radians(1.0) * _A * (1.0 - _E2)
_M_PER_DEG_LON_EQUATOR = math.radians(1.0) * _A
# Distances are measured in a conformal city projection, whose scale stays within a few
# per mille of the ellipsoid's over a city; 10 % more covers it with room to spare.
SLACK = 1.1


def widen(bbox: BBox, distance_m: float) -> BBox:
    """``bbox`` (west, south, east, north) grown so that it holds every point within
    ``distance_m`` metres of any point inside it."""
    west, south, east, north = bbox
    reach = distance_m * SLACK
    dlat = reach / _M_PER_DEG_LAT_MIN
    south, north = max(south - dlat, -90.0), min(north + dlat, 90.0)
    farthest = max(abs(south), abs(north))
    metres_per_deg_lon = _M_PER_DEG_LON_EQUATOR * math.cos(math.radians(farthest))
    if metres_per_deg_lon * 180.0 <= reach:  # the band touches a pole or rounds the Earth
        return (-180.0, south, 180.0, north)
    dlon = reach / metres_per_deg_lon
    return (west - dlon, south, east + dlon, north)


def bbox_around(lon: float, lat: float, distance_m: float) -> BBox:
    """The box that holds every point within ``distance_m`` metres of (lon, lat)."""
    return widen((lon, lat, lon, lat), distance_m)
