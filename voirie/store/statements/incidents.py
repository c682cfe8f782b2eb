"""Incidents: the dedupe candidates around reports, one incident read locked and changed,
counts of attached reports, the bulk reshape of re-clustering, and merges."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import pandas as pd

from voirie.gis.metric import bbox_around
from voirie.model import IN_HAND_STATUSES, OPEN_STATUSES, Status
from voirie.store import public_points, stats
from voirie.store.base import RESHAPE_COLUMNS, AssignmentRecord, IncidentRow, Later
from voirie.store.candidates import OPEN_INCIDENT_COLUMNS, BBox, OpenIncidents
from voirie.store.schema import COLUMNS, MAX_ID
from voirie.store.statements.gathered import GatheredTables
from voirie.store.statements.session import Session, missing, typed
from voirie.store.statements.tables import insert_text
from voirie.values import aware_utc, naive_utc, optional_text

OPEN = tuple(sorted(status.value for status in OPEN_STATUSES))
IN_HAND = tuple(sorted(status.value for status in IN_HAND_STATUSES))
WAITING = tuple(sorted(set(OPEN) - set(IN_HAND)))
"""Open statuses that stop attracting reports once ``since`` has passed."""
INDEX_SLACK_DEG = 1e-5
"""More than a single-precision float's rounding of a longitude or latitude (< 4e-6)."""
# The statuses whose first reaching is an incident's ``resolved_at`` (the moves
# ``stats.RESOLVED_PATTERNS`` finds in the history).
RESOLVING = frozenset({Status.RESOLVED.value, Status.CLOSED.value})
# Where one of the moved rows' people already supports or follows the target.
_SAME_PERSON = {
    "incident_supporters": "(t.email = s.email OR t.client_key = s.client_key)",
    "incident_followers": "t.email = s.email",
}

_RESHAPE_TYPES = {
    "id": "bigint",
    "origin_report_id": "bigint",
    "lon": "float8",
    "lat": "float8",
    "segment_id": "text",
    "street_name": "text",
    "report_count": "integer",
    "first_reported_at": "timestamptz",
    "last_reported_at": "timestamptz",
    "status": "text",
    "merged_into": "bigint",
    "updated_at": "timestamptz",
}


_ADD_REPORT_HELD = (
    "UPDATE incidents AS i SET report_count = i.report_count + 1, "
    "last_reported_at = CASE WHEN i.last_reported_at < v.last THEN v.last "
    "ELSE i.last_reported_at END, "
    "first_reported_at = CASE WHEN i.first_reported_at > v.last THEN v.last "
    "ELSE i.first_reported_at END, "
    "updated_at = v.at FROM {values} AS v(last timestamptz, at timestamptz, j text, id bigint) "
    "WHERE i.jurisdiction_id = v.j AND i.id = v.id"
)
"""``SqlIncidents.add_report`` held in a gathered statement (``GatheredTables.hold``)."""


def _numpy_instant(value: object) -> datetime | str:
    """A stored instant as ``datetime64`` parses it: psycopg's datetime as naive UTC,
    sqlite's GeoPackage text (``...SSSZ``) without its zone letter."""
    if isinstance(value, datetime):
        return naive_utc(value)
    return str(value).removesuffix("Z")


_OPEN_SELECT = (
    "SELECT i.id, i.lon, i.lat, i.service_code, i.last_reported_at, i.segment_id, "
    "i.street_name, i.status, i.first_reported_at FROM incidents i WHERE i.jurisdiction_id = ?"
)
"""The dedupe candidates' columns (``candidates.OPEN_INCIDENT_COLUMNS``) of a city's
incidents, the conditions to follow."""
_UNTIL = " AND i.first_reported_at <= ?"
"""The candidates' bound on when an incident began (``until``: a report's time plus its
window, the latest of a batch's)."""


def _until(dialect: Any, until: datetime | None) -> tuple[object, ...]:
    """The parameter of ``_UNTIL``, or none when there is no bound."""
    return () if until is None else (dialect.instant(until),)


def _by_id(row: tuple[Any, ...]) -> int:
    """An incident row's id (its first column), to order rows by."""
    return int(row[0])


