"""The read facade: the only reader the API, exports, tiles, OGC and pages use.

Reads of the report and incident layers are one ``Selection`` (filters, page, keyset
cursor) that the store turns into SQL; this module adds what every reader wants on top
(one ``zone_<layer>`` column per zone layer, the service name, a point geometry), the
searches in metres around a point (the box from ``gis.metric``, exact distances in the
city's metric projection), and the few other reads publishing needs: tiles, the newest
request, events in a time window, rows of a table by key, stored external ids.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import cast
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS, Transformer
from pyproj.exceptions import ProjError

from voirie.city import City
from voirie.gis.blur import Blur
from voirie.gis.enrich import CityGIS
from voirie.gis.metric import BBox, bbox_around
from voirie.gis.textmask import mask_house_numbers, mask_texts
from voirie.services.recent import request_days_start
from voirie.store.base import ChangeMark, MetricCRS, Store
from voirie.store.public_points import Placement
from voirie.store.schema import BOOL_COLUMNS, DATETIME_COLUMNS
from voirie.store.selection import (
    EVERYTHING,
    REQUEST_COLUMNS,
    Layer,
    Selection,
    layer_columns,
)

_log = logging.getLogger(__name__)

_SECONDS_PER_DAY = 86_400
# Columns that place a report on its street more precisely than a blurred point allows.
_PLACING = ("position_m", "side", "snap_distance_m", "boundary_distance_m")


class Reads:
    """One city's reads over one store."""

    def __init__(self, city: City, store: Store, gis: CityGIS) -> None:
        self.city = city
        self.store = store
        self.gis = gis
        self.blur = Blur(city, gis)  # public locations of sensitive services
        # The store writes each row's public point beside the exact one, and recomputes
        # them now if the city's blurring changed since (``voirie.store.public_points``).
        self._placement = Placement(
            self.blur.services, self.blur.public, self.blur.fingerprint(city.metric_crs)
        )
        self._placed = self._place_at_start()
        # An EPSG code only where it names exactly this CRS: the database must project
        # as ``gis.project`` does.
        srid = CRS.from_user_input(city.metric_crs).to_epsg(min_confidence=100)
        territory = gis.zones[city.config.territory.layer].zones
        self.territory_box = cast(
            tuple[float, float, float, float], tuple(territory.to_crs(4326).total_bounds)
        )
        self.project = thread_cheap_projection(gis, self.territory_box)
        self.metric = MetricCRS(srid, self.project)
        # recent_requests_start's computation, one at a time: requests arriving together
        # after a change wait for one answer instead of each probing the store.
        self._recent_lock = threading.Lock()
        # (change counter, days, local day) -> recent_requests_start's answer
        self._recent_start: tuple[tuple[int, int, date], datetime | None] | None = None

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

    def records(
        self, layer: Layer, selection: Selection, *, zones: bool = True, public: bool = True
    ) -> list[dict[str, object]]:
        """One page of a layer as ``_layer`` reads it (the same columns in the same order,
        without the geometry), as plain dicts: the lean read path of the OGC items.

        Instants are aware UTC datetimes, flags booleans, missing values None; two
        statements (the page, its zones) and no DataFrame. ``zones=False`` leaves the
        ``zone_<layer>`` columns out, and their statement. ``public`` (the default: the
        public's Open311, OGC and tiles read here) blurs sensitive services' locations
        (``privacy.blur``) and selects them by their public point (``_scope``); staff
        pass ``public=False``."""
        j = self.city.jurisdiction_id
        names = layer_columns(layer)
        zone_names = list(self.gis.zones) if zones else []
        rows = self.store.page_rows(layer, j, self._scope(selection, public), zone_names)
        if not rows:
            return []
        instants = [i for i, name in enumerate(names) if name in DATETIME_COLUMNS]
        flags = [i for i, name in enumerate(names) if name in BOOL_COLUMNS]
        zone_columns = [f"zone_{name}" for name in zone_names]
        services = self.city.services if layer == "incidents" else None
        code_at = names.index("service_code")
        width = len(names)
        out = []
        for row in rows:
            values = list(row[:width])
            for i in instants:
                values[i] = instant(values[i])
            for i in flags:
                values[i] = bool(values[i])
            record = dict(zip(names, values, strict=True))
            record.update(zip(zone_columns, row[width:], strict=True))
            if services is not None:
                service = services.get(str(row[code_at]))
                record["service_name"] = service.name if service else row[code_at]
            out.append(record)
        if public:
            self._blur_records(out)
        return out

    def request_records(
        self, selection: Selection, kind: str
    ) -> tuple[list[dict[str, object]], list[tuple[object, ...]]]:
        """The page of reports a selection keeps as the public sees them (by their public
        points, blurred: ``_blur_records``), as dicts of ``REQUEST_COLUMNS`` with values as
        the backend returns them (instants: datetimes on PostGIS, text on sqlite, see
        ``instant``), and ``(incident_id, reason)`` of the events of one ``kind`` of their
        incidents, oldest first: what an Open311 GET shows, in one round trip."""
        rows, changes = self.store.request_rows(
            self.city.jurisdiction_id, self._scope(selection, True), kind
        )
        out = [dict(zip(REQUEST_COLUMNS, row, strict=True)) for row in rows]
        self._blur_records(out)
        return out, changes

    def _blur_records(self, out: list[dict[str, object]]) -> None:
        """Records as the public sees them: a blurred service's point moved (see
        ``voirie.gis.blur``), and what else would place it (a report's address, position
        along its segment, side, snap distance) replaced by its street or left out, and
        the house numbers of its description masked (``voirie.gis.textmask``)."""
        rows = [r for r in out if r["service_code"] in self.blur.services]
        if not rows:
            return
        codes = np.array([r["service_code"] for r in rows], dtype=object)
        lon = np.array([r["lon"] for r in rows], dtype=float)
        lat = np.array([r["lat"] for r in rows], dtype=float)
        px, py = self.blur.public(codes, lon, lat)
        for row, x, y in zip(rows, px, py, strict=True):
            row.update(lon=float(x), lat=float(y))
            row.update({k: None for k in _PLACING if k in row})
            if isinstance(description := row.get("description"), str):
                row["description"] = mask_house_numbers(description)  # "devant le … rue X"
            if "address" in row:
                row["address"] = row.get("street_name")

    def publish(self, frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """Rows of a layer (a DataFrame) as the public may see them: ``_blur_records``."""
        blurred = self.blur.blurred(frame["service_code"].to_numpy(dtype=object))
        if not blurred.any():
            return frame
        frame = frame.copy()
        px, py = self.blur.public(
            frame["service_code"].to_numpy(dtype=object),
            frame["lon"].to_numpy(dtype=float),
            frame["lat"].to_numpy(dtype=float),
        )
        frame["lon"], frame["lat"] = px, py
        for column in (c for c in _PLACING if c in frame.columns):
            frame[column] = frame[column].mask(blurred)
        if "address" in frame.columns and "street_name" in frame.columns:
            frame["address"] = frame["address"].mask(blurred, frame["street_name"])
        if "description" in frame.columns:
            frame.loc[blurred, "description"] = mask_texts(frame.loc[blurred, "description"])
        return frame.set_geometry(gpd.points_from_xy(px, py, crs=4326))

    def reports(self, selection: Selection = EVERYTHING) -> gpd.GeoDataFrame:
        """Reports with their enrichment, zones, incident and team (public fields only)."""
        return self._layer("reports", selection)

    def incidents(self, selection: Selection = EVERYTHING) -> gpd.GeoDataFrame:
        """Incidents with their service name, routing and the zones where they stand."""
        return self._layer("incidents", selection)

    def _place_at_start(self) -> bool:
        """Bring the stored public points up to date with the city's blurring; False when
        the store could not (a database down, or behind its migrations: the service must
        still start and say so on ``/readyz``). The placement is registered either way, so
        every write places its rows; the recomputation is tried again by the first public
        read of a blurring city (``_scope``), which fails rather than read unplaced rows."""
        try:
            self.store.place_publicly(self.city.jurisdiction_id, self._placement)
        except Exception:  # the backend's own error: sqlite3, psycopg or StoreError
            _log.warning(
                "public points of %s not brought up to date at start; the first public "
                "read will try again",
                self.city.jurisdiction_id,
                exc_info=True,
            )
            return False
        return True

    def _scope(self, selection: Selection, public: bool) -> Selection:
        """A selection as a public read makes it: where the city blurs, its spatial
        conditions are on the public points (``voirie.store.public_points``), so a box
        or a circle selects, counts, orders and pages a blurred row as if its public point
        were its location. A city without blurring reads exactly as before."""
        if public and self.blur.services:
            if not self._placed:
                self.store.place_publicly(self.city.jurisdiction_id, self._placement)
                self._placed = True
            if not selection.public_points:
                return replace(selection, public_points=True)
        return selection

    def count(self, layer: Layer, selection: Selection = EVERYTHING, *, public: bool = True) -> int:
        """How many rows of a layer a selection keeps, whatever its page (by their public
        points unless ``public=False``, as ``records``)."""
        return self.store.count_selected(
            layer, self.city.jurisdiction_id, self._scope(selection, public)
        )

    def status_counts(
        self, layer: Layer, selection: Selection = EVERYTHING, *, public: bool = True
    ) -> dict[str, int]:
        """How many rows of a layer a selection keeps per status (one grouped read; by
        their public points unless ``public=False``)."""
        return self.store.status_counts(
            layer, self.city.jurisdiction_id, self._scope(selection, public)
        )

    def iter_layer(
        self,
        layer: Layer,
        selection: Selection = EVERYTHING,
        chunk_size: int = 50_000,
        *,
        public: bool = True,
    ) -> Iterator[gpd.GeoDataFrame]:
        """A layer in chunks, walked by id, so a download's memory does not grow with it.

        The selection's ``limit`` caps the total; its ``offset`` skips rows first.
        ``public`` (the default: the public downloads) selects and blurs as ``records``
        does.
        """
        key = "report_id" if layer == "reports" else "incident_id"
        remaining = selection.limit
        selection = self._scope(selection, public)
        page = selection.page(
            chunk_size if remaining is None else min(chunk_size, remaining), selection.offset
        )
        while page.limit:
            chunk = self._layer(layer, page)
            if chunk.empty:
                return
            yield self.publish(chunk) if public else chunk
            if remaining is not None:
                remaining -= len(chunk)
            size = chunk_size if remaining is None else min(chunk_size, remaining)
            page = replace(page, after_id=int(chunk[key].iloc[-1]), limit=size, offset=0)

    def _within(
        self,
        layer: Layer,
        lon: float,
        lat: float,
        radius_m: float,
        selection: Selection,
        *,
        public: bool = True,
    ) -> gpd.GeoDataFrame:
        """Every row of a layer the selection keeps within ``radius_m`` metres of a point
        (its page ignored), with ``distance_m``: the store filters a box that holds the
        circle, distances are measured in the city's metric projection.

        ``public`` (the default) selects and measures the public points (``_scope``,
        ``publish``): whether a blurred row is in the circle must not tell where its
        exact point is."""
        box = bbox_around(lon, lat, radius_m)
        if selection.bbox is not None:
            box = _intersect(selection.bbox, box)
        scoped = self._scope(replace(selection, bbox=box, limit=None, offset=0), public)
        found = self._layer(layer, scoped)
        if public:
            found = self.publish(found)
        x, y = self.project(np.array([lon], float), np.array([lat], float))
        fx, fy = self.project(found["lon"].to_numpy(float), found["lat"].to_numpy(float))
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

    def nearby_records(
        self,
        lon: float,
        lat: float,
        radius_m: float,
        selection: Selection,
        now: datetime,
    ) -> tuple[list[dict[str, object]], int]:
        """Incidents within ``radius_m`` metres of a point, nearest first, as the citizens'
        API lists them (incident_id, service_code, service_name, status, street_name,
        description, lon, lat, distance_m, first_reported_at, last_reported_at, age_days,
        report_count, supporters in that order; ``distance_m`` to the decimetre,
        ``age_days`` the whole days since the first report at ``now``), one page of them,
        and how many there are in all.

        The lean twin of ``nearby``: rows from the store as tuples (one statement on
        PostGIS), no DataFrame, so a search costs little more than its SQL. A public
        search: blurred incidents are found, ordered, measured and shown at their public
        points (``_scope``), so neither the list nor a distance tells the exact one."""
        if not self._reaches_city(lon, lat, radius_m):
            return [], 0
        box = _search_box(lon, lat, radius_m, selection)
        rows, total = self.store.nearby_rows(
            self.city.jurisdiction_id,
            self._scope(replace(selection, bbox=box), True),
            (lon, lat),
            radius_m,
            self.metric,
        )
        services = self.city.services
        # To the decimetre, all at once (``np.round`` of each value alone cost ~5 µs).
        rounded = np.round(np.array([row[-1] for row in rows], dtype=float), 1).tolist()
        out: list[dict[str, object]] = []
        for metres, (
            incident_id,
            code,
            status,
            street,
            description,
            x,
            y,
            first,
            last,
            reports,
            supporters,
            _,
        ) in zip(rounded, rows, strict=True):
            first_at, last_at = instant(first), instant(last)
            assert first_at is not None
            assert last_at is not None
            service = services.get(str(code))
            age = (now - first_at).total_seconds() // _SECONDS_PER_DAY
            out.append(
                {
                    "incident_id": incident_id,
                    "service_code": code,
                    "service_name": service.name if service else code,
                    "status": status,
                    "street_name": street,
                    "description": (  # "devant le … rue X" (voirie.gis.textmask)
                        mask_house_numbers(description)
                        if isinstance(description, str) and code in self.blur.services
                        else description
                    ),
                    "lon": x,
                    "lat": y,
                    "distance_m": metres,
                    "first_reported_at": first_at,
                    "last_reported_at": last_at,
                    "age_days": max(0, int(age)),
                    "report_count": reports,
                    "supporters": supporters,
                }
            )
        return out, total

    def reports_within(
        self, lon: float, lat: float, radius_m: float, selection: Selection = EVERYTHING
    ) -> gpd.GeoDataFrame:
        """Reports within ``radius_m`` metres of a point, in id order (the Open311 circle
        search), as the public sees them (``_within``); the selection's page applies."""
        return _page(self._within("reports", lon, lat, radius_m, selection), selection)

    def change_mark(self) -> ChangeMark:
        """Where the city's change counter stands (what HTTP validators are made of)."""
        return self.store.change_mark(self.city.jurisdiction_id)

    def incident_tile(self, z: int, x: int, y: int) -> bytes:
        """One MVT tile of incidents, the blurred services at their stored public point
        (``_scope``: brought up to date first; see ``Store.incident_tile``)."""
        public = self._scope(EVERYTHING, public=True).public_points
        return self.store.incident_tile(self.city.jurisdiction_id, z, x, y, public)

    def _reaches_city(self, lon: float, lat: float, radius_m: float) -> bool:
        """Whether a circle meets the box of the city's territory: no incident lies
        outside it, and far from the city (a pole) its metric CRS may not even map the
        circle's surroundings."""
        minx, miny, maxx, maxy = bbox_around(lon, lat, radius_m)
        tminx, tminy, tmaxx, tmaxy = self.territory_box
        return minx <= tmaxx and tminx <= maxx and miny <= tmaxy and tminy <= maxy

    def newest_request_before(self, before: datetime) -> datetime | None:
        """When the newest request made before ``before`` was made (None when none was)."""
        return self.store.newest_request_before(self.city.jurisdiction_id, before)

    def recent_requests_start(self, days: int, mark: ChangeMark | None = None) -> datetime | None:
        """Where the last ``days`` local days with requests begin, until now (None for an
        empty store; ``services.recent``). Up to ``days`` index probes, so the answer is
        kept until the store changes or the local day turns (one read of the change
        counter per call, none when the caller read it: ``mark``).

        One computation at a time: the requests of a burst after a change (or a worker's
        first burst) wait for the first one's answer rather than each probing the store
        (16 × 91 statements at once made a worker's first Open311 reads take seconds)."""
        now = datetime.now(UTC)
        zone = self.city.config.timezone
        version = (mark or self.change_mark()).version
        key = (version, days, now.astimezone(ZoneInfo(zone)).date())
        with self._recent_lock:
            cached = self._recent_start
            if cached is None or cached[0] != key:
                start = request_days_start(self.newest_request_before, days, zone, until=now)
                cached = self._recent_start = (key, start)
        return cached[1]

    def events_between(self, kind: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Events of one kind in a time window (ends included), oldest first."""
        return self.store.events_between(self.city.jurisdiction_id, kind, start, end)

    def lookup(self, table: str, column: str, values: Sequence[object]) -> pd.DataFrame:
        """Rows of a table whose ``column`` is one of ``values`` (see ``Store.lookup``)."""
        return self.store.lookup(table, self.city.jurisdiction_id, column, values)

    def known_reports(self, source: str, external_ids: Sequence[str]) -> pd.DataFrame:
        """Reports of a source stored under these external ids (a keyed lookup):
        external_id, content_hash, report_id, incident_id, received_at, raw_digest."""
        with self.store.transaction(self.city.jurisdiction_id) as uow:
            return uow.reports.known(source, external_ids)


def thread_cheap_projection(
    gis: CityGIS, box: tuple[float, float, float, float]
) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``gis.project`` (WGS84 to the city's metric CRS) for the reads, which run in the
    server's thread pool: the same operation, cheap in a new thread.

    pyproj builds a transformer's PROJ objects again in each thread that first uses it;
    made from two CRSs that means looking the operation up in PROJ's database, 30-80 ms.
    AnyIO starts pool threads as concurrency grows (and retires them after 10 s idle), so
    a worker's first burst of searches paid it once per thread (issue 19: part of a first
    round's 0.6-1.8 s at concurrency 16 and 1M incidents). Made from the chosen
    operation's own PROJ pipeline, a thread's copy costs ~0.3 ms. The copy is used only
    if it gives bit-identical coordinates over a grid of the territory's box (``box``,
    WGS84), else the city's."""
    original = gis.to_metric
    try:
        copy = Transformer.from_pipeline(original.definition)
    except ProjError:  # an operation its pipeline text cannot rebuild
        return gis.project
    lon, lat = (
        grid.ravel()
        for grid in np.meshgrid(np.linspace(box[0], box[2], 9), np.linspace(box[1], box[3], 9))
    )
    if not all(
        np.array_equal(a, b)
        for a, b in zip(copy.transform(lon, lat), gis.project(lon, lat), strict=True)
    ):
        return gis.project

    def project(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = copy.transform(lon, lat)
        return np.asarray(x, dtype=float), np.asarray(y, dtype=float)

    return project


def instant(value: object) -> datetime | None:
    """A stored instant as an aware UTC datetime: psycopg gives datetimes, sqlite the
    GeoPackage's ISO 8601 text; None stays None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


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
