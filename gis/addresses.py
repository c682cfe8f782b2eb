"""Reverse geocoding: a postal address for a report that came without one.

The street is the one the report snapped to. When the city provides address points
(``addresses`` in city.yaml: one point per house number, with its street), the house
number is interpolated along the street, from the address points of the same street on
the report's side of it (left or right of the segment) with that side's parity (French
numbering: the parity of most of them, so that one misplaced point does not decide):
``A`` is the nearest of them, ``B`` the nearest lying on the other side of the report
along the segment. The number is read linearly between them at the report's position and
rounded to their parity; without ``B``, it is ``A``'s number.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from voirie.city import AddressLayer, City
from voirie.errors import CityConfigError
from voirie.gis.layers import read_layer
from voirie.gis.streetnames import language_of, normalize_keys

_NUMBER = r"^\s*(\d+)"
# Half-length of the stretch of segment that gives its direction at a point.
_STEP_M = 0.5


def load_addresses(city: City, layer: AddressLayer) -> gpd.GeoDataFrame:
    """Address points in the city's metric CRS with ``number`` (int) and ``street_key``;
    points without a readable number or street are dropped."""
    path = city.path(layer.path)
    frame = read_layer(path, city.metric_crs)
    missing = [
        f"{path}: addresses.{key}: no attribute {name!r} in the layer"
        for key, name in (
            ("number_field", layer.number_field),
            ("street_field", layer.street_field),
        )
        if name not in frame.columns
    ]
    if missing:
        raise CityConfigError(missing)
    number = pd.to_numeric(
        frame[layer.number_field].astype("string").str.extract(_NUMBER)[0], errors="coerce"
    ).to_numpy(dtype=float)
    key = normalize_keys(frame[layer.street_field], language_of(city.config.locale))
    points = frame.geometry.to_numpy()
    keep = np.isfinite(number) & pd.notna(key) & (shapely.get_type_id(points) == 0)
    return gpd.GeoDataFrame(
        {"number": number[keep].astype(np.int64), "street_key": key[keep]},
        geometry=points[keep],
        crs=frame.crs,
    )


class AddressPoints:
    """A city's address points with their spatial index, built once."""

    def __init__(self, frame: gpd.GeoDataFrame, max_distance_m: float) -> None:
        self.points = frame.geometry.to_numpy()
        self.number = frame["number"].to_numpy(dtype=float)
        self.key = frame["street_key"].to_numpy(dtype=object)
        self.tree = shapely.STRtree(self.points)
        self.max_distance_m = max_distance_m

    def house_numbers(
        self,
        x: np.ndarray,
        y: np.ndarray,
        street_key: np.ndarray,
        lines: np.ndarray,
        position: np.ndarray,
    ) -> np.ndarray:
        """House number of each report (``nan`` when no address point of its street is
        near): ``street_key`` of its segment, ``lines`` its segment, ``position`` along it."""
        out = np.full(len(x), np.nan)
        reports = shapely.points(x, y)
        report, point = self.tree.query(reports, predicate="dwithin", distance=self.max_distance_m)
        same = self.key[point] == street_key[report]
        report, point = report[same], point[same]
        if not len(report):
            return out
        distance = shapely.distance(reports[report], self.points[point])
        along = shapely.line_locate_point(lines[report], self.points[point]) - position[report]
        # Only the points on the report's side of the street (all of them when there is
        # none there), and of that side's parity: the parity of most of them (of the
        # nearest one on a tie), so that one misplaced point does not decide.
        same_side = _side(lines[report], self.points[point]) == _side(lines, reports)[report]
        has_same = np.zeros(len(x), dtype=bool)
        has_same[report[same_side]] = True
        keep = same_side | ~has_same[report]
        report, distance, along, number = (
            report[keep],
            distance[keep],
            along[keep],
            self.number[point][keep],
        )
        even = number % 2 == 0
        total = np.bincount(report, minlength=len(x))
        even_share = np.bincount(report, weights=even, minlength=len(x)) / np.maximum(total, 1)
        nearest = _first_per_report(report, distance)
        parity_even = even_share > 0.5
        tie = np.flatnonzero(even_share == 0.5)
        nearest_even = np.zeros(len(x), dtype=bool)
        nearest_even[report[nearest]] = even[nearest]
        parity_even[tie] = nearest_even[tie]
        keep = even == parity_even[report]
        report, distance, along, number = report[keep], distance[keep], along[keep], number[keep]
        # A: the nearest of them; B: the nearest on the other side of the report along
        # the segment. The number is read linearly between them (the report is at 0).
        a = _first_per_report(report, distance)
        out[report[a]] = number[a]
        a_of = np.full(len(x), -1, dtype=np.intp)
        a_of[report[a]] = a
        opposite = (np.sign(along) == -np.sign(along[a_of[report]])) & (along != 0)
        b = np.flatnonzero(opposite)[_first_per_report(report[opposite], distance[opposite])]
        b_report = report[b]
        a_b = a_of[b_report]
        share = along[a_b] / (along[a_b] - along[b])
        guess = number[a_b] + share * (number[b] - number[a_b])
        out[b_report] = number[a_b] + 2 * np.round((guess - number[a_b]) / 2)
        return out


def _side(lines: np.ndarray, points: np.ndarray) -> np.ndarray:
    """+1 left, -1 right, 0 on the line: each point against its line's local direction."""
    position = shapely.line_locate_point(lines, points)
    length = shapely.length(lines)
    before = shapely.line_interpolate_point(lines, np.maximum(position - _STEP_M, 0))
    after = shapely.line_interpolate_point(lines, np.minimum(position + _STEP_M, length))
    bx, by, ax, ay = (
        shapely.get_x(before),
        shapely.get_y(before),
        shapely.get_x(after),
        shapely.get_y(after),
    )
    cross = (ax - bx) * (shapely.get_y(points) - by) - (ay - by) * (shapely.get_x(points) - bx)
    side: np.ndarray = np.sign(cross)
    return side


def _first_per_report(report: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Row of the nearest pair of each report."""
    if not len(report):
        return np.array([], dtype=np.intp)
    order = np.lexsort((distance, report))
    first = np.concatenate(([True], report[order][1:] != report[order][:-1]))
    return order[first]
