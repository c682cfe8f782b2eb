"""Properties of snapping to the street network, on the real Paris layers (Hypothesis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voirie.gis.enrich import CityGIS, _side

SETTINGS = settings(
    max_examples=100, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
LON = st.floats(2.25, 2.42, allow_nan=False)
LAT = st.floats(48.82, 48.90, allow_nan=False)
POINTS = st.lists(st.tuples(LON, LAT), min_size=1, max_size=8)
# Points on the network itself: a segment (modulo their number) and a fraction of its length.
ON_NETWORK = st.tuples(st.integers(0, 10**6), st.floats(0, 1))


def _enrich(gis: CityGIS, points: list[tuple[float, float]]) -> pd.DataFrame:
    lon, lat = (np.array(values, dtype=float) for values in zip(*points, strict=True))
    return gis.enrich(lon, lat)


def _segments(gis: CityGIS, out: pd.DataFrame) -> np.ndarray:
    assert gis.streets is not None
    return gis.streets.set_index("segment_id").geometry.loc[out["segment_id"]].to_numpy()


def _check_snap(gis: CityGIS, out: pd.DataFrame) -> None:
    """Every invariant of one enrichment's snap (without addresses)."""
    assert gis.street_tree is not None
    points = shapely.points(out["x"].to_numpy(), out["y"].to_numpy())
    snapped_rows = out["segment_id"].notna().to_numpy()
    # Beyond the maximum distance, no segment at all; within it, always one.
    far = points[~snapped_rows]
    assert len(gis.street_tree.query(far, predicate="dwithin",
                                     distance=gis.max_snap_distance_m)[0]) == 0
    out, points = out[snapped_rows], points[snapped_rows]
    if not len(out):
        return
    assert (out["snap_method"] == "nearest").all()
    distance = out["snap_distance_m"].to_numpy()
    assert np.all(distance >= 0)
    assert np.all(distance <= gis.max_snap_distance_m)
    segments = _segments(gis, out)
    assert np.allclose(shapely.distance(points, segments), distance, atol=1e-6)
    # The snapped point lies on its segment, at its linear position.
    x, y = gis.project(out["snap_lon"].to_numpy(), out["snap_lat"].to_numpy())
    snapped = shapely.points(x, y)
    assert np.all(shapely.distance(segments, snapped) < 0.01)
    position = out["position_m"].to_numpy()
    length = shapely.length(segments)
    assert np.all((position >= 0) & (position <= length))
    at_position = shapely.line_interpolate_point(segments, position)
    assert np.all(shapely.distance(at_position, snapped) < 0.01)
    # No other segment is nearer than the one snapped to.
    for point, dist in zip(points, distance, strict=True):
        candidates = gis.street_tree.query(point, predicate="dwithin", distance=dist + 0.01)
        assert len(candidates)
        nearest = shapely.distance(point, gis.streets_geometry[candidates]).min()
        assert nearest >= dist - 1e-9


@SETTINGS
@given(POINTS)
def test_snap_invariants_anywhere_in_paris(
    paris_gis: CityGIS, points: list[tuple[float, float]]
) -> None:
    _check_snap(paris_gis, _enrich(paris_gis, points))


@SETTINGS
@given(st.lists(ON_NETWORK, min_size=1, max_size=8))
def test_snap_invariants_on_the_network(
    paris_gis: CityGIS, picks: list[tuple[int, float]]
) -> None:
    count = len(paris_gis.streets_geometry)
    segments = paris_gis.streets_geometry[[i % count for i, _ in picks]]
    fractions = np.array([f for _, f in picks])
    on_line = shapely.line_interpolate_point(segments, fractions, normalized=True)
    lon, lat = paris_gis.to_wgs84.transform(shapely.get_x(on_line), shapely.get_y(on_line))
    out = paris_gis.enrich(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    _check_snap(paris_gis, out)
    # A point on a street snaps to it (to a segment at most a millimetre away).
    assert out["segment_id"].notna().all()
    assert (out["snap_distance_m"] < 0.001).all()


@SETTINGS
@given(POINTS)
def test_side_flips_with_the_digitising_direction(
    paris_gis: CityGIS, points: list[tuple[float, float]]
) -> None:
    out = _enrich(paris_gis, points)
    out = out[out["segment_id"].notna()]
    if not len(out):
        return
    lines = _segments(paris_gis, out)
    reversed_lines = shapely.reverse(lines)
    pts = shapely.points(out["x"].to_numpy(), out["y"].to_numpy())
    position = shapely.line_locate_point(lines, pts)
    snapped = shapely.line_interpolate_point(lines, position)
    side = _side(lines, position, pts, snapped)
    assert side.tolist() == out["side"].tolist()
    rev_position = shapely.line_locate_point(reversed_lines, pts)
    rev_snapped = shapely.line_interpolate_point(reversed_lines, rev_position)
    assert np.all(shapely.distance(snapped, rev_snapped) < 1e-6)
    reverse_side = _side(reversed_lines, rev_position, pts, rev_snapped)
    opposite = {"left": "right", "right": "left"}
    # A point a hair off its line has no reliable side; any other one flips.
    clear = out["snap_distance_m"].to_numpy() > 0.001
    assert [opposite[s] for s in side[clear]] == reverse_side[clear].tolist()


@SETTINGS
@given(POINTS)
def test_one_row_path_equals_bulk_path(
    paris_gis: CityGIS, points: list[tuple[float, float]]
) -> None:
    bulk = _enrich(paris_gis, points)
    for i, point in enumerate(points):
        one = _enrich(paris_gis, [point])
        pd.testing.assert_frame_equal(one, bulk.iloc[i : i + 1].reset_index(drop=True))
