"""Distance to a zone's edge through ``ZoneGrid``: equal to GEOS's on every point.

GEOS ``shapely.distance(point, polygon.boundary)`` is the reference: the grid of candidate
edges must give the same distance (up to float rounding) for real Paris reports, for any
point of the Paris territory and for arbitrary polygons with holes and several parts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voirie.gis.edges import UNSETTLED, ZoneGrid
from voirie.gis.enrich import CityGIS, ZoneIndex

TOLERANCE_M = 1e-6
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _geos(x: np.ndarray, y: np.ndarray, boundaries: np.ndarray) -> np.ndarray:
    distance: np.ndarray = shapely.distance(shapely.points(x, y), boundaries)
    return distance


@pytest.fixture(scope="module")
def reports(paris_report_points: tuple[np.ndarray, np.ndarray]) -> pd.DataFrame:
    """Every bundled report with coordinates, and the same reports moved by 15 m jitter."""
    x, y = paris_report_points
    rng = np.random.default_rng(7)
    jitter = rng.normal(0.0, 15.0, (2, len(x)))
    return pd.DataFrame(
        {"x": np.concatenate([x, x + jitter[0]]), "y": np.concatenate([y, y + jitter[1]])}
    )


def test_real_reports_match_geos_for_their_zone(paris_gis: CityGIS, reports: pd.DataFrame) -> None:
    """The enrichment's boundary distance of every real report (and jittered copy), per
    zone layer, equals GEOS's distance to the boundary of the zone it was assigned."""
    x, y = reports["x"].to_numpy(), reports["y"].to_numpy()
    lon, lat = paris_gis.to_wgs84.transform(x, y)
    out = paris_gis.enrich(np.asarray(lon), np.asarray(lat))
    assert len(out) > 40_000
    for name, index in paris_gis.zones.items():
        column = out[f"zone_{name}"]
        codes, found = column.to_numpy(dtype=object, na_value=None), column.notna().to_numpy()
        assert found.mean() > (0.99 if index.layer.required else 0.01)
        # Codes are unique in arrondissements and quartiers; green spaces may repeat one,
        # so compare against the zone found by the index rather than by code there.
        zone = pd.Series(np.arange(len(index.codes)), index=index.codes)
        zone = zone[~zone.index.duplicated(keep=False)]
        rows = np.flatnonzero(found & column.isin(zone.index).to_numpy())
        expected = _geos(
            out["x"].to_numpy()[rows],
            out["y"].to_numpy()[rows],
            index.grid.boundaries[zone.loc[codes[rows]].to_numpy()],
        )
        got = out[f"zone_{name}_boundary_m"].to_numpy()[rows]
        assert np.abs(got - expected).max() <= TOLERANCE_M, name
        assert np.isnan(out[f"zone_{name}_boundary_m"].to_numpy()[~found]).all()


def test_every_zone_matches_geos_on_real_reports(paris_gis: CityGIS, reports: pd.DataFrame) -> None:
    """For every report, the distance to the boundary of a random zone of each layer
    (mostly not the report's own: far points, dropped cells, points outside the box)."""
    x, y = reports["x"].to_numpy(), reports["y"].to_numpy()
    rng = np.random.default_rng(11)
    for index in paris_gis.zones.values():
        zone = rng.integers(0, len(index.codes), len(x))
        got = index.grid.distance(x, y, zone)
        expected = _geos(x, y, index.grid.boundaries[zone])
        assert np.abs(got - expected).max() <= TOLERANCE_M


@SETTINGS
@given(
    st.lists(
        st.tuples(st.floats(643_000, 661_000), st.floats(6_857_000, 6_869_000)),
        min_size=1,
        max_size=50,
    ),
    st.integers(0, 10**6),
)
def test_any_point_of_paris_matches_geos(
    paris_gis: CityGIS, points: list[tuple[float, float]], seed: int
) -> None:
    """Points anywhere over Paris (Lambert-93), each against the zone it lies in when it
    has one, else a random zone, in every layer."""
    x, y = (np.array(values) for values in zip(*points, strict=True))
    rng = np.random.default_rng(seed)
    for index in paris_gis.zones.values():
        zone = rng.integers(0, len(index.codes), len(x))
        point, inside = index.tree.query(shapely.points(x, y), predicate="intersects")
        zone[point] = inside
        got = index.grid.distance(x, y, zone)
        expected = _geos(x, y, index.grid.boundaries[zone])
        assert np.abs(got - expected).max() <= TOLERANCE_M


def _star(cx: float, cy: float, radii: list[float]) -> shapely.Polygon:
    """A star-shaped polygon around (cx, cy), one vertex per radius, evenly turning."""
    angle = np.linspace(0, 2 * np.pi, len(radii), endpoint=False)
    return shapely.Polygon(
        np.column_stack([cx + np.cos(angle) * radii, cy + np.sin(angle) * radii])
    )


RADII = st.lists(st.floats(1.0, 100.0), min_size=3, max_size=40)
CENTRES = st.tuples(st.floats(-200, 200), st.floats(-200, 200))