class SqlIncidents:
    """``Incidents`` over a session; ``tables`` may hold its per-report change (``add_report``)
    for the statement gathering a report's rows."""

    def __init__(self, session: Session, tables: GatheredTables) -> None:
        self.session = session
        self.tables = tables

    def _open_sent(
        self,
        bbox: BBox,
        service_codes: Sequence[str],
        since: datetime,
        until: datetime | None = None,
    ) -> Any:
        """(id, lon, lat, service_code, last_reported_at, segment_id, street_name, status,
        first_reported_at) of the open incidents of these services in the bbox (edges
        included), last reported at or after ``since`` or in hand (``model.IN_HAND_STATUSES``:
        those attract reports while open), first reported at or before ``until`` (when
        given: an incident that began later than a report's window never takes it),
        through the spatial index (a small bbox: one report's surroundings); the query
        sent, its cursor (rows in no particular order). The index's boxes are
        single-precision (rounded outwards), so it is asked for the bbox widened by
        ``INDEX_SLACK_DEG`` and the edges are checked on the stored lon/lat: exactly the
        points ``open_in_bbox`` finds."""
        s, d = self.session, self.session.dialect
        x0, y0, x1, y1 = (float(v) for v in bbox)
        return s.run(
            f"{_OPEN_SELECT} "
            f"AND {d.bbox('incidents', 'i')} AND {d.in_array('i.status', 'text')} "
            f"AND {d.in_array('i.service_code', 'text')} "
            "AND i.lon >= ? AND i.lat >= ? AND i.lon <= ? AND i.lat <= ? "
            f"AND (i.last_reported_at >= ? OR {d.in_array('i.status', 'text')})"
            + (_UNTIL if until is not None else ""),
            (
                s.jurisdiction_id,
                x0 - INDEX_SLACK_DEG,
                y0 - INDEX_SLACK_DEG,
                x1 + INDEX_SLACK_DEG,
                y1 + INDEX_SLACK_DEG,
                d.array(OPEN),
                d.array(list(service_codes)),
                x0,
                y0,
                x1,
                y1,
                d.instant(since),
                d.array(IN_HAND),
                *_until(d, until),
            ),
        )

    def open_in_bbox(
        self,
        bbox: BBox,
        service_codes: Sequence[str],
        since: datetime,
        until: datetime | None = None,
    ) -> pd.DataFrame:
        """Open incidents of these services in a WGS84 bbox, last reported at or after
        ``since`` or in hand, first reported at or before ``until`` (when given), by id
        (columns ``candidates.OPEN_INCIDENT_COLUMNS``)."""
        sent = self._open_in_window_sent(bbox, service_codes, since, until)
        rows = sorted(sent.fetchall(), key=_by_id)
        return typed(pd.DataFrame(rows, columns=OPEN_INCIDENT_COLUMNS))

    def _open_in_window_sent(
        self,
        bbox: BBox,
        service_codes: Sequence[str],
        since: datetime,
        until: datetime | None = None,
    ) -> Any:
        """``_open_sent`` through the time index (``incidents_open``: service, status, last
        reported) rather than the spatial one: a batch's bbox spans the city, so the
        spatial index would visit every incident stored (a bulk import's cost per batch
        growing with the tables), whereas the incidents waiting since ``since`` plus
        those in hand are bounded by the time window. Two disjoint branches, each an index
        range; the bbox is checked on the stored lon/lat (edges included, exactly)."""
        s, d = self.session, self.session.dialect
        columns = (
            f"{_OPEN_SELECT} "
            f"AND {d.in_array('i.service_code', 'text')} AND {d.in_array('i.status', 'text')} "
            "AND i.lon >= ? AND i.lat >= ? AND i.lon <= ? AND i.lat <= ?"
            + (_UNTIL if until is not None else "")
        )
        services = d.array(list(service_codes))
        corners = tuple(float(v) for v in bbox)
        return s.run(
            f"{columns} AND i.last_reported_at >= ? UNION ALL {columns}",
            (
                s.jurisdiction_id,
                services,
                d.array(WAITING),
                *corners,
                *_until(d, until),
                d.instant(since),
                s.jurisdiction_id,
                services,
                d.array(IN_HAND),
                *corners,
                *_until(d, until),
            ),
        )

    def open_near(
        self,
        lon: float,
        lat: float,
        reach_m: float,
        service_codes: Sequence[str],
        since: datetime,
        until: datetime | None = None,
    ) -> OpenIncidents:
        """``open_in_bbox`` of ``gis.metric.bbox_around(lon, lat, reach_m)`` as arrays."""
        return self.open_near_later(lon, lat, reach_m, service_codes, since, until)()

    def open_near_later(
        self,
        lon: float,
        lat: float,
        reach_m: float,
        service_codes: Sequence[str],
        since: datetime,
        until: datetime | None = None,
    ) -> Later[OpenIncidents]:
        """``open_near`` sent now, read when called."""
        cursor = self._open_sent(bbox_around(lon, lat, reach_m), service_codes, since, until)

        def read() -> OpenIncidents:
            rows = sorted(cursor.fetchall(), key=_by_id)
            return OpenIncidents.from_rows(
                rows,
                [_numpy_instant(row[4]) for row in rows],
                [_numpy_instant(row[8]) for row in rows],
            )

        return read

    def get(self, incident_id: int) -> IncidentRow | None:
        """The stored incident row (``schema.COLUMNS["incidents"]``), locked until commit."""
        if not 0 < int(incident_id) <= MAX_ID:
            return None
        s, names = self.session, COLUMNS["incidents"]
        frame = s.frame(
            f"SELECT {', '.join(names)} FROM incidents WHERE jurisdiction_id = ? AND id = ?"
            + s.dialect.lock_rows,
            (s.jurisdiction_id, int(incident_id)),
            names,
        )
        if frame.empty:
            return None
        row = frame.iloc[0]
        return IncidentRow(
            id=int(row["id"]),
            jurisdiction_id=str(row["jurisdiction_id"]),
            service_code=str(row["service_code"]),
            origin_report_id=_optional_int(row["origin_report_id"]),
            lon=float(row["lon"]),
            lat=float(row["lat"]),
            segment_id=optional_text(row["segment_id"]),
            street_name=optional_text(row["street_name"]),
            status=str(row["status"]),
            team=str(row["team"]),
            priority=int(row["priority"]),
            due_at=_optional_instant(row["due_at"]),
            report_count=int(row["report_count"]),
            first_reported_at=_instant(row["first_reported_at"]),
            last_reported_at=_instant(row["last_reported_at"]),
            updated_at=_instant(row["updated_at"]),
            merged_into=_optional_int(row["merged_into"]),
        )

    def update(self, incident_id: int, changes: Mapping[str, object]) -> None:
        """Set columns of one incident; its point follows a new lon or lat."""
        unknown = set(changes) - set(COLUMNS["incidents"])
        if unknown:
            raise KeyError(sorted(unknown))
        if not changes:
            return
        s = self.session
        assignments = [f"{name} = ?" for name in changes]  # names checked against the schema
        params = [s.value(name, value) for name, value in changes.items()]
        if "lon" in changes or "lat" in changes:
            # The new point from the new values: in SQL, ``SET geom = f(lon, lat)`` would
            # read the row's old lon and lat.
            lon, lat = ("?" if name in changes else name for name in ("lon", "lat"))
            assignments.append(f"geom = {s.dialect.make_point(lon, lat)}")
            params += [float(cast(float, changes[n])) for n in ("lon", "lat") if n in changes]
        s.run(
            f"UPDATE incidents SET {', '.join(assignments)} WHERE jurisdiction_id = ? AND id = ?",
            (*params, s.jurisdiction_id, int(incident_id)),
        )
        if {"lon", "lat", "service_code"} & set(changes):
            public_points.replaced(s, "incidents", [int(incident_id)])

    def set_status(self, incident_id: int, status: str, at: datetime) -> None:
        """Move one incident to ``status`` at ``at`` in one statement: its status, its
        ``updated_at`` and the dashboard's two moments (migration 0019) as
        ``refresh_timings`` would set them from the history with this change's event at
        ``at``: ``acknowledged_at`` the earliest status change, ``resolved_at`` the earliest
        move to resolved or closed. The stored moments are that minimum over the events
        before, so the minimum with ``at`` is the minimum over all of them, without
        reading the history again."""
        s = self.session
        moment = s.dialect.instant(at)
        earliest = "{0} = CASE WHEN {0} IS NULL OR {0} > ? THEN ? ELSE {0} END"
        moments = [earliest.format("acknowledged_at")]
        if status in RESOLVING:
            moments.append(earliest.format("resolved_at"))
        s.run(
            f"UPDATE incidents SET status = ?, updated_at = ?, {', '.join(moments)} "
            "WHERE jurisdiction_id = ? AND id = ?",
            (status, moment, *[moment] * (2 * len(moments)), s.jurisdiction_id, int(incident_id)),
        )

    def add_report(self, incident_id: int, reported_at: datetime, at: datetime) -> None:
        """Count one more report on an incident and move its first- and last-reported
        times (a report older than the incident, up to its window, moves the first).
        In a gathering block on PostgreSQL, sent as a part of the gathered statement."""
        s = self.session
        last = s.dialect.instant(reported_at)
        values = {"last": last, "at": s.dialect.instant(at), "j": s.jurisdiction_id}
        if self.tables.hold(_ADD_REPORT_HELD, {**values, "id": int(incident_id)}):
            return
        s.run(
            "UPDATE incidents SET report_count = report_count + 1, "
            "last_reported_at = CASE WHEN last_reported_at < ? THEN ? ELSE last_reported_at END, "
            "first_reported_at = CASE WHEN first_reported_at > ? THEN ? "
            "ELSE first_reported_at END, "
            "updated_at = ? WHERE jurisdiction_id = ? AND id = ?",
            (last, last, last, last, s.dialect.instant(at), s.jurisdiction_id, int(incident_id)),
        )

    def add_reports(self, rows: pd.DataFrame) -> None:
        """Count attached reports (columns incident_id, added, last_reported_at,
        updated_at, and first_reported_at where reports may be older than their incident:
        it moves the first-reported time back), one statement for all the incidents."""
        if not len(rows):
            return
        s, d = self.session, self.session.dialect
        columns = [
            ("incident_id", "bigint"),
            ("added", "integer"),
            ("last_reported_at", "timestamptz"),
            ("updated_at", "timestamptz"),
        ]
        values: list[Sequence[object]] = [
            s.ints(rows["incident_id"]),
            s.ints(rows["added"]),
            s.column("last_reported_at", rows["last_reported_at"]),
            s.column("updated_at", rows["updated_at"]),
        ]
        first = ""
        if "first_reported_at" in rows:
            columns.append(("first_reported_at", "timestamptz"))
            values.append(s.column("first_reported_at", rows["first_reported_at"]))
            first = (
                ", first_reported_at = CASE WHEN i.first_reported_at > u.first_reported_at "
                "THEN u.first_reported_at ELSE i.first_reported_at END"
            )
        s.run(
            "UPDATE incidents AS i SET report_count = i.report_count + u.added, "
            "last_reported_at = CASE WHEN i.last_reported_at < u.last_reported_at "
            "THEN u.last_reported_at ELSE i.last_reported_at END, updated_at = u.updated_at"
            f"{first} "
            f"FROM {d.rows(columns)} WHERE {d.unindexed('i.jurisdiction_id')} = ? "
            "AND i.id = u.incident_id",
            (
                *d.rows_params(values),
                s.jurisdiction_id,
            ),
        )

    def reshape(self, rows: pd.DataFrame) -> None:
        """Update many incidents at once (columns ``RESHAPE_COLUMNS``): where
        origin_report_id is given, the origin and its place (lon, lat, segment_id,
        street_name, point, zones) are set; elsewhere a null keeps the stored value."""
        if not len(rows):
            return
        s, d = self.session, self.session.dialect
        columns = [(name, _RESHAPE_TYPES[name]) for name in RESHAPE_COLUMNS]
        values: list[Sequence[object]] = [
            s.ints(rows[n]) if t in ("bigint", "integer") else s.column(n, rows[n])
            for n, t in columns
        ]
        moved = "CASE WHEN u.origin_report_id IS NULL THEN i.{0} ELSE {1} END"
        place = ", ".join(
            f"{name} = {moved.format(name, f'u.{name}')}"
            for name in ("lon", "lat", "segment_id", "street_name")
        )
        kept = ", ".join(
            f"{name} = coalesce(u.{name}, i.{name})"
            for name in RESHAPE_COLUMNS
            if name not in ("id", "lon", "lat", "segment_id", "street_name")
        )
        s.run(
            f"UPDATE incidents AS i SET {place}, "
            f"geom = {moved.format('geom', d.make_point('u.lon', 'u.lat'))}, {kept} "
            f"FROM {d.rows(columns)} WHERE i.jurisdiction_id = ? AND i.id = u.id",
            (*d.rows_params(values), s.jurisdiction_id),
        )
        public_points.replaced(s, "incidents", [int(i) for i in rows["id"]])
        self.zones_from_origin([int(i) for i in rows.loc[rows["origin_report_id"].notna(), "id"]])

    def refresh_timings(self, incident_ids: Sequence[int]) -> None:
        """Set these incidents' first acknowledgement and first resolution from their status
        events, in this transaction (``voirie.store.stats.REFRESH_TIMINGS``)."""
        if not len(incident_ids):
            return
        s, d = self.session, self.session.dialect
        s.run(
            stats.REFRESH_TIMINGS.format(ids_condition=d.in_array("entity_id", "bigint")),
            (
                *stats.RESOLVED_PATTERNS,
                s.jurisdiction_id,
                d.array([int(i) for i in incident_ids]),
                s.jurisdiction_id,
            ),
        )

    def absorb(self, from_incident: int, to_incident: int) -> int:
        """Move one incident's supporters, followers and merge pointers to another; someone
        supporting or following both (by email or anonymous client key) is kept once.
        Return the target's supporters now."""
        s = self.session
        j, a, b = s.jurisdiction_id, int(from_incident), int(to_incident)
        for table, same in _SAME_PERSON.items():
            s.run(
                f"UPDATE {table} AS s SET incident_id = ? "
                "WHERE s.jurisdiction_id = ? AND s.incident_id = ? AND NOT EXISTS "
                f"(SELECT 1 FROM {table} t WHERE t.jurisdiction_id = s.jurisdiction_id "
                f"AND t.incident_id = ? AND {same})",
                (b, j, a, b),
            )
            s.run(f"DELETE FROM {table} WHERE jurisdiction_id = ? AND incident_id = ?", (j, a))
        s.run(
            "UPDATE incidents SET merged_into = ? WHERE jurisdiction_id = ? AND merged_into = ?",
            (b, j, a),
        )
        s.run(
            "UPDATE incidents AS i SET supporters = (SELECT count(*) FROM incident_supporters s "
            "WHERE s.jurisdiction_id = i.jurisdiction_id AND s.incident_id = i.id) "
            "WHERE i.jurisdiction_id = ? AND i.id IN (?, ?)",
            (j, a, b),
        )
        (supporters,) = s.run(
            "SELECT supporters FROM incidents WHERE jurisdiction_id = ? AND id = ?", (j, b)
        ).fetchone()
        return int(supporters)

    def set_zones(self, incident_id: int, zones: Mapping[str, tuple[str, str | None]]) -> None:
        """Replace an incident's zones (layer -> (code, name); a layer it is outside of
        has no entry): where it stands now, after staff moved its pin."""
        s = self.session
        j, incident = s.jurisdiction_id, int(incident_id)
        s.run(
            "DELETE FROM incident_zones WHERE jurisdiction_id = ? AND incident_id = ?",
            (j, incident),
        )
        names = COLUMNS["incident_zones"]
        rows = [
            {"jurisdiction_id": j, "incident_id": incident, "layer": layer}
            | {"code": code, "name": name}
            for layer, (code, name) in sorted(zones.items())
        ]
        if rows:
            s.run_many(insert_text("incident_zones"), [s.bound_row(names, row) for row in rows])

    def zones_from_origin(self, incident_ids: Sequence[int]) -> None:
        """Set these incidents' zones to their first report's, as when they were opened:
        after their first report and place changed (a split, re-clustering)."""
        if not len(incident_ids):
            return
        s, d = self.session, self.session.dialect
        ids = d.array([int(i) for i in incident_ids])
        s.run(
            "DELETE FROM incident_zones WHERE jurisdiction_id = ? AND "
            + d.in_array("incident_id", "bigint"),
            (s.jurisdiction_id, ids),
        )
        s.run(
            "INSERT INTO incident_zones (jurisdiction_id, incident_id, layer, code, name) "
            "SELECT i.jurisdiction_id, i.id, z.layer, z.code, z.name FROM incidents i "
            "JOIN report_zones z ON z.jurisdiction_id = i.jurisdiction_id "
            "AND z.report_id = i.origin_report_id "
            f"WHERE i.jurisdiction_id = ? AND {d.in_array('i.id', 'bigint')}",
            (s.jurisdiction_id, ids),
        )

    def latest_assignment(self, incident_id: int) -> AssignmentRecord | None:
        """The incident's current assignment (its newest row): who or what gave it its team."""
        s = self.session
        row = s.run(
            "SELECT team, rule_id, rule_version, actor FROM assignments "
            "WHERE jurisdiction_id = ? AND incident_id = ? ORDER BY id DESC LIMIT 1",
            (s.jurisdiction_id, int(incident_id)),
        ).fetchone()
        if row is None:
            return None
        team, rule_id, version, actor = row
        return AssignmentRecord(
            str(team),
            None if rule_id is None else str(rule_id),
            None if version is None else int(version),
            str(actor),
        )


def _optional_int(value: object) -> int | None:
    """An id read back from a typed frame: None for NULL (None, NaN or NA)."""
    return None if missing(value) else int(cast(int, value))


def _optional_instant(value: object) -> datetime | None:
    """An instant read back from a typed frame (a UTC ``Timestamp``): None for NaT."""
    return None if missing(value) else _instant(value)


def _instant(value: object) -> datetime:
    """A UTC ``Timestamp`` of a typed frame as an aware ``datetime``."""
    return aware_utc(pd.Timestamp(cast(datetime, value)).to_pydatetime())
