"""Enrichment of report locations: snap to the street network and look up every zone layer.

``CityGIS`` builds its spatial indexes once per city; ``enrich`` is vectorized over arrays
of points and serves one report (the API) or a million (imports) through the same code.
All distances are computed in the city's metric CRS, in metres.

Every stage works on NumPy arrays indexed by point and the result frame is built once at
the end, so one report costs little more than the fixed cost of each vectorized call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TypeGuard, cast

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from voirie.city import City, ZoneLayer
from voirie.gis.addresses import AddressPoints, load_addresses
from voirie.gis.cache import load_prepared, save_prepared
from voirie.gis.edges import (
    UNSETTLED,
    Edges,
    Located,
    Nearest,
    ZoneGrid,
    nearest_per_point,
)
from voirie.gis.layers import load_streets, load_zones
from voirie.gis.streetnames import (
    address_keys,
    address_street,
    language_of,
    map_distinct,
    normalize_keys,
    street_key,
)
from voirie.model import Flag

# Candidate edges are searched within these radii in turn (the first one on the edges'
# grid), each time only for the points with no edge within the previous one, up to the
# maximum snap distance. Most reports are within the first; of 100k jittered Paris
# reports, 14,733 are not, 3,536 not within 60 m either. Points with none within the
# last fall back to a nearest-neighbour search when the maximum distance is larger (a
# box that wide holds too many edges). The result does not depend on the radii (the
# nearest edge within a radius is on the nearest segment), only the speed does: GEOS's
# nearest search costs about 10 µs per point, a box 60 m or 150 m wide a fraction.
_CANDIDATE_RADII_M = (30.0, 60.0, 150.0)
_NO_SEGMENT = -1
# Street codes of addresses (see ``CityGIS._address_codes``): a blank or missing address,
# and one that names no street of the network.
_NO_ADDRESS = -2
_NO_STREET = -1
# Points snapped together; their candidate pairs (about 16 per point within 60 m in Paris)
# then take tens of MB, whatever the number of points.
_BLOCK = 65_536
Column = np.ndarray | pd.api.extensions.ExtensionArray
"""one enrichment column, one value per point"""


@dataclass(frozen=True)
class ZoneIndex:
    """One zone layer with its spatial index, prepared polygons and boundaries."""

    layer: ZoneLayer
    zones: gpd.GeoDataFrame
    tree: shapely.STRtree
    polygons: np.ndarray
    """the zones' polygons, prepared once for fast point-in-polygon tests"""
    grid: ZoneGrid
    """the zone around most points, and the distance from a point to its zone's edge"""
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


def _zone_index(city: City, layer: ZoneLayer) -> ZoneIndex:
    """A zone layer read and indexed (prepared polygons, tree, grid, codes, names)."""
    zones = load_zones(city, layer)
    polygons = zones.geometry.to_numpy().copy()
    shapely.prepare(polygons)
    return ZoneIndex(
        layer=layer,
        zones=zones,
        tree=shapely.STRtree(polygons),
        polygons=polygons,
        grid=ZoneGrid(polygons),
        codes=zones["code"].to_numpy(dtype=object),
        names=zones["name"].to_numpy(dtype=object),
        area_rank=np.argsort(np.argsort(-shapely.area(polygons), kind="stable")),
    )


def _within_reach(
    streets: gpd.GeoDataFrame, territory: np.ndarray, reach_m: float
) -> gpd.GeoDataFrame:
    """The segments that a point of the territory may snap to: those within ``reach_m``
    (the maximum snap distance) of it. A street layer is often cut wider than the city
    (an OSM extract of Paris holds its inner suburbs: 54,903 segments, 16,705 kept);
    every report is inside the territory (the import quarantines, the API refuses the
    others), so its snapping is the same, and each start loads a third of the arrays."""
    region = shapely.union_all(territory).buffer(reach_m + 1.0)
    near = shapely.intersects(streets.geometry.to_numpy(), region)
    kept: gpd.GeoDataFrame = streets[near].reset_index(drop=True)
    return kept


