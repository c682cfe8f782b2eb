"""Enrichment of report locations: snap to the street network and look up every zone layer.

``CityGIS`` builds its spatial indexes once per city; ``enrich`` is vectorized over arrays
of points and serves one report (the API) or a million (imports) through the same code.
All distances are computed in the city's metric CRS, in metres.

Every stage works on NumPy arrays indexed by point and the result frame is built once at
the end, so one report costs little more than the fixed cost of each vectorized call.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from voirie.city import City, ZoneLayer
from voirie.gis.addresses import AddressPoints, load_addresses
from voirie.gis.edges import Edges, Located, nearest_per_point
from voirie.gis.layers import load_streets, load_zones
from voirie.gis.streetnames import map_distinct, normalize_keys, street_from_address
from voirie.model import Flag

# Candidate segments are first searched this near (most reports are within it); only
# points with none fall back to a nearest-neighbour search up to the maximum distance.
# The result does not depend on it (the nearest candidate is the nearest segment).
_CANDIDATE_RADIUS_M = 30.0
_NO_SEGMENT = -1
# Points snapped together; their candidate pairs (about 16 per point within 60 m in Paris)
# then take tens of MB, whatever the number of points.
_BLOCK = 65_536


@dataclass(frozen=True)
class ZoneIndex:
    """One zone layer with its spatial index, prepared polygons and boundaries."""

    layer: ZoneLayer
    zones: gpd.GeoDataFrame
    tree: shapely.STRtree
    polygons: np.ndarray
    """the zones' polygons, prepared once for fast point-in-polygon tests"""
    boundaries: np.ndarray
    codes: np.ndarray
    names: np.ndarray
    area_rank: np.ndarray
    """rank of each zone by decreasing area (ties by layer order)"""


