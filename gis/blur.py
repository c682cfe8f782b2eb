"""Public locations of sensitive incidents (issue 17 item 5: ``privacy.blur`` in city.yaml).

An incident of a blurred service (or of a service of a blurred group) is shown to the
public at the middle of its street segment (``street_middle``: the street is public, the
doorway is not) or at the centre of the ``grid_m`` cell of the city's metric CRS it lies
in (``grid``: the same cell for every incident of a block, whatever its street). The
segment is the one the exact point snaps to; a point off the network falls back to the
grid. Staff keep the exact location; only what the public sees moves. Computed on
arrays, in metres; ``search_box`` says where to read for what may show in a box.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property

import numpy as np
import pandas as pd
import shapely

from voirie.city import Blurring, City
from voirie.gis.enrich import CityGIS

BBox = tuple[float, float, float, float]
"""(minx, miny, maxx, maxy)."""
_MEMO_SIZE = 250_000
"""Points whose segment ``Blur`` remembers (some 50 MB at most); then it starts again."""


class Blur:
    """Which incidents a city blurs for the public, and where it shows them."""

    def __init__(self, city: City, gis: CityGIS) -> None:
        blur = city.config.privacy.blur
        self.config: Blurring | None = blur
        self.gis = gis
        # (x, y) metric point -> its segment (-1 off the network), see _segments
        self._snapped: dict[tuple[float, float], int] = {}
        groups = set(blur.groups) if blur else set()
        self.services = frozenset(
            code
            for code, service in city.services.items()
            if blur is not None and (code in blur.services or service.group in groups)
        )

    def fingerprint(self, metric_crs: str) -> str | None:
        """What the public points depend on, hashed (None when nothing is blurred): the
        blurring of city.yaml, the blurred services, the metric CRS and, for
        ``street_middle``, the street network and its snap distance. The store recomputes
        its public points when it changes (``voirie.store.public_points``)."""
        if self.config is None or not self.services:
            return None
        digest = hashlib.sha256()
        described: dict[str, object] = {
            "method": self.config.method,
            "grid_m": self.config.grid_m,
            "services": sorted(self.services),
            "metric_crs": metric_crs,
        }
        if self.config.method == "street_middle":
            described["max_snap_distance_m"] = self.gis.max_snap_distance_m
            streets = shapely.to_wkb(self.gis.streets_geometry)
            digest.update(b"".join(bytes(wkb) for wkb in streets))
        digest.update(json.dumps(described, sort_keys=True).encode())
        return digest.hexdigest()

    def blurred(self, service_codes: np.ndarray) -> np.ndarray:
        """Which of these incidents (by service code) the public sees blurred."""
        return pd.Series(service_codes, dtype=object).isin(self.services).to_numpy(dtype=bool)

    @cached_property
    def _middles(self) -> shapely.STRtree:
        """The street segments' middles (metric), indexed: a street-middle public point
        is one of them."""
        middles = shapely.line_interpolate_point(self.gis.streets_geometry, 0.5, normalized=True)
        return shapely.STRtree(middles)

    def search_box(self, box: BBox) -> BBox:
        """A WGS84 box holding every exact point whose public point may lie in ``box``:
        what a read filtering on the public point must read (tiles, the Open311 circle).

        A grid cell's centre is within half a diagonal of the point. A street's middle
        belongs to a segment whose middle is in the box, and the point lies within the
        snap distance of that segment: so the box grows to those segments' bounds, then by
        the larger distance (one metre more for the rounding of published points). The
        box's edges are sampled when projected: a parallel is curved in a conic CRS.
        """
        if self.config is None:
            return box
        x, y = self.gis.project(*_edges(box))
        minx, miny, maxx, maxy = x.min(), y.min(), x.max(), y.max()
        margin = self.config.grid_m / np.sqrt(2)
        if self.config.method == "street_middle" and len(self.gis.streets_geometry):
            found = self._middles.query(shapely.box(minx, miny, maxx, maxy))
            if len(found):
                bounds = shapely.bounds(self.gis.streets_geometry[found])
                minx, miny = min(minx, bounds[:, 0].min()), min(miny, bounds[:, 1].min())
                maxx, maxy = max(maxx, bounds[:, 2].max()), max(maxy, bounds[:, 3].max())
            margin = max(margin, self.gis.max_snap_distance_m)
        margin += 1.0
        grown = (minx - margin, miny - margin, maxx + margin, maxy + margin)
        lon, lat = self.gis.to_wgs84.transform(*_edges(grown))
        slack = 1e-6  # degrees (0.1 m): the edges between samples bulge a little
        return (
            float(np.min(lon)) - slack,
            float(np.min(lat)) - slack,
            float(np.max(lon)) + slack,
            float(np.max(lat)) + slack,
        )

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
            segment = self._segments(x, y)
            on = segment >= 0
            middles = shapely.line_interpolate_point(
                self.gis.streets_geometry[segment[on]], 0.5, normalized=True
            )
            bx[on], by[on] = shapely.get_x(middles), shapely.get_y(middles)
        blon, blat = self.gis.to_wgs84.transform(bx, by)
        lon[rows], lat[rows] = np.round(blon, 6), np.round(blat, 6)
        return lon, lat

    def _segments(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The segment each metric point snaps to (-1 off the network), remembered: a
        city-wide tile places every blurred incident, and snapping is the costly part.
        A full memory is replaced, not emptied, so a concurrent reader keeps its own."""
        memo = self._snapped
        keys = list(zip(x.tolist(), y.tolist(), strict=True))
        unknown = [i for i, key in enumerate(keys) if key not in memo]
        fresh: dict[tuple[float, float], int] = {}
        if unknown:
            found = self.gis.snap(x[unknown], y[unknown]).segment
            fresh = dict(zip((keys[i] for i in unknown), found.tolist(), strict=True))
            if len(memo) + len(fresh) > _MEMO_SIZE:
                self._snapped = dict(fresh)
            else:
                memo.update(fresh)
        return np.array([fresh[k] if k in fresh else memo[k] for k in keys], dtype=np.intp)


def _edges(box: BBox, samples: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Points along the four edges of a box, ``samples`` per edge."""
    minx, miny, maxx, maxy = box
    t = np.linspace(0.0, 1.0, samples)
    xs = np.concatenate(
        [minx + t * (maxx - minx), minx + t * (maxx - minx), [minx] * samples, [maxx] * samples]
    )
    ys = np.concatenate(
        [[miny] * samples, [maxy] * samples, miny + t * (maxy - miny), miny + t * (maxy - miny)]
    )
    return xs, ys
