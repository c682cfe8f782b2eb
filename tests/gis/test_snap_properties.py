"""Properties of snapping to the street network, on the real Paris layers (Hypothesis)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voirie.gis.edges import Edges, nearest_per_point
from voirie.gis.enrich import CityGIS
from voirie.gis.streetnames import address_keys, normalize_keys
from voirie.ingest.sources import read_csv

REPORTS = Path(__file__).parents[2] / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    database=None,
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
    assert (
        len(gis.street_tree.query(far, predicate="dwithin", distance=gis.max_snap_distance_m)[0])
        == 0
    )
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
def test_snap_invariants_on_the_network(paris_gis: CityGIS, picks: list[tuple[int, float]]) -> None:
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


def _side_on(lines: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Side of each point from its own line alone (point ``i`` against line ``i``)."""
    edges = Edges(lines)
    point, edge = edges.of_lines(np.arange(len(lines)), np.arange(len(lines)))
    best = nearest_per_point(edges.locate(x, y, point, edge))
    return edges.side(best.edge, x[best.point], y[best.point])


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
    x, y = out["x"].to_numpy(), out["y"].to_numpy()
    side = _side_on(lines, x, y)
    assert side.tolist() == out["side"].tolist()
    reverse_side = _side_on(shapely.reverse(lines), x, y)
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


@pytest.fixture(scope="module")
def reports() -> pd.DataFrame:
    """Positions and addresses of the bundled Paris reports."""
    raw = read_csv(REPORTS).rows
    return (
        pd.DataFrame(
            {
                "lon": pd.to_numeric(raw["longitude"], errors="coerce"),
                "lat": pd.to_numeric(raw["latitude"], errors="coerce"),
                "address": raw["adresse"].to_numpy(dtype=object),
            }
        )
        .dropna(subset=["lon", "lat"])
        .reset_index(drop=True)
    )


# A real report, moved by up to about 50 m, keeping its address.
NEAR_REPORTS = st.lists(
    st.tuples(st.integers(0, 10**6), st.floats(-5e-4, 5e-4), st.floats(-4e-4, 4e-4)),
    min_size=1,
    max_size=8,
)


@SETTINGS
@given(NEAR_REPORTS)
def test_address_matching_invariants(
    paris_gis: CityGIS, reports: pd.DataFrame, picks: list[tuple[int, float, float]]
) -> None:
    rows = reports.iloc[[i % len(reports) for i, _, _ in picks]]
    lon = rows["lon"].to_numpy() + np.array([dx for _, dx, _ in picks])
    lat = rows["lat"].to_numpy() + np.array([dy for _, _, dy in picks])
    address = rows["address"].to_numpy(dtype=object)
    bulk = paris_gis.enrich(lon, lat, address)
    # The one-row path (the API's) gives the same rows.
    for i in range(len(picks)):
        one = paris_gis.enrich(lon[i : i + 1], lat[i : i + 1], address[i : i + 1])
        pd.testing.assert_frame_equal(one, bulk.iloc[i : i + 1].reset_index(drop=True))
    # (An off-network point has no snap_method: <NA>, not a match.)
    is_match = (bulk["snap_method"] == "address_match").fillna(False).to_numpy(dtype=bool)
    matched = bulk[is_match]
    if not len(matched):
        return
    # An address match is a segment of the address's street, within the matching radius,
    # and no segment of that street is nearer.
    wanted = address_keys(address[is_match])
    assert (normalize_keys(matched["street_name"]) == wanted).all()
    distance = matched["snap_distance_m"].to_numpy()
    assert np.all((distance >= 0) & (distance <= paris_gis.address_match_radius_m))
    points = shapely.points(matched["x"].to_numpy(), matched["y"].to_numpy())
    for point, dist, key in zip(points, distance, wanted, strict=True):
        near = paris_gis.street_tree.query(point, predicate="dwithin", distance=dist + 1e-6)
        same_street = near[paris_gis.street_keys[near] == key]
        assert shapely.distance(point, paris_gis.streets_geometry[same_street]).min() >= (
            dist - 1e-6
        )
