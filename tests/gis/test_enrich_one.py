"""``CityGIS.enrich_one``'s one-point path against the vectorized one, where they could part.

``enrich_one`` measures one point without arrays of points (``Edges.nearest_one``,
``ZoneGrid.owner_one`` and ``distance_one``, ``_zone_one``): the same cells, candidates and
arithmetic as ``enrich``. They could disagree where a rounding or a tie decides: on the
lines between grid cells, on zone boundaries (a point on the edge shared by two zones, in
overlapping green spaces), on street vertices (two edges at distance 0) and at the snap
radii. These points are checked here on the real Paris layers, first grid by grid in
metric coordinates (exact cell corners), then through ``enrich_one`` against the rows of
one ``enrich`` call; ``tests/test_single_ingest.py`` checks real report places.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

from voirie.gis.edges import UNSETTLED, Edges
from voirie.gis.enrich import CityGIS

SEED = 20
PER_LAYER = 1_500
STREET_POINTS = 1_500


def _plain(value: object) -> object:
    """An enrichment value as ``enrich_one`` gives it: a Python scalar, ``None`` if missing."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if value is None or value is pd.NA or value != value else value


def _boundary_points(gis: CityGIS, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Metric points on every zone layer's boundaries: vertices and edge midpoints (sampled
    per layer), and the same nudged a micrometre to either side."""
    xs, ys = [], []
    for index in gis.zones.values():
        coords = shapely.get_coordinates(shapely.boundary(index.polygons))
        picked = coords[rng.choice(len(coords) - 1, PER_LAYER, replace=False)]
        start = rng.choice(len(coords) - 1, PER_LAYER, replace=False)
        middle = (coords[start] + coords[start + 1]) / 2
        points = np.vstack([picked, middle])
        nudge = rng.choice([-1e-6, 1e-6], size=points.shape)
        points = np.vstack([points, points + nudge])
        xs.append(points[:, 0])
        ys.append(points[:, 1])
    return np.concatenate(xs), np.concatenate(ys)


def _street_points(
    gis: CityGIS, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Metric points on street vertices (two edges at distance 0), and points at the snap
    radii from an edge's middle (perpendicular, either side); each with an address on
    the edge's street (a point nearer another street moves to it within the match radius)."""
    edges = gis.edges
    assert edges is not None
    assert gis.streets is not None
    edge = rng.choice(len(edges.ax), STREET_POINTS, replace=False)
    vx, vy = edges.ax[edge], edges.ay[edge]
    mx, my = (edges.ax[edge] + edges.bx[edge]) / 2, (edges.ay[edge] + edges.by[edge]) / 2
    dx, dy = edges.bx[edge] - edges.ax[edge], edges.by[edge] - edges.ay[edge]
    length = np.maximum(np.hypot(dx, dy), 1e-9)
    nx, ny = -dy / length, dx / length
    reach = rng.choice([30.0, 60.0, 150.0, -30.0, -60.0, -150.0], STREET_POINTS)
    names = gis.streets["street_name"].to_numpy(dtype=object)[edges.line[edge]]
    address = np.array([f"3 {n}" if isinstance(n, str) else None for n in names], dtype=object)
    return np.r_[vx, mx + reach * nx], np.r_[vy, my + reach * ny], np.r_[address, address]


def _cell_corners(cell: float, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The corners of the lattice cells (side ``cell``) holding these points, exactly."""
    return np.floor(x / cell) * cell, np.floor(y / cell) * cell


@pytest.fixture(scope="module")
def metric_points(paris_gis: CityGIS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every kind of point above, with the corners of the edge grid's and each zone grid's
    cells near them; addresses on streets for the street points, none or blank for the
    others."""
    rng = np.random.default_rng(SEED)
    bx, by = _boundary_points(paris_gis, rng)
    sx, sy, street_address = _street_points(paris_gis, rng)
    x, y = np.r_[bx, sx], np.r_[by, sy]
    assert paris_gis.edges is not None
    assert paris_gis.edges.grid is not None
    cells = [paris_gis.edges.grid.cell, *(index.grid.cell for index in paris_gis.zones.values())]
    corners = [_cell_corners(cell, x[::7], y[::7]) for cell in cells]
    x = np.concatenate([x, *(c[0] for c in corners)])
    y = np.concatenate([y, *(c[1] for c in corners)])
    address = np.where(np.arange(len(x)) % 2 == 0, None, "  ").astype(object)
    address[len(bx) : len(bx) + len(sx)] = street_address
    return x, y, address


def test_the_one_point_grids_answer_as_the_vectorized_ones(
    paris_gis: CityGIS, metric_points: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    x, y, _ = metric_points
    edges = paris_gis.edges
    assert isinstance(edges, Edges)
    for radius in (30.0, 60.0, 150.0):
        bulk = edges.nearest_within(x, y, radius)
        found = dict(
            zip(
                bulk.point.tolist(),
                zip(
                    bulk.edge.tolist(), bulk.distance.tolist(), bulk.fraction.tolist(), strict=True
                ),
                strict=True,
            )
        )
        one = [edges.nearest_one(float(x[i]), float(y[i]), radius) for i in range(len(x))]
        assert {i: tuple(n) for i, n in enumerate(one) if n is not None} == found
    unsettled = 0
    for index in paris_gis.zones.values():
        owner = index.grid.owner_of(x, y)
        assert [
            index.grid.owner_one(float(a), float(b)) for a, b in zip(x, y, strict=True)
        ] == owner.tolist()
        unsettled += int((owner == UNSETTLED).sum())
        inside = np.flatnonzero(owner >= 0)
        bulk = index.grid.distance(x[inside], y[inside], owner[inside])
        one = [index.grid.distance_one(float(x[i]), float(y[i]), int(owner[i])) for i in inside]
        assert one == bulk.tolist()
    # Points on boundaries are the ones the grids leave to the polygons.
    assert unsettled > 1_000


def test_enrich_one_on_zone_boundaries_and_street_vertices_as_in_bulk(
    paris_gis: CityGIS, metric_points: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    x, y, address = metric_points
    lon, lat = (np.asarray(v) for v in paris_gis.to_wgs84.transform(x, y))
    bulk = paris_gis.enrich(lon, lat, address)
    # The sample holds the cases where the two paths could part.
    assert bulk["zone_espace_vert"].notna().sum() > 1_000
    assert (bulk["zone_arrondissement_boundary_m"] < 1e-3).sum() > 1_000
    assert (bulk["snap_distance_m"] < 1e-6).sum() > 500
    assert bulk["snap_method"].eq("address_match").sum() > 1_000
    assert bulk["outside_territory"].sum() > 10
    assert bulk["off_network"].sum() > 10
    columns = [str(name) for name in bulk.columns]
    for i in range(len(lon)):
        one = paris_gis.enrich_one(float(lon[i]), float(lat[i]), address[i])
        row = {name: _plain(bulk[name].array[i]) for name in columns}
        assert list(one) == columns
        assert one == row, (i, {k: (one[k], row[k]) for k in columns if one[k] != row[k]})
