"""The nearest street edge from ``EdgeGrid`` and the snap's radius cascade: the same edge,
distance and position as the reference searches, ties included.

The reference for one radius is the STRtree box search (``Edges.near``, then the nearest
pair within the radius); for the snap as a whole, GEOS ``STRtree.query_nearest`` up to the
maximum snap distance, measured on the lines' edges, as the snap did before the cascade.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voirie.gis.edges import EdgeGrid, Edges, Located, nearest_per_point
from voirie.gis.enrich import CityGIS

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
COORD = st.floats(-50.0, 50.0, allow_nan=False)
# Lines on a coarse lattice: many exact ties between edges, and edges shared by lines.
LATTICE = st.integers(-8, 8).map(lambda i: i * 5.0)
LINES = st.lists(
    st.lists(st.tuples(LATTICE, LATTICE), min_size=2, max_size=5),
    min_size=1,
    max_size=6,
)


def _tree_nearest(edges: Edges, x: np.ndarray, y: np.ndarray, radius: float) -> Located:
    near = edges.near(x, y, radius)
    return nearest_per_point(near, near.distance <= radius)


def _same(a: Located, b: Located) -> None:
    for field in ("point", "edge", "distance", "fraction"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


@SETTINGS
@given(
    LINES,
    st.lists(st.tuples(COORD, COORD), min_size=1, max_size=20),
    st.sampled_from([3.0, 7.0, 12.5]),
    st.sampled_from([1.0, 4.0, 20.0]),
)
def test_grid_nearest_equals_the_tree_search(
    lines: list[list[tuple[float, float]]],
    points: list[tuple[float, float]],
    radius: float,
    cell: float,
) -> None:
    """Arbitrary lines (ties, shared and zero-length edges), any radius up to the grid's,
    any cell size: the grid's nearest edge within the radius is the tree search's."""
    edges = Edges(np.array([shapely.LineString(line) for line in lines], dtype=object))
    grid = EdgeGrid(edges, 12.5, cell_m=cell)
    x, y = (np.array(values) for values in zip(*points, strict=True))
    _same(grid.nearest_within(x, y, radius), _tree_nearest(edges, x, y, radius))


@pytest.fixture(scope="module")
def spread(paris_report_points: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Real report positions moved by up to a few hundred metres: points at every
    distance from the network, up to beyond the maximum snap distance."""
    x, y = paris_report_points
    rng = np.random.default_rng(11)
    scale = rng.choice([15.0, 60.0, 150.0], len(x))
    return x + rng.normal(0, scale), y + rng.normal(0, scale)


def test_paris_grid_equals_the_tree_search(
    paris_gis: CityGIS, spread: tuple[np.ndarray, np.ndarray]
) -> None:
    edges = paris_gis.edges
    assert edges is not None
    assert edges.grid is not None
    x, y = spread
    radius = edges.grid.radius
    _same(edges.nearest_within(x, y, radius), _tree_nearest(edges, x, y, radius))


def test_snap_cascade_equals_geos_nearest(
    paris_gis: CityGIS, spread: tuple[np.ndarray, np.ndarray]
) -> None:
    """Every point's nearest segment (edge, distance, fraction) is the one found from
    GEOS's nearest lines up to the maximum distance, and none beyond it."""
    assert paris_gis.street_tree is not None
    assert paris_gis.edges is not None
    x, y = spread
    snap = paris_gis.snap(x, y)
    point, line = paris_gis.street_tree.query_nearest(
        shapely.points(x, y), max_distance=paris_gis.max_snap_distance_m
    )
    geos = nearest_per_point(paris_gis.edges.locate(x, y, *paris_gis.edges.of_lines(point, line)))
    snapped = np.flatnonzero(snap.segment >= 0)
    # Some points lie beyond the first radii, some beyond the maximum distance.
    assert np.sum(snap.distance[snapped] > 60) > 100
    assert len(snapped) < len(x)
    np.testing.assert_array_equal(snapped, geos.point)
    np.testing.assert_array_equal(snap.edge[snapped], geos.edge)
    np.testing.assert_array_equal(snap.distance[snapped], geos.distance)
    np.testing.assert_array_equal(snap.fraction[snapped], geos.fraction)