@st.composite
def polygons(draw: st.DrawFn) -> shapely.Geometry:
    """Valid polygons: stars, stars with a hole, or several stars as one multipolygon."""
    shapes = [_star(*draw(CENTRES), draw(RADII)) for _ in range(draw(st.integers(1, 3)))]
    shape = shapely.make_valid(shapely.union_all(shapes))
    if draw(st.booleans()):
        shape = shape.difference(shapely.Point(draw(CENTRES)).buffer(draw(st.floats(1, 60))))
    polygonal = [
        part
        for part in shapely.get_parts(shape)
        if shapely.get_type_id(part) in (3, 6) and not part.is_empty
    ]
    return shapely.union_all(polygonal) if polygonal else _star(0, 0, [10, 10, 10])


@SETTINGS
@given(
    st.lists(polygons(), min_size=1, max_size=4),
    st.lists(st.tuples(st.floats(-350, 350), st.floats(-350, 350)), min_size=1, max_size=60),
    st.sampled_from([0.5, 3.0, 25.0, 400.0]),
    st.integers(0, 10**6),
)
def test_arbitrary_polygons_match_geos(
    shapes: list[shapely.Geometry],
    points: list[tuple[float, float]],
    cell_m: float,
    seed: int,
) -> None:
    """Stars, holes and multipolygons, points inside, outside and on vertices, at cell
    sizes from far below to far above the polygons' size."""
    polygons_ = np.array(shapes, dtype=object)
    shapely.prepare(polygons_)
    boundary = ZoneGrid(polygons_, cell_m)
    rng = np.random.default_rng(seed)
    vertices = shapely.get_coordinates(polygons_)
    on_vertex = vertices[rng.integers(0, len(vertices), 5)]
    xy = np.vstack([np.array(points), on_vertex])
    zone = rng.integers(0, len(polygons_), len(xy))
    got = boundary.distance(xy[:, 0], xy[:, 1], zone)
    expected = _geos(xy[:, 0], xy[:, 1], shapely.boundary(polygons_)[zone])
    assert np.abs(got - expected).max() <= TOLERANCE_M


def test_an_empty_polygon_has_no_distance_and_no_cells() -> None:
    polygons_ = np.array([shapely.Polygon(), _star(5000, 5000, [5, 5, 5, 5])], dtype=object)
    grid = ZoneGrid(polygons_, 1.0)
    x, y = np.array([5000.0, 5000.0]), np.array([5000.0, 5000.0])
    got = grid.distance(x, y, np.array([0, 1]))
    assert np.isnan(got[0])
    assert got[1] == pytest.approx(_geos(x[1:], y[1:], shapely.boundary(polygons_[1:]))[0])
    # The empty polygon's missing box does not stretch the lattice to the origin.
    assert grid.cell == 1.0
    assert list(grid.owner_of(x, y)) == [1, 1]


def _reference_zones(index: ZoneIndex, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each point's zone by point-in-polygon on every zone (the smallest, by area rank,
    where several hold it), ``-1`` where none: the lookup's answer without the grid."""
    point, zone = index.tree.query(shapely.points(x, y), predicate="intersects")
    best = pd.Series(index.area_rank[zone]).groupby(point).idxmax()
    found = np.full(len(x), -1, dtype=np.intp)
    found[best.index.to_numpy()] = zone[best.to_numpy()]
    return found


def test_zones_of_real_reports_are_those_of_point_in_polygon(
    paris_gis: CityGIS, reports: pd.DataFrame
) -> None:
    """The enrichment's zone of every report equals point-in-polygon's, and the grid
    settles most points: the only zone holding them, or none."""
    x, y = reports["x"].to_numpy(), reports["y"].to_numpy()
    lon, lat = paris_gis.to_wgs84.transform(x, y)
    out = paris_gis.enrich(np.asarray(lon), np.asarray(lat))
    x, y = out["x"].to_numpy(), out["y"].to_numpy()
    for name, index in paris_gis.zones.items():
        expected = _reference_zones(index, x, y)
        codes = out[f"zone_{name}"].to_numpy(dtype=object, na_value=None)
        assert list(codes) == [index.codes[z] if z >= 0 else None for z in expected], name
        owner = index.grid.owner_of(x, y)
        settled = owner != UNSETTLED
        assert (owner[settled] == expected[settled]).all()
        assert settled.mean() > 0.5


@SETTINGS
@given(
    st.lists(polygons(), min_size=1, max_size=5),
    st.lists(st.tuples(st.floats(-350, 350), st.floats(-350, 350)), min_size=1, max_size=60),
    st.sampled_from([0.5, 3.0, 25.0]),
)
def test_a_settled_point_lies_in_its_polygon_and_no_other(
    shapes: list[shapely.Geometry], points: list[tuple[float, float]], cell_m: float
) -> None:
    """Overlapping polygons included: a point the grid settles lies in that polygon and
    touches no other, or touches none if settled outside."""
    polygons_ = np.array(shapes, dtype=object)
    xy = np.array(points)
    owner = ZoneGrid(polygons_, cell_m).owner_of(xy[:, 0], xy[:, 1])
    holds = shapely.intersects(polygons_[None, :], shapely.points(xy)[:, None])
    inside, outside = owner >= 0, owner == -1
    assert holds[inside, owner[inside]].all()
    assert (holds[inside].sum(axis=1) == 1).all()
    assert not holds[outside].any()
