"""The read facade: the only reader the API, exports, tiles, OGC and pages use.

Reads of the report and incident layers are one ``Selection`` (filters, page, keyset
cursor) that the store turns into SQL; this module adds what every reader wants on top
(one ``zone_<layer>`` column per zone layer, the service name, a point geometry), the
searches in metres around a point (the box from ``gis.metric``, exact distances in the
city's metric projection), and the few other reads publishing needs: tiles, the newest
request, events in a time window, rows of a table by key, stored external ids.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.gis.metric import BBox, bbox_around
from voirie.store.base import MetricCRS, Store
from voirie.store.selection import EVERYTHING, Layer, Selection


class Reads:
    """One city's reads over one store."""

    def __init__(self, city: City, store: Store, gis: CityGIS) -> None:
        self.city = city
        self.store = store
        self.gis = gis
        # An EPSG code only where it names exactly this CRS: the database must project
        # as ``gis.project`` does.
        srid = CRS.from_user_input(city.metric_crs).to_epsg(min_confidence=100)
        self.metric = MetricCRS(srid, gis.project)

    def _layer(self, layer: Layer, selection: Selection) -> gpd.GeoDataFrame:
        """One page of a layer with one ``zone_<layer>`` column per zone layer and a point."""
        j = self.city.jurisdiction_id
        frame = self.store.select(layer, j, selection)
        key = "report_id" if layer == "reports" else "incident_id"
        zones = self.store.select_zones(layer, j, selection)
        wide = zones.pivot(index="row_id", columns="layer", values="code")
        for name in self.gis.zones:
            frame[f"zone_{name}"] = frame[key].map(
                wide[name] if name in wide else pd.Series(dtype=object)
            )
        if layer == "incidents":
            services = self.city.services
            frame["service_name"] = frame["service_code"].map(
                lambda c: s.name if (s := services.get(c)) else c
            )
        return gpd.GeoDataFrame(
            frame, geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs=4326
        )

    def reports(self, selection: Selection = EVERYTHING) -> gpd.GeoDataFrame:
        """Reports with their enrichment, zones, incident and team (public fields only)."""
        return self._layer("reports", selection)

    def incidents(self, selection: Selection = EVERYTHING) -> gpd.GeoDataFrame:
        """Incidents with their service name, routing and the zones of their first report."""
        return self._layer("incidents", selection)

    def count(self, layer: Layer, selection: Selection = EVERYTHING) -> int:
        """How many rows of a layer a selection keeps, whatever its page."""
        return self.store.count_selected(layer, self.city.jurisdiction_id, selection)

    def iter_layer(
        self, layer: Layer, selection: Selection = EVERYTHING, chunk_size: int = 50_000
    ) -> Iterator[gpd.GeoDataFrame]:
        """A layer in chunks, walked by id, so a download's memory does not grow with it.

        The selection's ``limit`` caps the total; its ``offset`` skips rows first.
        """
        key = "report_id" if layer == "reports" else "incident_id"
        remaining = selection.limit
        page = selection.page(
            chunk_size if remaining is None else min(chunk_size, remaining), selection.offset
        )
        while page.limit:
            chunk = self._layer(layer, page)
            if chunk.empty:
                return
            yield chunk
            if remaining is not None:
                remaining -= len(chunk)
            size = chunk_size if remaining is None else min(chunk_size, remaining)
            page = replace(page, after_id=int(chunk[key].iloc[-1]), limit=size, offset=0)

    def _within(
        self, layer: Layer, lon: float, lat: float, radius_m: float, selection: Selection
    ) -> gpd.GeoDataFrame:
        """Every row of a layer the selection keeps within ``radius_m`` metres of a point
        (its page ignored), with ``distance_m``: the store filters a box that holds the
        circle, distances are measured in the city's metric projection."""
        box = _search_box(lon, lat, radius_m, selection)
        found = self._layer(layer, replace(selection, bbox=box, limit=None, offset=0))
        x, y = self.gis.project(np.array([lon], float), np.array([lat], float))
        fx, fy = self.gis.project(found["lon"].to_numpy(float), found["lat"].to_numpy(float))
        found["distance_m"] = np.hypot(fx - x[0], fy - y[0])
        return found[found["distance_m"] <= radius_m]

    def nearby(
        self, lon: float, lat: float, radius_m: float, selection: Selection = EVERYTHING
    ) -> gpd.GeoDataFrame:
        """Incidents within ``radius_m`` metres of a point, nearest first, with
        ``distance_m``; the selection's page applies to them.

        The store finds the page (``Store.nearest``: the database stops at it), then only
        the page's incidents and their zones are read."""
        box = _search_box(lon, lat, radius_m, selection)
        near = self.store.nearest(
            "incidents",
            self.city.jurisdiction_id,
            replace(selection, bbox=box),
            (lon, lat),
            radius_m,
            self.metric,
        )
        ids = tuple(int(v) for v in near["row_id"])
        found = self._layer(
            "incidents", replace(selection, ids=ids, bbox=box, limit=None, offset=0)
        )
        distance = dict(zip(ids, near["distance_m"].to_numpy(float), strict=True))
        found["distance_m"] = found["incident_id"].map(distance).astype(float)
        return found.sort_values(["distance_m", "incident_id"], kind="stable", ignore_index=True)

    def reports_within(
        self, lon: float, lat: float, radius_m: float, selection: Selection = EVERYTHING
    ) -> gpd.GeoDataFrame:
        """Reports within ``radius_m`` metres of a point, in id order (the Open311 circle
        search); the selection's page applies to them."""
        return _page(self._within("reports", lon, lat, radius_m, selection), selection)

    def incident_tile(self, z: int, x: int, y: int) -> bytes:
        """One MVT tile of incidents (see ``Store.incident_tile``)."""
        return self.store.incident_tile(self.city.jurisdiction_id, z, x, y)

    def newest_request(self) -> datetime | None:
        """When the newest stored request was made (None for an empty store)."""
        newest = self.store.read("newest_request", self.city.jurisdiction_id)
        value = newest["requested_at"].iloc[0] if len(newest) else None
        return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime()

    def events_between(self, kind: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Events of one kind in a time window (ends included), oldest first."""
        return self.store.events_between(self.city.jurisdiction_id, kind, start, end)

    def lookup(self, table: str, column: str, values: Sequence[object]) -> pd.DataFrame:
        """Rows of a table whose ``column`` is one of ``values`` (see ``Store.lookup``)."""
        return self.store.lookup(table, self.city.jurisdiction_id, column, values)

    def known_reports(self, source: str, external_ids: Sequence[str]) -> pd.DataFrame:
        """Reports of a source stored under these external ids (a keyed lookup):
        external_id, content_hash, report_id, incident_id, received_at."""
        with self.store.transaction(self.city.jurisdiction_id) as uow:
            return uow.reports.known(source, external_ids)


def _search_box(lon: float, lat: float, radius_m: float, selection: Selection) -> BBox:
    """The box that holds the circle, within the selection's own bbox if it has one."""
    box = bbox_around(lon, lat, radius_m)
    return box if selection.bbox is None else _intersect(selection.bbox, box)


def _intersect(a: BBox, b: BBox) -> BBox:
    box = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    # Disjoint boxes select nothing: an empty box far from any city does that.
    return box if box[0] <= box[2] and box[1] <= box[3] else (0.0, 0.0, 0.0, 0.0)


def _page(found: gpd.GeoDataFrame, selection: Selection) -> gpd.GeoDataFrame:
    start = selection.offset
    stop = None if selection.limit is None else start + selection.limit
    return found.iloc[start:stop]
