"""Public locations of sensitive incidents (issue 17 item 5: ``privacy.blur`` in city.yaml).

An incident of a blurred service (or of a service of a blurred group) is shown to the
public at the middle of its street segment (``street_middle``: the street is public, the
doorway is not) or at the centre of the ``grid_m`` cell of the city's metric CRS it lies
in (``grid``: the same cell for every incident of a block, whatever its street). The
segment is the one the exact point snaps to; a point off the network falls back to the
grid. Staff keep the exact
location; only what the public sees moves. Computed on arrays, in metres.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from voirie.city import Blurring, City
from voirie.gis.enrich import CityGIS


class Blur:
    """Which incidents a city blurs for the public, and where it shows them."""

    def __init__(self, city: City, gis: CityGIS) -> None:
        blur = city.config.privacy.blur
        self.config: Blurring | None = blur
        self.gis = gis
        groups = set(blur.groups) if blur else set()
        self.services = frozenset(
            code
            for code, service in city.services.items()
            if blur is not None and (code in blur.services or service.group in groups)
        )

    def blurred(self, service_codes: np.ndarray) -> np.ndarray:
        """Which of these incidents (by service code) the public sees blurred."""
        return pd.Series(service_codes, dtype=object).isin(self.services).to_numpy(dtype=bool)

    def public(
        self,
        service_codes: np.ndarray,
        lon: np.ndarray,
        lat: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """WGS84 (lon, lat) the public sees: exact for most, blurred for the services
        city.yaml names (rounded to 6 decimals, 0.1 m, like every published point)."""
        lon = np.asarray(lon, dtype=float).copy()
        lat = np.asarray(lat, dtype=float).copy()
        rows = np.flatnonzero(self.blurred(service_codes))
        if self.config is None or not len(rows):
            return lon, lat
        x, y = self.gis.project(lon[rows], lat[rows])
        grid = self.config.grid_m
        bx = (np.floor(x / grid) + 0.5) * grid
        by = (np.floor(y / grid) + 0.5) * grid
        if self.config.method == "street_middle" and self.gis.streets is not None:
            segment = self.gis.snap(x, y).segment
            on = segment >= 0
            middles = shapely.line_interpolate_point(
                self.gis.streets_geometry[segment[on]], 0.5, normalized=True
            )
            bx[on], by[on] = shapely.get_x(middles), shapely.get_y(middles)
        blon, blat = self.gis.to_wgs84.transform(bx, by)
        lon[rows], lat[rows] = np.round(blon, 6), np.round(blat, 6)
        return lon, lat