@dataclass(frozen=True)
class Snap:
    """The segment each point snaps to (``-1`` when none), its distance and method."""

    segment: np.ndarray
    distance: np.ndarray
    method: np.ndarray
    edge: np.ndarray
    """the nearest edge of the segment (see ``Edges``), ``-1`` when none"""
    fraction: np.ndarray
    """where along that edge the snapped point lies (0 at its start, 1 at its end)"""


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
        self.edges = Edges(self.streets_geometry) if self.streets is not None else None
        # Comparison keys of every segment's street name (None when unnamed), computed once,
        # and the same keys as integer codes (-1 when unnamed) for fast comparisons.
        self.street_keys: np.ndarray = (
            normalize_keys(self.streets["street_name"])
            if self.streets is not None
            else np.array([], dtype=object)
        )
        self._key_codes: dict[str, int] = {
            key: code for code, key in enumerate(pd.unique(self.street_keys)) if key is not None
        }
        self._street_codes = np.array(
            [self._key_codes.get(key, -1) for key in self.street_keys], dtype=np.intp
        )
        self._segment_columns: dict[str, np.ndarray] = {}
        self._segment_attributes: dict[str, pd.api.extensions.ExtensionArray] = {}
        if self.streets is not None and street_layer is not None:
            self._segment_columns = {
                "segment_id": self.streets["segment_id"].to_numpy(dtype=object),
                "street_name": self.streets["street_name"].to_numpy(dtype=object),
            }
            self._segment_attributes = {
                f"segment_{name}": _nullable(self.streets[name])
                for name in street_layer.attributes
            }
        addresses = city.config.addresses
        self.addresses = (
            AddressPoints(load_addresses(city, addresses), addresses.max_distance_m)
            if addresses is not None and self.streets is not None
            else None
        )
        self.zones: dict[str, ZoneIndex] = {}
        for layer in city.config.zones:
            zones = load_zones(city, layer)
            polygons = zones.geometry.to_numpy().copy()
            shapely.prepare(polygons)
            self.zones[layer.name] = ZoneIndex(
                layer=layer,
                zones=zones,
                tree=shapely.STRtree(polygons),
                polygons=polygons,
                boundaries=shapely.boundary(polygons),
                codes=zones["code"].to_numpy(dtype=object),
                names=zones["name"].to_numpy(dtype=object),
                area_rank=np.argsort(np.argsort(-shapely.area(polygons), kind="stable")),
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
        and without addresses, to the nearest segment (``nearest``). ``address_guess`` is
        the reverse-geocoded address of the snapped points that have no address.
        """
        x, y = self.project(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
        if address is not None and len(address) != len(x):
            raise ValueError(f"{len(address)} addresses for {len(x)} points")
        points = shapely.points(x, y)
        columns: dict[str, object] = {"x": x, "y": y}
        snap = self.snap(x, y, address)
        columns.update(self._linear_reference(x, y, snap))
        for name, index in self.zones.items():
            columns.update(_zone_lookup(points, x, y, index, name))
        columns.update(self._flags(columns, snap))
        columns["address_guess"] = self._address_guess(x, y, snap, columns["position_m"],
                                                        address)
        # The arrays are fresh: the frame can own them without a copy.
        return pd.DataFrame(columns, copy=False)

    def snap(
        self, x: np.ndarray, y: np.ndarray, address: np.ndarray | None = None
    ) -> Snap:
        """The segment each metric point snaps to, within the maximum snap distance.

        Candidates are the street edges near each point (within the address-matching
        radius when addresses are given, a smaller one otherwise); the nearest candidate
        is on the nearest segment. Points with none fall back to the segment tree's
        nearest-neighbour search. A point whose address street has a candidate within
        ``address_match_radius_m`` takes that street's nearest segment instead.
        """
        n = len(x)
        snap = Snap(
            segment=np.full(n, _NO_SEGMENT, dtype=np.intp),
            distance=np.full(n, np.nan),
            method=np.full(n, None, dtype=object),
            edge=np.full(n, _NO_SEGMENT, dtype=np.intp),
            fraction=np.full(n, np.nan),
        )
        if self.street_tree is None or self.edges is None or n == 0:
            return snap
        match_radius = min(self.address_match_radius_m, self.max_snap_distance_m)
        matching = address is not None and match_radius > 0
        radius = min(
            max(_CANDIDATE_RADIUS_M, match_radius if matching else 0.0),
            self.max_snap_distance_m,
        )
        wanted = (
            map_distinct(address, self._address_code, -1, np.intp)
            if matching and address is not None
            else None
        )
        # Blocks of points bound the memory of the (point, edge) pairs.
        for start in range(0, n, _BLOCK):
            block = slice(start, min(start + _BLOCK, n))
            self._snap_block(snap, block, x, y, radius, wanted, match_radius)
        return snap

    def _snap_block(
        self, snap: Snap, block: slice, x: np.ndarray, y: np.ndarray, radius: float,
        wanted: np.ndarray | None, match_radius: float,
    ) -> None:
        """``snap`` for the points of ``block`` (see ``snap``)."""
        assert self.street_tree is not None
        assert self.edges is not None
        x, y = x[block], y[block]
        part = Snap(snap.segment[block], snap.distance[block], snap.method[block],
                    snap.edge[block], snap.fraction[block])  # views: writes reach ``snap``
        near = self.edges.near(x, y, radius)
        self._assign(part, nearest_per_point(near, near.distance <= radius), "nearest")
        missing = np.flatnonzero(part.segment == _NO_SEGMENT)
        if len(missing) and radius < self.max_snap_distance_m:
            local, far_seg = self.street_tree.query_nearest(
                shapely.points(x[missing], y[missing]), max_distance=self.max_snap_distance_m
            )
            far = self.edges.locate(x, y, *self.edges.of_lines(missing[local], far_seg))
            self._assign(part, nearest_per_point(far), "nearest")
        if wanted is not None:
            code = wanted[block][near.point]
            segment = self.edges.line[near.edge]
            named = (code >= 0) & (self._street_codes[segment] == code)
            named &= near.distance <= match_radius
            self._assign(part, nearest_per_point(near, named), "address_match")

    def _assign(self, snap: Snap, best: Located, method: str) -> None:
        assert self.edges is not None
        rows = best.point
        snap.segment[rows] = self.edges.line[best.edge]
        snap.distance[rows] = best.distance
        snap.method[rows] = method
        snap.edge[rows] = best.edge
        snap.fraction[rows] = best.fraction

    def _address_guess(
        self, x: np.ndarray, y: np.ndarray, snap: Snap, position: object,
        address: np.ndarray | None,
    ) -> pd.arrays.StringArray:
        """Reverse geocoding of the snapped reports that have no address: their street,
        with a house number when the city has address points (see ``AddressPoints``)."""
        guess = np.full(len(x), None, dtype=object)
        wanted = snap.segment != _NO_SEGMENT
        if address is not None:
            wanted &= ~map_distinct(address, lambda text: bool(text.strip()), False, bool)
        rows = np.flatnonzero(wanted)
        if not len(rows) or not self._segment_columns:
            return _strings(guess)
        segment = snap.segment[rows]
        names = self._segment_columns["street_name"][segment]
        guess[rows] = names
        if self.addresses is not None:
            number = self.addresses.house_numbers(
                x[rows], y[rows], self.street_keys[segment], self.streets_geometry[segment],
                np.asarray(position, dtype=float)[rows],
            )
            found = np.isfinite(number) & pd.notna(names)
            guess[rows[found]] = (
                pd.Series(number[found].astype(np.int64)).astype(str) + " "
                + pd.Series(names[found], dtype=object)
            ).to_numpy(dtype=object)
        return _strings(guess)

    def _address_code(self, address: str) -> int:
        """The network's code of the street an address names (-1: none, or not in it)."""
        return self._key_codes.get(street_from_address(address) or "", -1)

    def _linear_reference(self, x: np.ndarray, y: np.ndarray, snap: Snap) -> dict[str, object]:
        """Segment, position along it, side and snapped point of every snapped point."""
        n = len(x)
        rows = np.flatnonzero(snap.segment != _NO_SEGMENT)
        position = np.full(n, np.nan)
        slon, slat = np.full(n, np.nan), np.full(n, np.nan)
        side = np.full(n, None, dtype=object)
        if len(rows) and self.edges is not None:
            edge, fraction = snap.edge[rows], snap.fraction[rows]
            position[rows] = self.edges.position_m(edge, fraction)
            sx, sy = self.edges.point_at(edge, fraction)
            side[rows] = self.edges.side(edge, x[rows], y[rows])
            lon, lat = self.to_wgs84.transform(sx, sy)
            slon[rows], slat[rows] = lon, lat
        segment_columns = {
            name: _take(values, snap.segment) for name, values in self._segment_columns.items()
        }
        return {
            "segment_id": _strings(segment_columns.get("segment_id", np.full(n, None))),
            "street_name": _strings(segment_columns.get("street_name", np.full(n, None))),
            "snap_distance_m": snap.distance,
            "position_m": position,
            "side": _strings(side),
            "snap_lon": slon,
            "snap_lat": slat,
            "snap_method": _strings(snap.method),
            **{
                name: values.take(snap.segment, allow_fill=True)
                for name, values in self._segment_attributes.items()
            },
        }

    def _flags(self, columns: dict[str, object], snap: Snap) -> dict[str, object]:
        """off_network, outside_territory and near_boundary, from the columns computed."""
        territory = self.city.config.territory.layer
        required = [name for name, z in self.zones.items() if z.layer.required]
        outside = pd.isna(np.asarray(columns[f"zone_{territory}"], dtype=object))
        # Off the network only means something where there is a network to be off.
        off_network = (snap.segment == _NO_SEGMENT) & ~outside & (self.streets is not None)
        n = len(outside)
        boundary = np.full(n, np.nan)
        if required:
            distances = np.vstack([np.asarray(columns[f"zone_{name}_boundary_m"], dtype=float)
                                   for name in required])
            known = ~np.isnan(distances).all(axis=0)
            boundary[known] = np.nanmin(distances[:, known], axis=0)
        return {
            Flag.OUTSIDE_TERRITORY: outside,
            Flag.OFF_NETWORK: off_network,
            "boundary_distance_m": boundary,
            Flag.NEAR_BOUNDARY: boundary < self.city.config.near_boundary_m,
        }


def _nullable(values: pd.Series) -> pd.api.extensions.ExtensionArray:
    """A column whose dtype can hold a missing value (integers and booleans become
    nullable), so that a point without a segment does not change the column's dtype."""
    kind = values.dtype.kind
    if kind in "iu":
        return values.astype("Int64").array
    if kind == "b":
        return values.astype("boolean").array
    array: pd.api.extensions.ExtensionArray = values.array
    return array


def _take(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[index]``, ``None`` where ``index`` is ``-1``."""
    out = np.full(len(index), None, dtype=object)
    found = index != _NO_SEGMENT
    out[found] = values[index[found]]
    return out


def _strings(values: np.ndarray) -> pd.arrays.StringArray:
    """Object values (``None`` where missing) as a ``string`` column, without inference."""
    return pd.arrays.StringArray(values)


def _zone_lookup(
    points: np.ndarray, x: np.ndarray, y: np.ndarray, index: ZoneIndex, name: str
) -> dict[str, object]:
    """Zone code, name and distance to the zone's edge for every point of one layer.

    The tree gives the zones whose box holds a point; the prepared polygons decide. A
    point in overlapping zones (a shared garden inside a park) or on an edge shared by two
    zones takes the smallest one, the most specific.
    """
    n = len(points)
    point, zone = index.tree.query(points)
    inside = shapely.intersects_xy(index.polygons[zone], x[point], y[point])
    point, zone = point[inside], zone[inside]
    found = np.full(n, -1, dtype=np.intp)
    # Smallest zone per point: assign the largest first, the last write wins.
    order = np.argsort(index.area_rank[zone], kind="stable")
    found[point[order]] = zone[order]
    rows = np.flatnonzero(found >= 0)
    boundary_m = np.full(n, np.nan)
    boundary_m[rows] = shapely.distance(points[rows], index.boundaries[found[rows]])
    return {
        f"zone_{name}": _strings(_take(index.codes, found)),
        f"zone_{name}_name": _strings(_take(index.names, found)),
        f"zone_{name}_boundary_m": boundary_m,
    }