class CityGIS:
    """A city's reference layers with their indexes, built once and reused for every report."""

    def __init__(self, city: City) -> None:
        # Built once per city version and cached on disk (voirie.gis.cache): a start
        # then loads arrays instead of reading the layers and building the indexes.
        cached = load_prepared(city)
        if cached is not None:
            self.__dict__.update(cached)
            self.city = city
            return
        self._build(city)
        save_prepared(city, self.__dict__)

    def _build(self, city: City) -> None:
        """Read the layers and build every index (what the cache spares)."""
        self.city = city
        self.to_metric = Transformer.from_crs(4326, city.metric_crs, always_xy=True)
        self.to_wgs84 = Transformer.from_crs(city.metric_crs, 4326, always_xy=True)
        self.language = language_of(city.config.locale)
        street_layer = city.config.streets
        self.max_snap_distance_m = street_layer.max_snap_distance_m if street_layer else 0.0
        self.zones: dict[str, ZoneIndex] = {}
        for layer in city.config.zones:
            self.zones[layer.name] = _zone_index(city, layer)
        self.streets = (
            _within_reach(
                load_streets(city, street_layer),
                self.zones[city.config.territory.layer].polygons,
                self.max_snap_distance_m,
            )
            if street_layer
            else None
        )
        self.address_match_radius_m = street_layer.address_match_radius_m if street_layer else 0.0
        self.streets_geometry: np.ndarray = (
            self.streets.geometry.to_numpy()
            if self.streets is not None
            else np.array([], dtype=object)
        )
        self.street_tree = (
            shapely.STRtree(self.streets_geometry) if self.streets is not None else None
        )
        self.edges = (
            Edges(self.streets_geometry, _CANDIDATE_RADII_M[0], self.street_tree)
            if self.streets is not None
            else None
        )
        # Comparison keys of every segment's street name (None when unnamed), computed once,
        # and the same keys as integer codes (-1 when unnamed) for fast comparisons.
        self.street_keys: np.ndarray = (
            normalize_keys(self.streets["street_name"], self.language)
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
                f"segment_{name}": _nullable(self.streets[name]) for name in street_layer.attributes
            }
        addresses = city.config.addresses
        self.addresses = (
            AddressPoints(load_addresses(city, addresses), addresses.max_distance_m)
            if addresses is not None and self.streets is not None
            else None
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
        columns = {
            name: _strings(values) if _is_text(values) else values
            for name, values in self._columns(lon, lat, address).items()
        }
        # The arrays are fresh: the frame can own them without a copy.
        return pd.DataFrame(columns, copy=False)

    def enrich_one(self, lon: float, lat: float, address: str | None) -> dict[str, object]:
        """``enrich`` of one point (with its address, or ``None``) as plain Python values:
        the same columns and values as its row of ``enrich``, ``None`` where missing,
        without a DataFrame (the per-report path).

        One point goes through ``_one``: the same cells, candidates and arithmetic as
        the vectorized stages, without their arrays of points (each NumPy call on a
        one-element array costs microseconds; the vectorized path makes hundreds).
        A city without streets, or a point that does not project, takes the vectorized
        path with one row."""
        x, y = self.to_metric.transform(float(lon), float(lat))
        if self.edges is None or not (math.isfinite(x) and math.isfinite(y)):
            columns = self._columns(
                np.array([lon], dtype=float),
                np.array([lat], dtype=float),
                np.array([address], dtype=object),
            )
            return {str(name): _scalar(values[0]) for name, values in columns.items()}
        return {str(name): _scalar(value) for name, value in self._one(x, y, address).items()}

    def _one(self, x: float, y: float, address: str | None) -> dict[str, object]:
        """``_columns`` of one metric point of a city with streets, by name (see
        ``enrich_one``)."""
        street = self._address_code(address)
        nearest, method = self._snap_one(x, y, street)
        values: dict[str, object] = {"x": x, "y": y}
        values.update(self._linear_reference_one(x, y, nearest, method))
        for name, index in self.zones.items():
            values.update(_zone_one(x, y, index, name))
        territory = self.city.config.territory.layer
        outside = _scalar(values[f"zone_{territory}"]) is None
        distances = [
            distance
            for name, zone in self.zones.items()
            if zone.layer.required
            and not math.isnan(distance := cast(float, values[f"zone_{name}_boundary_m"]))
        ]
        boundary = min(distances) if distances else math.nan
        values.update(
            {
                Flag.OUTSIDE_TERRITORY: outside,
                Flag.OFF_NETWORK: nearest is None and not outside,
                "boundary_distance_m": boundary,
                Flag.NEAR_BOUNDARY: boundary < self.city.config.near_boundary_m,
            }
        )
        values["address_guess"] = self._address_guess_one(x, y, nearest, values, street)
        return values

    def _snap_one(self, x: float, y: float, street: int) -> tuple[Nearest | None, str | None]:
        """``_snap`` of one point: its nearest edge within the maximum snap distance (or
        its address street's within the match radius) and the snap method."""
        assert self.edges is not None
        assert self.street_tree is not None
        nearest = None
        for radius in _CANDIDATE_RADII_M:
            radius = min(radius, self.max_snap_distance_m)
            nearest = self.edges.nearest_one(x, y, radius)
            if nearest is not None or radius >= self.max_snap_distance_m:
                break
        else:
            lines = self.street_tree.query_nearest(
                shapely.points(x, y), max_distance=self.max_snap_distance_m
            )
            edges = self.edges.of_lines(np.zeros(len(lines), dtype=np.intp), lines)[1]
            nearest = self.edges.nearest_of(x, y, edges)
        if nearest is None:
            return None, None
        radius = min(self.address_match_radius_m, self.max_snap_distance_m)
        if radius <= 0 or street < 0 or nearest.distance > radius:
            return nearest, "nearest"
        if self._street_codes[self.edges.line[nearest.edge]] == street:
            return nearest, "address_match"
        edge = self.edges.edges_near_one(x, y, radius)
        named = edge[self._street_codes[self.edges.line[edge]] == street]
        matched = self.edges.nearest_of(x, y, named, radius)
        return (nearest, "nearest") if matched is None else (matched, "address_match")

    def _linear_reference_one(
        self, x: float, y: float, nearest: Nearest | None, method: str | None
    ) -> dict[str, object]:
        """``_linear_reference`` of one point."""
        assert self.edges is not None
        if nearest is None:
            return {
                "segment_id": None,
                "street_name": None,
                "snap_distance_m": math.nan,
                "position_m": math.nan,
                "side": None,
                "snap_lon": math.nan,
                "snap_lat": math.nan,
                "snap_method": None,
                **dict.fromkeys(self._segment_attributes),
            }
        edge, fraction = nearest.edge, nearest.fraction
        segment = int(self.edges.line[edge])
        snap_lon, snap_lat = self.to_wgs84.transform(*self.edges.point_one(edge, fraction))
        columns = self._segment_columns
        return {
            "segment_id": columns["segment_id"][segment] if columns else None,
            "street_name": columns["street_name"][segment] if columns else None,
            "snap_distance_m": nearest.distance,
            "position_m": self.edges.position_one(edge, fraction),
            "side": self.edges.side_one(edge, x, y),
            "snap_lon": snap_lon,
            "snap_lat": snap_lat,
            "snap_method": method,
            **{name: values[segment] for name, values in self._segment_attributes.items()},
        }

    def _address_guess_one(
        self,
        x: float,
        y: float,
        nearest: Nearest | None,
        values: dict[str, object],
        street: int,
    ) -> object:
        """``_address_guess`` of one point."""
        if nearest is None or street != _NO_ADDRESS or not self._segment_columns:
            return None
        assert self.edges is not None
        segment = int(self.edges.line[nearest.edge])
        name = self._segment_columns["street_name"][segment]
        if self.addresses is None:
            return name
        number = self.addresses.house_numbers(
            np.array([x]),
            np.array([y]),
            self.street_keys[[segment]],
            self.streets_geometry[[segment]],
            np.array([values["position_m"]], dtype=float),
        )[0]
        if not math.isfinite(number) or pd.isna(name):
            return name
        return f"{int(number)} {name}"

    def _columns(
        self, lon: np.ndarray, lat: np.ndarray, address: np.ndarray | None
    ) -> dict[str, Column]:
        """The columns of ``enrich`` as arrays, by name (see ``enrich``); text columns are
        object arrays (``None`` where missing), which ``enrich`` makes ``string`` columns
        and ``enrich_one`` reads as they are."""
        x, y = self.project(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
        if address is not None and len(address) != len(x):
            raise ValueError(f"{len(address)} addresses for {len(x)} points")
        columns: dict[str, Column] = {"x": x, "y": y}
        street = self._address_codes(address) if address is not None else None
        snap = self._snap(x, y, street)
        columns.update(self._linear_reference(x, y, snap))
        if self.streets is None and address is not None:
            # No street layer: the street the address names (its normalized key, in the
            # city's language) stands for the segment's, so that deduplication can still
            # tell reports on one street from reports on another.
            columns["street_name"] = address_keys(address, self.language)
        for name, index in self.zones.items():
            columns.update(_zone_lookup(x, y, index, name))
        columns.update(self._flags(columns, snap))
        columns["address_guess"] = self._address_guess(x, y, snap, columns["position_m"], street)
        return columns

    def snap(self, x: np.ndarray, y: np.ndarray, address: np.ndarray | None = None) -> Snap:
        """The segment each metric point snaps to, within the maximum snap distance.

        Candidates are the street edges near each point, within growing radii; the
        nearest candidate is on the nearest segment. Points with none within the largest
        fall back, when the maximum distance is larger, to the segment tree's
        nearest-neighbour search. A point whose address
        street has a segment within ``address_match_radius_m`` takes that street's
        nearest segment instead.
        """
        return self._snap(x, y, self._address_codes(address) if address is not None else None)

    def _snap(self, x: np.ndarray, y: np.ndarray, street: np.ndarray | None) -> Snap:
        """``snap`` with the addresses as street codes (see ``_address_codes``)."""
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
        wanted = street if match_radius > 0 else None
        # Blocks of points bound the memory of the (point, edge) pairs.
        for start in range(0, n, _BLOCK):
            block = slice(start, min(start + _BLOCK, n))
            part = Snap(
                snap.segment[block],
                snap.distance[block],
                snap.method[block],
                snap.edge[block],
                snap.fraction[block],
            )  # views: writes reach ``snap``
            self._snap_nearest(part, x[block], y[block])
            if wanted is not None:
                self._snap_address(part, x[block], y[block], wanted[block], match_radius)
        return snap

    def _snap_nearest(self, snap: Snap, x: np.ndarray, y: np.ndarray) -> None:
        """The nearest segment of every point within the maximum snap distance: the
        nearest edge within each radius of _CANDIDATE_RADII_M in turn, for the points
        with none within the previous one, then (beyond the last) the tree's
        nearest-neighbour search."""
        assert self.street_tree is not None
        assert self.edges is not None
        rows = np.arange(len(x))
        for radius in _CANDIDATE_RADII_M:
            radius = min(radius, self.max_snap_distance_m)
            best = self.edges.nearest_within(x[rows], y[rows], radius)
            self._assign(snap, replace(best, point=rows[best.point]), "nearest")
            rows = rows[snap.segment[rows] == _NO_SEGMENT]
            if not len(rows) or radius >= self.max_snap_distance_m:
                return
        local, far_seg = self.street_tree.query_nearest(
            shapely.points(x[rows], y[rows]), max_distance=self.max_snap_distance_m
        )
        far = self.edges.locate(x, y, *self.edges.of_lines(rows[local], far_seg))
        self._assign(snap, nearest_per_point(far), "nearest")

    def _snap_address(
        self, snap: Snap, x: np.ndarray, y: np.ndarray, wanted: np.ndarray, radius: float
    ) -> None:
        """Move the points whose address street (``wanted``, a street code, negative for
        none) has a segment within ``radius`` to that street's nearest segment.

        A point already snapped to its address street within ``radius`` keeps its
        segment (the nearest one is its street's nearest); a point snapped farther than
        ``radius`` has no segment of any street within it. Only the others search their
        candidates."""
        assert self.edges is not None
        snapped = snap.segment != _NO_SEGMENT
        street = np.full(len(x), -1, dtype=np.intp)
        street[snapped] = self._street_codes[snap.segment[snapped]]
        within = snapped & (snap.distance <= radius) & (wanted >= 0)
        snap.method[within & (street == wanted)] = "address_match"
        rows = np.flatnonzero(within & (street != wanted))
        # Only the edges of each point's address street are measured.
        point, edge = self.edges.pairs_near(x[rows], y[rows], radius)
        named = self._street_codes[self.edges.line[edge]] == wanted[rows][point]
        near = self.edges.locate(x[rows], y[rows], point[named], edge[named])
        best = nearest_per_point(near, near.distance <= radius)
        self._assign(snap, replace(best, point=rows[best.point]), "address_match")

    def _assign(self, snap: Snap, best: Located, method: str) -> None:
        assert self.edges is not None
        rows = best.point
        snap.segment[rows] = self.edges.line[best.edge]
        snap.distance[rows] = best.distance
        snap.method[rows] = method
        snap.edge[rows] = best.edge
        snap.fraction[rows] = best.fraction

    def _address_guess(
        self,
        x: np.ndarray,
        y: np.ndarray,
        snap: Snap,
        position: object,
        street: np.ndarray | None,
    ) -> np.ndarray:
        """Reverse geocoding of the snapped reports that have no address: their street,
        with a house number when the city has address points (see ``AddressPoints``)."""
        guess = np.full(len(x), None, dtype=object)
        wanted = snap.segment != _NO_SEGMENT
        if street is not None:
            wanted &= street == _NO_ADDRESS
        rows = np.flatnonzero(wanted)
        if not len(rows) or not self._segment_columns:
            return guess
        segment = snap.segment[rows]
        names = self._segment_columns["street_name"][segment]
        guess[rows] = names
        if self.addresses is not None:
            number = self.addresses.house_numbers(
                x[rows],
                y[rows],
                self.street_keys[segment],
                self.streets_geometry[segment],
                np.asarray(position, dtype=float)[rows],
            )
            found = np.isfinite(number) & pd.notna(names)
            guess[rows[found]] = (
                pd.Series(number[found].astype(np.int64)).astype(str)
                + " "
                + pd.Series(names[found], dtype=object)
            ).to_numpy(dtype=object)
        return guess

    def _address_codes(self, address: np.ndarray) -> np.ndarray:
        """The network's code of the street each address names: _NO_ADDRESS for a blank
        or missing address, _NO_STREET when it names none, or one not in the network.

        One array serves snapping and geocoding. Each distinct address is read once, and
        each distinct street among them normalized once (many addresses of a batch share
        their street: "12 Rue X" and "14 Rue X")."""
        codes: dict[str, int] = {}

        def code(text: str) -> int:
            if not text.strip():
                return _NO_ADDRESS
            street = address_street(text)
            found = codes.get(street)
            if found is None:
                found = codes[street] = self._street_code(street)
            return found

        if len(address) == 1:  # one report: no factorizing of one value
            return np.array([self._address_code(address[0])], np.intp)
        return map_distinct(address, code, _NO_ADDRESS, np.intp)

    def _address_code(self, address: object) -> int:
        """``_address_codes`` of one address."""
        if not isinstance(address, str) or not address.strip():
            return _NO_ADDRESS
        return self._street_code(address_street(address))

    def _street_code(self, street: str) -> int:
        """The network's code of a street named in an address, _NO_STREET when none."""
        return self._key_codes.get(street_key(street) or "", _NO_STREET)

    def _linear_reference(self, x: np.ndarray, y: np.ndarray, snap: Snap) -> dict[str, Column]:
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
            "segment_id": segment_columns.get("segment_id", np.full(n, None)),
            "street_name": segment_columns.get("street_name", np.full(n, None)),
            "snap_distance_m": snap.distance,
            "position_m": position,
            "side": side,
            "snap_lon": slon,
            "snap_lat": slat,
            "snap_method": snap.method,
            **{
                name: values.take(snap.segment, allow_fill=True)
                for name, values in self._segment_attributes.items()
            },
        }

    def _flags(self, columns: dict[str, Column], snap: Snap) -> dict[str, Column]:
        """off_network, outside_territory and near_boundary, from the columns computed."""
        territory = self.city.config.territory.layer
        required = [name for name, z in self.zones.items() if z.layer.required]
        outside = pd.isna(np.asarray(columns[f"zone_{territory}"], dtype=object))
        # Off the network only means something where there is a network to be off.
        off_network = (snap.segment == _NO_SEGMENT) & ~outside & (self.streets is not None)
        n = len(outside)
        boundary = np.full(n, np.nan)
        if required:
            distances = np.vstack(
                [np.asarray(columns[f"zone_{name}_boundary_m"], dtype=float) for name in required]
            )
            known = ~np.isnan(distances).all(axis=0)
            boundary[known] = np.nanmin(distances[:, known], axis=0)
        return {
            Flag.OUTSIDE_TERRITORY: outside,
            Flag.OFF_NETWORK: off_network,
            "boundary_distance_m": boundary,
            Flag.NEAR_BOUNDARY: boundary < self.city.config.near_boundary_m,
        }


def _scalar(value: object) -> object:
    """One element of an enrichment column as a plain Python value: numpy scalars become
    ``float``/``int``/``bool``/``str``, and NaN, ``pd.NA`` and ``None`` become ``None``."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


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


def _is_text(values: Column) -> TypeGuard[np.ndarray]:
    """Whether an enrichment column holds text: every object array does (see ``_columns``)."""
    return isinstance(values, np.ndarray) and values.dtype == object


def _strings(values: np.ndarray) -> pd.arrays.StringArray:
    """Object values (``None`` where missing) as a ``string`` column, without inference."""
    return pd.arrays.StringArray(values)


def _zone_one(x: float, y: float, index: ZoneIndex, name: str) -> dict[str, object]:
    """``_zone_lookup`` of one point: the same grid, tree, polygons and smallest zone."""
    found = index.grid.owner_one(x, y)
    if found == UNSETTLED:
        zone = index.tree.query(shapely.points(x, y))
        zone = zone[shapely.intersects_xy(index.polygons[zone], x, y)]
        found = int(zone[np.argmax(index.area_rank[zone])]) if len(zone) else -1
    if found < 0:
        return {
            f"zone_{name}": None,
            f"zone_{name}_name": None,
            f"zone_{name}_boundary_m": math.nan,
        }
    return {
        f"zone_{name}": index.codes[found],
        f"zone_{name}_name": index.names[found],
        f"zone_{name}_boundary_m": index.grid.distance_one(x, y, found),
    }


def _zone_lookup(x: np.ndarray, y: np.ndarray, index: ZoneIndex, name: str) -> dict[str, Column]:
    """Zone code, name and distance to the zone's edge for every point of one layer.

    The zone grid settles the points well inside one zone and near no other, and those
    far from every zone; for the others, the tree gives the zones whose box holds a point
    and the prepared polygons decide. A point in overlapping zones (a shared garden inside
    a park) or on an edge shared by two zones takes the smallest one, the most specific.
    """
    n = len(x)
    found = index.grid.owner_of(x, y)
    rest = np.flatnonzero(found == UNSETTLED)
    found[rest] = -1
    # Point geometries only for the points the grid leaves unsettled (none, for most
    # single reports: GEOS calls cost microseconds even on nothing).
    if len(rest):
        point, zone = index.tree.query(shapely.points(x[rest], y[rest]))
        point = rest[point]
        inside = shapely.intersects_xy(index.polygons[zone], x[point], y[point])
        point, zone = point[inside], zone[inside]
        # Smallest zone per point: assign the largest first, the last write wins.
        order = np.argsort(index.area_rank[zone], kind="stable")
        found[point[order]] = zone[order]
    rows = np.flatnonzero(found >= 0)
    boundary_m = np.full(n, np.nan)
    boundary_m[rows] = index.grid.distance(x[rows], y[rows], found[rows])
    return {
        f"zone_{name}": _take(index.codes, found),
        f"zone_{name}_name": _take(index.names, found),
        f"zone_{name}_boundary_m": boundary_m,
    }
