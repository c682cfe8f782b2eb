"""``Edges`` finds the edges near a point through an STRtree over its lines (a line's box
holds its edges' boxes), not one over every edge: the (point, edge) pairs are exactly
those an STRtree over the edges gives (boxes that only touch included), sorted by point,
and the GIS keeps no geometry per edge (the cache then has none to rebuild at a start)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voirie.gis.edges import Edges
from voirie.gis.enrich import CityGIS

SETTINGS = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
# Lines and points on a coarse lattice, radii of whole units: boxes that touch exactly.
LATTICE = st.integers(-8, 8).map(lambda i: i * 5.0)
LINES = st.lists(
    st.lists(st.tuples(LATTICE, LATTICE), min_size=2, max_size=5), min_size=1, max_size=6
)


def _edge_tree_pairs(
    edges: Edges, x: np.ndarray, y: np.ndarray, radius: float
) -> set[tuple[int, int]]:
    """The (point, edge) pairs of a box search in an STRtree over the edges themselves."""
    segments = np.stack(
        [np.column_stack([edges.ax, edges.ay]), np.column_stack([edges.bx, edges.by])], axis=1
    )
    tree = shapely.STRtree(shapely.linestrings(segments))
    point, edge = tree.query(shapely.box(x - radius, y - radius, x + radius, y + radius))
    return set(zip(point.tolist(), edge.tolist(), strict=True))


def _check(edges: Edges, x: np.ndarray, y: np.ndarray, radius: float) -> None:
    point, edge = edges.pairs_near(x, y, radius)
    assert (np.diff(point) >= 0).all()
    pairs = list(zip(point.tolist(), edge.tolist(), strict=True))
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == _edge_tree_pairs(edges, x, y, radius)
    for i in range(min(len(x), 20)):
        one = edges.edges_near_one(float(x[i]), float(y[i]), radius)
        assert sorted(one.tolist()) == sorted(e for p, e in pairs if p == i)


@SETTINGS
@given(
    LINES,
    st.lists(st.tuples(LATTICE, LATTICE), min_size=1, max_size=8),
    st.sampled_from([0.0, 2.5, 5.0, 10.0, 30.0]),
)
def test_the_pairs_are_those_of_a_tree_over_the_edges(
    lines: list[list[tuple[float, float]]], points: list[tuple[float, float]], radius: float
) -> None:
    edges = Edges(np.array([shapely.LineString(line) for line in lines], dtype=object))
    x, y = (np.array(values) for values in zip(*points, strict=True))
    _check(edges, x, y, radius)


@pytest.mark.parametrize("radius", [10.0, 30.0, 60.0, 150.0])
def test_paris_pairs_are_those_of_a_tree_over_the_edges(
    paris_gis: CityGIS, paris_report_points: tuple[np.ndarray, np.ndarray], radius: float
) -> None:
    assert paris_gis.edges is not None
    x, y = paris_report_points
    _check(paris_gis.edges, x[:3000], y[:3000], radius)


def test_the_gis_keeps_no_geometry_per_edge(paris_gis: CityGIS) -> None:
    """The only tree over the streets is the one over their lines, shared with the GIS."""
    assert paris_gis.edges is not None
    trees = [v for v in vars(paris_gis.edges).values() if isinstance(v, shapely.STRtree)]
    assert len(trees) == 1
    assert trees[0] is paris_gis.street_tree
