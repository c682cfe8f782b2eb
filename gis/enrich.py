"""Enrichment of report locations: snap to the street network and look up every zone layer.

``CityGIS`` builds its spatial indexes once per city; ``enrich`` is vectorized over arrays
of points and serves one report (the API) or a million (imports) through the same code.
All distances are computed in the city's metric CRS, in metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from voirie.city import City, ZoneLayer
from voirie.gis.layers import load_streets, load_zones
from voirie.gis.streetnames import key_array, normalize_many, streets_from_addresses
from voirie.model import Flag

# Half-length of the stretch of segment used to read its direction at the snapped point.
_DIRECTION_STEP_M = 0.5


@dataclass(frozen=True)
class ZoneIndex:
    """One zone layer with its spatial index and precomputed boundaries."""

    layer: ZoneLayer
    zones: gpd.GeoDataFrame
    tree: shapely.STRtree
    boundaries: np.ndarray


class CityGIS:
    """A city's reference layers with their indexes, built once and reused for every report."""

    def __init__(self, city: City) -> None:
        self.city = city
        self.to_metric = Transformer.from_crs(4326, city.metric_crs, always_xy=True)
        self.to_wgs84 = Transformer.from_crs(city.metric_crs, 4326, always_xy=True)
        street_layer = city.config.streets
        self.max_snap_distance_m = street_layer.max_snap_distance_m if street_layer else 0.0
        self.streets = load_streets(city, street_layer) if street_layer else None
        self.address_match_radius_m = street_layer.address_match_radius_m if street_layer else 0.0
        self.streets_geometry: np.ndarray = (
            self.streets.geometry.to_numpy()
            if self.streets is not None
            else np.array([], dtype=object)
        )
        self.street_tree = (
            shapely.STRtree(self.streets_geometry) if self.streets is not None else None
        )
        # Comparison keys of every segment's street name (None when unnamed), computed once.
        self.street_keys: np.ndarray = (
            key_array(normalize_many(self.streets["street_name"]))
            if self.streets is not None
            else np.array([], dtype=object)
        )
        self.zones: dict[str, ZoneIndex] = {}
        for layer in city.config.zones:
            zones = load_zones(city, layer)
            self.zones[layer.name] = ZoneIndex(
                layer=layer,
                zones=zones,
                tree=shapely.STRtree(zones.geometry.values),
                boundaries=shapely.boundary(zones.geometry.values),
            )

    def project(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """WGS84 longitude/latitude to the city's metric x/y."""
        x, y = self.to_metric.transform(lon, lat)
        return np.asarray(x, dtype=float), np.asarray(y, dtype=float)

    def enrich(
        self, lon: np.ndarray, lat: np.ndarray, address: np.ndarray | None = None
    ) -> pd.DataFrame:
        """Street and zone context for each point, one row per input point, same order.

        With ``address`` (one postal address per point, ``None`` where unknown), a point
        is snapped to the nearest segment of the street its address names when one lies
        within ``address_match_radius_m`` (``snap_method`` ``address_match``); otherwise,
        and without addresses, to the nearest segment (``nearest``).
        """
        x, y = self.project(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
        points = shapely.points(x, y)
        out = pd.DataFrame({"x": x, "y": y})
        out = out.join(self._snap(points, address))
        for name, index in self.zones.items():
            out = out.join(_zone_lookup(points, index, name))
        return self._flags(out)

    def _snap(self, points: np.ndarray, address: np.ndarray | None = None) -> pd.DataFrame:
        """Segment each point snaps to within the maximum distance, with its linear reference."""
        n = len(points)
        frame = pd.DataFrame(
            {
                "segment_id": pd.Series([None] * n, dtype="string"),
                "street_name": pd.Series([None] * n, dtype="string"),
                "snap_distance_m": np.full(n, np.nan),
                "position_m": np.full(n, np.nan),
                "side": pd.Series([None] * n, dtype="string"),
                "snap_lon": np.full(n, np.nan),
                "snap_lat": np.full(n, np.nan),
                "snap_method": pd.Series([None] * n, dtype="string"),
            }
        )
        if self.streets is None or self.street_tree is None or n == 0:
            return frame
        (point_idx, seg_idx), dist = self.street_tree.query_nearest(
            points, max_distance=self.max_snap_distance_m, return_distance=True
        )
        # query_nearest returns every equidistant segment; keep the first per point.
        point_idx, first = np.unique(point_idx, return_index=True)
        seg_idx, dist = seg_idx[first], dist[first]
        method = np.full(len(point_idx), "nearest", dtype=object)
        if address is not None:
            if len(address) != n:
                raise ValueError(f"{len(address)} addresses for {n} points")
            match_idx, match_seg, match_dist = self._address_matches(points, address)
            # A match lies within the maximum distance, so its point has a nearest row.
            rows = np.searchsorted(point_idx, match_idx)
            found = rows < len(point_idx)
            found[found] = point_idx[rows[found]] == match_idx[found]
            rows, match_seg, match_dist = rows[found], match_seg[found], match_dist[found]
            seg_idx[rows], dist[rows], method[rows] = match_seg, match_dist, "address_match"
        self._linear_reference(frame, points, point_idx, seg_idx, dist, method)
        return frame

    def _address_matches(
        self, points: np.ndarray, address: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per point, the nearest segment near it named as its address's street.

        Returns sorted point indexes, their segments and distances, for the points that
        have such a segment within the matching radius (and the maximum snap distance).
        """
        assert self.street_tree is not None
        keys = key_array(streets_from_addresses(address))
        with_key = np.flatnonzero(pd.notna(keys))
        radius = min(self.address_match_radius_m, self.max_snap_distance_m)
        empty = np.array([], dtype=np.intp)
        if len(with_key) == 0 or radius <= 0:
            return empty, empty, np.array([], dtype=float)
        local, seg = self.street_tree.query(points[with_key], predicate="dwithin", distance=radius)
        point = with_key[local]
        named = self.street_keys[seg] == keys[point]
        point, seg = point[named], seg[named]
        dist = shapely.distance(points[point], self.streets_geometry[seg])
        # Nearest first per point; equal distances broken by segment order, deterministically.
        order = np.lexsort((seg, dist, point))
        point, seg, dist = point[order], seg[order], dist[order]
        point, first = np.unique(point, return_index=True)
        return point, seg[first], dist[first]

    def _linear_reference(
        self,
        frame: pd.DataFrame,
        points: np.ndarray,
        point_idx: np.ndarray,
        seg_idx: np.ndarray,
        dist: np.ndarray,
        method: np.ndarray,
    ) -> None:
        """Fill ``frame``'s rows ``point_idx`` with the snap onto segments ``seg_idx``."""
        assert self.streets is not None
        lines = self.streets_geometry[seg_idx]
        pts = points[point_idx]
        position = shapely.line_locate_point(lines, pts)
        snapped = shapely.line_interpolate_point(lines, position)
        side = _side(lines, position, pts, snapped)
        sx, sy = shapely.get_x(snapped), shapely.get_y(snapped)
        slon, slat = self.to_wgs84.transform(sx, sy)
        frame.loc[point_idx, "segment_id"] = self.streets["segment_id"].to_numpy()[seg_idx]
        frame.loc[point_idx, "street_name"] = self.streets["street_name"].to_numpy()[seg_idx]
        frame.loc[point_idx, "snap_distance_m"] = dist
        frame.loc[point_idx, "position_m"] = position
        frame.loc[point_idx, "side"] = side
        frame.loc[point_idx, "snap_lon"] = slon
        frame.loc[point_idx, "snap_lat"] = slat
        frame.loc[point_idx, "snap_method"] = method

    def _flags(self, out: pd.DataFrame) -> pd.DataFrame:
        """off_network, outside_territory and near_boundary, from the columns computed."""
        territory = self.city.config.territory.layer
        required = [name for name, z in self.zones.items() if z.layer.required]
        out[Flag.OUTSIDE_TERRITORY] = out[f"zone_{territory}"].isna().to_numpy()
        # Off the network only means something where there is a network to be off.
        has_streets = self.streets is not None
        out[Flag.OFF_NETWORK] = (
            out["segment_id"].isna().to_numpy() & ~out[Flag.OUTSIDE_TERRITORY] & has_streets
        )
        boundary = out[[f"zone_{name}_boundary_m" for name in required]]
        out["boundary_distance_m"] = boundary.min(axis=1, skipna=True)
        out[Flag.NEAR_BOUNDARY] = (
            out["boundary_distance_m"] < self.city.config.near_boundary_m
        ).to_numpy()
        return out


def _side(
    lines: np.ndarray, position: np.ndarray, points: np.ndarray, snapped: np.ndarray
) -> np.ndarray:
    """``left``/``right`` of each segment's digitised direction, ``None`` when on the line."""
    length = shapely.length(lines)
    before = shapely.line_interpolate_point(lines, np.maximum(position - _DIRECTION_STEP_M, 0))
    after = shapely.line_interpolate_point(
        lines, np.minimum(position + _DIRECTION_STEP_M, length)
    )
    dx = shapely.get_x(after) - shapely.get_x(before)
    dy = shapely.get_y(after) - shapely.get_y(before)
    vx = shapely.get_x(points) - shapely.get_x(snapped)
    vy = shapely.get_y(points) - shapely.get_y(snapped)
    cross = dx * vy - dy * vx
    side = np.full(len(cross), None, dtype=object)
    side[cross > 0] = "left"
    side[cross < 0] = "right"
    return side


def _zone_lookup(points: np.ndarray, index: ZoneIndex, name: str) -> pd.DataFrame:
    """Zone code, name and distance to the zone's edge for every point of one layer."""
    n = len(points)
    code = pd.Series([None] * n, dtype="string")
    label = pd.Series([None] * n, dtype="string")
    boundary_m = np.full(n, np.nan)
    point_idx, zone_idx = index.tree.query(points, predicate="intersects")
    # A point on a shared edge intersects two zones; keep the first, deterministically.
    point_idx, first = np.unique(point_idx, return_index=True)
    zone_idx = zone_idx[first]
    if len(point_idx):
        code.iloc[point_idx] = index.zones["code"].to_numpy()[zone_idx]
        label.iloc[point_idx] = index.zones["name"].to_numpy()[zone_idx]
        boundary_m[point_idx] = shapely.distance(points[point_idx], index.boundaries[zone_idx])
    return pd.DataFrame(
        {f"zone_{name}": code, f"zone_{name}_name": label, f"zone_{name}_boundary_m": boundary_m}
    )
