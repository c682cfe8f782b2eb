"""``gis.metric``: the box around a point holds every point within the distance, measured
on the WGS84 ellipsoid (``pyproj.Geod``), and not much more (Hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from voirie.gis.metric import SLACK, BBox, bbox_around, widen

GEOD = Geod(ellps="WGS84")
SETTINGS = settings(max_examples=300, deadline=None, database=None)
# Paris, Chicago, and 60° north and south.
PLACES = [(2.3522, 48.8566), (-87.6298, 41.8781), (10.75, 60.0), (-70.0, -60.0)]
PLACE = st.sampled_from(PLACES)
RADIUS = st.floats(1.0, 20_000.0)
AZIMUTH = st.floats(0.0, 360.0, exclude_max=True)
FRACTION = st.floats(0.0, 1.0)


def _inside(bbox: BBox, lon: float, lat: float) -> bool:
    west, south, east, north = bbox
    return west <= lon <= east and south <= lat <= north


def _go(lon: float, lat: float, azimuth: float, distance: float) -> tuple[float, float]:
    to_lon, to_lat, _ = GEOD.fwd(lon, lat, azimuth, distance)
    return float(to_lon), float(to_lat)


@SETTINGS
@given(PLACE, RADIUS, AZIMUTH, FRACTION)
def test_every_point_within_the_distance_lies_in_the_box(
    place: tuple[float, float], radius: float, azimuth: float, fraction: float
) -> None:
    lon, lat = place
    # Up to the distance times SLACK: the bound holds without the projection's allowance.
    to = _go(lon, lat, azimuth, radius * SLACK * fraction)
    assert _inside(bbox_around(lon, lat, radius), *to)


@SETTINGS
@given(PLACE, RADIUS, AZIMUTH, FRACTION, st.floats(0.0, 0.05), st.floats(0.0, 0.05))
def test_a_widened_box_holds_every_point_within_the_distance_of_any_point_inside(
    place: tuple[float, float],
    radius: float,
    azimuth: float,
    fraction: float,
    width: float,
    height: float,
) -> None:
    west, south = place
    box = widen((west, south, west + width, south + height), radius)
    for corner_lon in (west, west + width):
        for corner_lat in (south, south + height):
            to = _go(corner_lon, corner_lat, azimuth, radius * SLACK * fraction)
            assert _inside(box, *to)


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("azimuth", [0.0, 90.0, 180.0, 270.0])
def test_the_box_is_tight_within_two_percent(place: tuple[float, float], azimuth: float) -> None:
    """Points due north, east, south, west at 2 % beyond the bound fall outside it."""
    lon, lat = place
    assert not _inside(
        bbox_around(lon, lat, 5_000.0), *_go(lon, lat, azimuth, 5_000 * SLACK * 1.02)
    )


def test_a_box_reaching_a_pole_spans_every_longitude() -> None:
    west, south, east, north = bbox_around(10.0, 89.99, 5_000.0)
    assert (west, east, north) == (-180.0, 180.0, 90.0)
    assert south < 89.99


def test_zero_distance_is_the_point() -> None:
    assert bbox_around(2.35, 48.86, 0.0) == (2.35, 48.86, 2.35, 48.86)
