"""The nearest rows within a radius, measured exactly only where the answer depends on it.

A search around a point must give the page of rows nearest first (metres in the city's
metric CRS, ties by id) and how many rows are within the radius in all. Projecting every
row of the circle's box is what made it slow (the ~15k open incidents of a 500 m circle in
a city of 1M incidents: one ``ST_Transform`` each). Around one point the projection is
all but affine: ``LocalMetric`` is that affine map, with a bound on how far it can be
from the exact distance anywhere in the box. Every row of the box gets the affine
distance (arithmetic on its coordinates), and only two kinds of rows are then projected:

- the candidates of the page: rows whose affine distance is within ``2 × error`` of the
  page's last one (no other row can be nearer, exactly, than a row of the page);
- the rows of the ring where the affine distance cannot tell inside from outside
  (``radius ± error``): every row nearer is counted as inside, every row farther not.

The answers are the exact ones (the same distances, order and total as measuring every
row); PostGIS does it in one statement (``knn_sql``), a backend that cannot project does
it in numpy with the same ``LocalMetric`` (``nearest_ids``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from voirie.store.dialect import Dialect
from voirie.store.selection import _SHAPES, Layer, Selection, _paging, _unpaged_from

Projection = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
# Finite differences of the projection: 1e-4° is ~10 m, far above float noise, and the
# second-order error over it is micrometres.
_STEP_DEG = 1e-4
# Sampled directions, the reach past the radius that still holds the box's corners
# (√2 ≈ 1.414), and the safety factor on the largest error sampled: the error is smooth
# (second order in the distance), so ten times what 64 directions show is a wide margin.
_DIRECTIONS = 64
_REACH = 1.5
_SAFETY = 10.0
_FLOOR_M = 1e-3


@dataclass(frozen=True)
class LocalMetric:
    """Metres from a WGS84 point as an affine map of the degrees from it:
    ``x = a·Δlon + b·Δlat``, ``y = c·Δlon + d·Δlat``, distance ``hypot(x, y)``, never
    further than ``error_m`` from the exact distance within ``reach_m`` of the point."""

    lon: float
    lat: float
    a: float
    b: float
    c: float
    d: float
    error_m: float

    @classmethod
    def around(
        cls, point: tuple[float, float], radius_m: float, project: Projection
    ) -> LocalMetric:
        """The map at ``point`` (the projection's derivatives there) and its error bound
        over the box of a ``radius_m`` circle (sampled at 1.5 radii, the worst place)."""
        lon, lat = (float(v) for v in point)
        h = _STEP_DEG
        x, y = project(
            np.array([lon + h, lon - h, lon, lon]), np.array([lat, lat, lat + h, lat - h])
        )
        a, c = (x[0] - x[1]) / (2 * h), (y[0] - y[1]) / (2 * h)
        b, d = (x[2] - x[3]) / (2 * h), (y[2] - y[3]) / (2 * h)
        # Points at exactly ``reach`` affine metres in each direction, measured exactly.
        angle = np.linspace(0.0, 2 * np.pi, _DIRECTIONS, endpoint=False)
        reach = max(float(radius_m), 1.0) * _REACH
        mx, my = reach * np.cos(angle), reach * np.sin(angle)
        det = a * d - b * c
        dlon, dlat = (d * mx - b * my) / det, (a * my - c * mx) / det
        px, py = project(
            np.concatenate([[lon], lon + dlon, lon + dlon / 2]),
            np.concatenate([[lat], lat + dlat, lat + dlat / 2]),
        )
        exact = np.hypot(px[1:] - px[0], py[1:] - py[0])
        approx = np.concatenate([np.full(_DIRECTIONS, reach), np.full(_DIRECTIONS, reach / 2)])
        error = float(np.max(np.abs(exact - approx))) * _SAFETY + _FLOOR_M
        return cls(lon, lat, float(a), float(b), float(c), float(d), error)

    def distance(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Affine metres from the point to each of these WGS84 points."""
        dx, dy = lon - self.lon, lat - self.lat
        return np.hypot(self.a * dx + self.b * dy, self.c * dx + self.d * dy)

    def sql(self, lon: str, lat: str, mark: str) -> tuple[str, list[object]]:
        """The affine distance as SQL of two coordinate expressions, values bound."""
        dx, dy = f"({lon} - {mark})", f"({lat} - {mark})"
        text = (
            f"sqrt(power({mark} * {dx} + {mark} * {dy}, 2) "
            f"+ power({mark} * {dx} + {mark} * {dy}, 2))"
        )
        params: list[object] = [self.a, self.lon, self.b, self.lat]
        params += [self.c, self.lon, self.d, self.lat]
        return text, params


def _reach(selection: Selection) -> int | None:
    """How many rows the page needs from the nearest on (None: every one)."""
    return None if selection.limit is None else selection.offset + selection.limit


def knn_sql(
    layer: Layer,
    jurisdiction_id: str,
    selection: Selection,
    dialect: Dialect,
    local: LocalMetric,
    radius_m: float,
    srid: int,
) -> tuple[str, list[object]]:
    """The page of the rows a selection keeps within ``radius_m`` metres of
    ``local``'s point, nearest first then by id, and how many there are in all:
    ``row_id``, ``distance_m``, ``total`` (one row with ``row_id`` NULL when the page is
    empty). Only for a dialect with ``metric_distance`` (the database projects).

    The statement reads the box's rows once (``box``, through the spatial index, with the
    affine distance), finds the page's last affine distance (``bound``), projects the
    candidates and the ring (``measured``) and counts inside the inner circle without
    projecting (see the module's docstring)."""
    if dialect.metric_distance is None:
        raise ValueError("this backend cannot measure metres: use nearest_ids")
    mark = dialect.placeholder
    alias = _SHAPES[layer].alias
    rows, row_params = _unpaged_from(layer, jurisdiction_id, selection, dialect)
    # The point measured: the exact one, or with ``public_points`` the public one
    # (``voirie.store.public_points``: NULL where they are the same).
    geom = f"{alias}.geom"
    if selection.public_points:
        geom = f"coalesce({alias}.public_geom, {alias}.geom)"
    approx, approx_params = local.sql(f"ST_X({geom})", f"ST_Y({geom})", mark)
    k = _reach(selection)
    outer = float(radius_m) + local.error_m
    inner = float(radius_m) - local.error_m
    if k is None:
        bound, bound_params = f"SELECT {mark}::float8 AS t", [outer]
    else:
        bound = (
            f"SELECT COALESCE((SELECT approx FROM box WHERE approx <= {mark} "
            f"ORDER BY approx LIMIT 1 OFFSET {mark}), {mark}::float8) AS t"
        )
        bound_params = [outer, k - 1, outer]
    paging, paging_params = _paging(selection, dialect)
    text = (
        f"WITH box AS MATERIALIZED (SELECT {alias}.id AS row_id, {geom} AS geom, "
        f"{approx} AS approx "
        f"{rows}), "
        f"bound AS ({bound}), "
        f"measured AS MATERIALIZED (SELECT b.row_id, b.approx, "
        f"{dialect.metric_distance('b')} AS distance_m FROM box b, bound "
        f"WHERE b.approx <= LEAST({mark}, bound.t + {mark}) "
        f"OR b.approx BETWEEN {mark} AND {mark}), "
        f"counted AS (SELECT (SELECT count(*) FROM box WHERE approx < {mark}) "
        f"+ (SELECT count(*) FROM measured WHERE approx >= {mark} AND distance_m <= {mark}) "
        f"AS total) "
        f"SELECT p.row_id, p.distance_m, counted.total FROM counted LEFT JOIN LATERAL "
        f"(SELECT row_id, distance_m FROM measured WHERE distance_m <= {mark} "
        f"ORDER BY distance_m, row_id{paging}) AS p ON true"
    )
    lon, lat = local.lon, local.lat
    params: list[object] = [*approx_params, *row_params, *bound_params]
    params += [int(srid), lon, lat, int(srid)]
    params += [outer, 2 * local.error_m, inner, outer]
    params += [inner, inner, float(radius_m)]
    params += [float(radius_m), *paging_params]
    return text, params


def nearest_ids(
    ids: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    local: LocalMetric,
    radius_m: float,
    selection: Selection,
    project: Projection,
) -> tuple[np.ndarray, np.ndarray, int]:
    """``knn_sql`` in numpy, for a backend that reads the box's points and projects here:
    the page's ids and exact distances (nearest first, then by id) and the total within
    ``radius_m``, projecting the candidates and the ring only."""
    approx = local.distance(lon, lat)
    outer = float(radius_m) + local.error_m
    inner = float(radius_m) - local.error_m
    k = _reach(selection)
    within = approx[approx <= outer]
    t = outer if k is None or len(within) < k else float(np.partition(within, k - 1)[k - 1])
    chosen = (approx <= min(outer, t + 2 * local.error_m)) | ((approx >= inner) & (approx <= outer))
    x, y = project(np.array([local.lon]), np.array([local.lat]))
    px, py = project(lon[chosen], lat[chosen])
    exact = np.hypot(px - x[0], py - y[0])
    kept_ids, kept_approx = ids[chosen], approx[chosen]
    total = int(np.count_nonzero(approx < inner))
    total += int(np.count_nonzero((kept_approx >= inner) & (exact <= radius_m)))
    keep = exact <= radius_m
    kept_ids, exact = kept_ids[keep], exact[keep]
    order = np.lexsort((kept_ids, exact))  # by distance, then id
    start = selection.offset
    stop = None if selection.limit is None else start + selection.limit
    return kept_ids[order][start:stop], exact[order][start:stop], total
