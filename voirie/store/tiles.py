"""Blurred incidents in vector tiles (issue 17 item 5: ``privacy.blur`` in city.yaml).

A tile is public: an incident of a blurred service must sit in it at its public point
(``voirie.gis.blur``), never at its exact one, both as a feature (zoom 14 and more) and
in the count of a cell (below). The public point is not stored (it depends on city.yaml
and on the street network, which the database does not hold): each backend's
``incident_tile`` leaves the blurred services out of its usual read, reads them in the
box ``search`` gives for the tile (every exact point whose public point may be in it, so
one whose public point is in the tile is found even when its exact point is not), asks
``public`` for their points and encodes those. A city without blurring reads as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from voirie.codecs import mvt

BBox = tuple[float, float, float, float]
"""WGS84 (minlon, minlat, maxlon, maxlat)."""
PublicPoints = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""(service codes, lon, lat) -> the WGS84 (lon, lat) the public sees (``Blur.public``)."""


@dataclass(frozen=True)
class TileBlur:
    """The blurred services of a city, where to look for those whose public point may be
    in a box, and the function that computes it."""

    services: tuple[str, ...]
    search: Callable[[BBox], BBox]
    """A WGS84 box -> the box holding every exact point whose public point may be in it
    (``Blur.search_box``)."""
    public: PublicPoints

    def search_bounds(self, z: int, x: int, y: int) -> BBox:
        """WGS84 box holding every exact point whose public point may be in the tile (with
        its buffer)."""
        return self.search(mvt.lonlat_bounds(z, x, y))

    def points(
        self, codes: np.ndarray, lon: np.ndarray, lat: np.ndarray, z: int, x: int, y: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The public (lon, lat) of these blurred incidents, and which of them fall in the
        tile with its buffer."""
        plon, plat = self.public(codes, lon, lat)
        _, _, keep = mvt.tile_coordinates(plon, plat, z, x, y)
        return plon, plat, keep
