"""The production backend: PostgreSQL + PostGIS through psycopg 3 and a connection pool.

Each unit of work is one pooled connection in one transaction. Writers of the same keys
serialize on transaction-scoped advisory locks; ids come from the tables' identities, so
concurrent batches never draw the same id; bulk writes use COPY. Every key includes the
jurisdiction, so the schema can be distributed by jurisdiction with Citus.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TypeVar, cast

import numpy as np
import pandas as pd
import psycopg
import shapely
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from voirie.codecs import mvt
from voirie.errors import StoreError
from voirie.model import OPEN_STATUSES
from voirie.store.base import (
    KNOWN_REPORT_COLUMNS,
    MEMBER_COLUMNS,
    TokenRecord,
    migrations,
)
from voirie.store.candidates import BBox, OpenIncidents, bbox_around, naive_utc
from voirie.store.portable import PortableReads, PortableStatements
from voirie.store.schema import (
    BOOL_COLUMNS,
    COLUMNS,
    DATETIME_COLUMNS,
    ID_TABLES,
    MAX_ID,
    POINT_TABLES,
)
from voirie.store.selection import (
    Dialect,
)

WGS84 = 4326
# A little-endian 2D point with its SRID (EWKB): byte order, type with the SRID bit, SRID, x, y.
_EWKB_POINT = struct.Struct("<BIidd")
OPEN_TIMEOUT_S = 30.0
# Reads are idempotent: a connection dropped under them (failover, restart) is retried.
READ_ATTEMPTS = 3
RETRY_BACKOFF_S = 0.5
_INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})
_OPEN = sorted(status.value for status in OPEN_STATUSES)
_MIGRATIONS_TABLE = sql.SQL(
    "CREATE TABLE IF NOT EXISTS voirie_migrations ("
    "version integer PRIMARY KEY, name text NOT NULL, "
    "applied_at timestamptz NOT NULL DEFAULT now())"
)

# Incidents of one tile in integer tile coordinates, with their public attributes
# (voirie.codecs.mvt.FIELDS, the sqlite backend's); geom is NULL outside the buffer.
_TILE_INCIDENTS = """
      SELECT i.id,
             ST_AsMVTGeom(ST_Transform(i.geom, 3857), ST_TileEnvelope(%(z)s, %(x)s, %(y)s),
                          %(extent)s, %(buffer)s, true) AS geom,
             i.service_code, i.status, i.team, i.priority, i.report_count,
             to_char(i.last_reported_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS last_reported
      FROM incidents i
      WHERE i.jurisdiction_id = %(j)s
        AND i.geom && ST_Transform(
              ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), 4326)"""
# One MVT tile, one feature per incident (zoom >= mvt.CLUSTER_BELOW_ZOOM).
_TILE_SQL = f"""
    SELECT ST_AsMVT(t, 'incidents', %(extent)s, 'geom', 'id') FROM ({_TILE_INCIDENTS}) AS t
    WHERE t.geom IS NOT NULL"""
# One MVT tile, one feature per cell (below mvt.CLUSTER_BELOW_ZOOM), as mvt.encode_cells:
# cell floor(tile coordinate / cell) clamped to the buffer's cells, point at the cell centre.
# floor, not ST_SnapToGrid: snapping rounds half to even, which splits cell edges differently.
_CELL_TILE_SQL = f"""
    SELECT ST_AsMVT(c, 'incidents', %(extent)s, 'geom', 'id') FROM (
      SELECT ((cy - %(first)s) * %(side)s + (cx - %(first)s))::bigint AS id,
             ST_MakePoint(cx * %(cell)s + %(cell)s / 2, cy * %(cell)s + %(cell)s / 2) AS geom,
             count(*) AS "count",
             count(*) FILTER (WHERE status = ANY(%(open)s)) AS "open",
             sum(report_count)::bigint AS reports
      FROM (
        SELECT LEAST(GREATEST(floor(ST_X(t.geom) / %(cell)s)::int, %(first)s), %(last)s) AS cx,
               LEAST(GREATEST(floor(ST_Y(t.geom) / %(cell)s)::int, %(first)s), %(last)s) AS cy,
               t.status, t.report_count
        FROM ({_TILE_INCIDENTS}) AS t
        WHERE t.geom IS NOT NULL) AS p
      GROUP BY cx, cy) AS c"""

T = TypeVar("T")
Connection = psycopg.Connection[tuple[object, ...]]


def lock_key(key: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock`` (same in every process)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_MIGRATION_LOCK = lock_key("voirie/migrations")


def describe(url: str) -> str:
    """``host:port/dbname`` of a connection string, without user or password (safe to show)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the configured database"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Datetimes as tz-aware UTC and flags as bool, exactly as the sqlite backend returns them."""
    for name in frame.columns:
        if name in DATETIME_COLUMNS:
            frame[name] = pd.to_datetime(frame[name], utc=True)
        elif name in BOOL_COLUMNS:
            frame[name] = frame[name].astype(bool)
    return frame


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC, as the sqlite backend does."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _scalar(value: object) -> object:
    """One value as psycopg binds it: missing values (NaN, NaT, NA) as NULL, numpy as Python."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, float | np.floating) and np.isnan(value):
        return None
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _gist_bbox(table: str, alias: str) -> str:
    """Points inside a bbox, through the table's GiST index."""
    return f"{alias}.geom && ST_MakeEnvelope(?, ?, ?, ?, {WGS84})"


DIALECT = Dialect(placeholder="%s", bbox=_gist_bbox, instant=_utc)


def _values(series: pd.Series) -> list[object]:
    """A column as Python values with every kind of missing value (NaN, NaT, NA) as None.

    On a numpy array rather than through ``Series.where``: the same values, without
    pandas' fixed cost per call, which dominated the write of a one-report batch."""
    values = series.to_numpy(dtype=object, copy=True)
    values[pd.isna(values)] = None
    return cast(list[object], values.tolist())


def _copy_rows(
    table: str, frame: pd.DataFrame, types: dict[str, str]
) -> Iterator[tuple[object, ...]]:
    """DataFrame rows as COPY rows: schema column order, then the EWKB point if any."""
    columns: list[list[object]] = []
    for name in COLUMNS[table]:
        series = frame[name] if name in frame else pd.Series([None] * len(frame), dtype=object)
        if name in DATETIME_COLUMNS:
            series = pd.to_datetime(series, utc=True)
        elif name in BOOL_COLUMNS:
            series = series.astype(bool)
        elif types.get(name) in _INTEGER_TYPES:
            # Integer columns may arrive as floats (a NaN elsewhere in the column).
            series = pd.to_numeric(series).astype("Int64")
        columns.append(_values(series))
    if table in POINT_TABLES:
        points = shapely.set_srid(
            shapely.points(frame["lon"].to_numpy(float), frame["lat"].to_numpy(float)), WGS84
        )
        columns.append(shapely.to_wkb(points, hex=True, include_srid=True).tolist())
    return zip(*columns, strict=True)


class PostgisUnitOfWork(PortableStatements):
    """A write transaction on one pooled connection."""

    placeholder = "%s"
    typed = staticmethod(_typed)

    def bind_instant(self, at: datetime) -> object:
        """An instant as this backend stores it."""
        return _utc(at)

    def bind_flag(self, value: bool) -> object:
        """A flag as this backend stores it (a boolean)."""
        return value

    def bind_point(self, lon: float, lat: float) -> object:
        """A WGS84 point as this backend stores it (EWKB, cast to geometry on insert)."""
        return _EWKB_POINT.pack(1, 0x20000001, WGS84, lon, lat)

    def _run_many(self, text: str, rows: Sequence[Sequence[object]]) -> None:
        # One round trip for all the rows (psycopg pipelines executemany).
        with self.conn.cursor() as cur:
            cur.executemany(text, rows)

    def __init__(
        self,
        conn: Connection,
        jurisdiction_id: str,
        column_types: Callable[[Connection, str], dict[str, str]],
    ) -> None:
        self.conn: Connection = conn
        self.jurisdiction_id = jurisdiction_id
        self._column_types = column_types

    def lock(self, keys: Sequence[str]) -> None:
        """Transaction-scoped advisory locks, taken in sorted order so writers never deadlock."""
        hashes = sorted({lock_key(key) for key in keys})
        if hashes:
            with self.conn.cursor() as cur:
                cur.executemany("SELECT pg_advisory_xact_lock(%s)", [(h,) for h in hashes])

    def known_reports(self, source: str, external_ids: Sequence[str]) -> pd.DataFrame:
        """Stored reports among ``external_ids``, with their ids and incident."""
        rows = self.conn.execute(
            "SELECT r.external_id, r.content_hash, r.id, l.incident_id, r.received_at "
            "FROM reports r LEFT JOIN incident_reports l ON l.report_id = r.id "
            "WHERE r.jurisdiction_id = %s AND r.source = %s AND r.external_id = ANY(%s)",
            (self.jurisdiction_id, source, list(external_ids)),
        ).fetchall()
        return _typed(pd.DataFrame(rows, columns=KNOWN_REPORT_COLUMNS))

    def open_incidents_near(
        self,
        lon: float,
        lat: float,
        reach_m: float,
        service_codes: Sequence[str],
        since: datetime,
    ) -> OpenIncidents:
        """``open_incidents`` around the point as arrays (same query, same order)."""
        rows = self._open_rows(bbox_around(lon, lat, reach_m), service_codes, since)
        return OpenIncidents.from_rows(rows, [naive_utc(cast(datetime, row[4])) for row in rows])

    def _open_rows(
        self, bbox: BBox, service_codes: Sequence[str], since: datetime
    ) -> list[tuple[object, ...]]:
        """Rows (id, lon, lat, service_code, last_reported_at, segment_id, street_name) of
        the open incidents of these services in the bbox, by id, through the GiST index."""
        return self.conn.execute(
            "SELECT id, lon, lat, service_code, last_reported_at, segment_id, street_name "
            "FROM incidents "
            "WHERE jurisdiction_id = %s AND geom && ST_MakeEnvelope(%s, %s, %s, %s, %s) "
            "AND status = ANY(%s) AND service_code = ANY(%s) AND last_reported_at >= %s "
            "ORDER BY id",
            (
                self.jurisdiction_id,
                *(float(v) for v in bbox),
                WGS84,
                _OPEN,
                list(service_codes),
                _utc(since),
            ),
        ).fetchall()

    def reserve_ids(self, table: str, n: int) -> np.ndarray:
        """``n`` fresh ids from the table's identity sequence, unique even across transactions."""
        if table not in ID_TABLES:
            raise KeyError(table)
        if n <= 0:
            return np.zeros(0, dtype=np.int64)
        rows = self.conn.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            (table, n),
        ).fetchall()
        return np.sort(np.fromiter((row[0] for row in rows), dtype=np.int64, count=n))

    def insert(self, table: str, rows: pd.DataFrame) -> None:
        """Append rows with COPY."""
        if table not in COLUMNS:
            raise KeyError(table)
        if not len(rows):
            return
        names = list(COLUMNS[table]) + (["geom"] if table in POINT_TABLES else [])
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names))
        )
        # Convert everything before COPY starts: the connection is busy until it ends.
        data = list(_copy_rows(table, rows, self._column_types(self.conn, table)))
        with self.conn.cursor() as cur, cur.copy(statement) as copy:
            for row in data:
                copy.write_row(row)

    def add_to_incidents(self, rows: pd.DataFrame) -> None:
        """Add attached reports to existing incidents' counts and last-reported times."""
        if not len(rows):
            return
        self.conn.execute(
            "UPDATE incidents AS i SET report_count = i.report_count + u.added, "
            "last_reported_at = GREATEST(i.last_reported_at, u.last_reported_at), "
            "updated_at = u.updated_at "
            "FROM unnest(%s::bigint[], %s::integer[], %s::timestamptz[], %s::timestamptz[]) "
            "AS u(incident_id, added, last_reported_at, updated_at) "
            "WHERE i.jurisdiction_id = %s AND i.id = u.incident_id",
            (
                _values(pd.to_numeric(rows["incident_id"]).astype("Int64")),
                _values(pd.to_numeric(rows["added"]).astype("Int64")),
                _values(pd.to_datetime(rows["last_reported_at"], utc=True)),
                _values(pd.to_datetime(rows["updated_at"], utc=True)),
                self.jurisdiction_id,
            ),
        )

    def members(self, incident_ids: Sequence[int] | None = None) -> pd.DataFrame:
        """Linked reports of some incidents, or of every open one."""
        param: list[str] | list[int]
        if incident_ids is None:
            where, param = "i.status = ANY(%s)", list(_OPEN)
        else:
            where, param = "l.incident_id = ANY(%s::bigint[])", [int(i) for i in incident_ids]
        rows = self.conn.execute(
            "SELECT r.id, l.incident_id, r.service_code, r.lon, r.lat, r.address, r.requested_at, "
            "e.segment_id, e.street_name, l.score, l.reason FROM incident_reports l "
            "JOIN incidents i ON i.id = l.incident_id AND i.jurisdiction_id = l.jurisdiction_id "
            "JOIN reports r ON r.id = l.report_id AND r.jurisdiction_id = l.jurisdiction_id "
            "JOIN enrichments e ON e.report_id = r.id AND e.jurisdiction_id = r.jurisdiction_id "
            f"WHERE l.jurisdiction_id = %s AND {where} ORDER BY r.requested_at, r.id",
            (self.jurisdiction_id, param),
        ).fetchall()
        return _typed(pd.DataFrame(rows, columns=MEMBER_COLUMNS))

    def relink(self, links: pd.DataFrame) -> None:
        """Update every link in one statement."""
        if not len(links):
            return
        self.conn.execute(
            "UPDATE incident_reports AS l SET incident_id = u.incident_id, score = u.score, "
            "reason = u.reason, linked_at = u.linked_at "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::float8[], %s::text[], "
            "%s::timestamptz[]) AS u(report_id, incident_id, score, reason, linked_at) "
            "WHERE l.jurisdiction_id = %s AND l.report_id = u.report_id",
            (
                _values(pd.to_numeric(links["report_id"]).astype("Int64")),
                _values(pd.to_numeric(links["incident_id"]).astype("Int64")),
                _values(links["score"].astype(float)),
                _values(links["reason"].astype(str)),
                _values(pd.to_datetime(links["linked_at"], utc=True)),
                self.jurisdiction_id,
            ),
        )

    def reshape_incidents(self, rows: pd.DataFrame) -> None:
        """One UPDATE over the unnested columns."""
        if not len(rows):
            return

        def ints(name: str) -> list[object]:
            return _values(pd.to_numeric(rows[name]).astype("Int64"))

        def times(name: str) -> list[object]:
            return _values(pd.to_datetime(rows[name], utc=True))

        self.conn.execute(
            "UPDATE incidents AS i SET origin_report_id = coalesce(u.o, i.origin_report_id), "
            "lon = CASE WHEN u.o IS NULL THEN i.lon ELSE u.lon END, "
            "lat = CASE WHEN u.o IS NULL THEN i.lat ELSE u.lat END, "
            "segment_id = CASE WHEN u.o IS NULL THEN i.segment_id ELSE u.seg END, "
            "street_name = CASE WHEN u.o IS NULL THEN i.street_name ELSE u.street END, "
            "geom = CASE WHEN u.o IS NULL THEN i.geom "
            f"ELSE ST_SetSRID(ST_MakePoint(u.lon, u.lat), {WGS84}) END, "
            "report_count = coalesce(u.n, i.report_count), "
            "first_reported_at = coalesce(u.first, i.first_reported_at), "
            "last_reported_at = coalesce(u.last, i.last_reported_at), "
            "status = coalesce(u.status, i.status), "
            "merged_into = coalesce(u.merged_into, i.merged_into), "
            "updated_at = coalesce(u.updated_at, i.updated_at) "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::float8[], %s::float8[], %s::text[], "
            "%s::text[], %s::integer[], %s::timestamptz[], %s::timestamptz[], %s::text[], "
            "%s::bigint[], %s::timestamptz[]) AS u(id, o, lon, lat, seg, street, n, first, "
            "last, status, merged_into, updated_at) "
            "WHERE i.jurisdiction_id = %s AND i.id = u.id",
            (
                ints("id"),
                ints("origin_report_id"),
                _values(rows["lon"]),
                _values(rows["lat"]),
                _values(rows["segment_id"]),
                _values(rows["street_name"]),
                ints("report_count"),
                times("first_reported_at"),
                times("last_reported_at"),
                _values(rows["status"]),
                ints("merged_into"),
                times("updated_at"),
                self.jurisdiction_id,
            ),
        )

    def absorb(self, from_incident: int, to_incident: int) -> int:
        """Move the rows not already on the target, drop the rest, then recount."""
        key = {"j": self.jurisdiction_id, "a": int(from_incident), "b": int(to_incident)}
        for table in ("incident_supporters", "incident_followers"):
            name = sql.Identifier(table)
            self.conn.execute(
                sql.SQL(
                    "UPDATE {} AS s SET incident_id = %(b)s WHERE s.jurisdiction_id = %(j)s "
                    "AND s.incident_id = %(a)s AND NOT EXISTS (SELECT 1 FROM {} AS t "
                    "WHERE t.jurisdiction_id = s.jurisdiction_id AND t.incident_id = %(b)s "
                    "AND t.email = s.email)"
                ).format(name, name),
                key,
            )
            self.conn.execute(
                sql.SQL(
                    "DELETE FROM {} WHERE jurisdiction_id = %(j)s AND incident_id = %(a)s"
                ).format(name),
                key,
            )
        self.conn.execute(
            "UPDATE incidents SET merged_into = %(b)s WHERE jurisdiction_id = %(j)s "
            "AND merged_into = %(a)s",
            key,
        )
        rows = self.conn.execute(
            "UPDATE incidents AS i SET supporters = (SELECT count(*) FROM incident_supporters s "
            "WHERE s.jurisdiction_id = i.jurisdiction_id AND s.incident_id = i.id) "
            "WHERE i.jurisdiction_id = %(j)s AND i.id IN (%(a)s, %(b)s) "
            "RETURNING i.id, i.supporters",
            key,
        ).fetchall()
        return next(int(cast(int, n)) for i, n in rows if i == int(to_incident))

    def not_duplicates(self, incident_ids: Sequence[int] | None = None) -> pd.DataFrame:
        """Marked pairs touching the given incidents (all when None)."""
        ids = None if incident_ids is None else [int(i) for i in incident_ids]
        rows = self.conn.execute(
            "SELECT incident_a, incident_b FROM not_duplicates WHERE jurisdiction_id = %s "
            "AND (%s::bigint[] IS NULL OR incident_a = ANY(%s::bigint[]) "
            "OR incident_b = ANY(%s::bigint[])) ORDER BY incident_a, incident_b",
            (self.jurisdiction_id, ids, ids, ids),
        ).fetchall()
        return pd.DataFrame(rows, columns=["incident_a", "incident_b"], dtype="int64")

    def incident(self, incident_id: int) -> dict[str, object] | None:
        """The stored incident, locked (``FOR UPDATE``) until this transaction ends."""
        if not 0 < int(incident_id) <= MAX_ID:
            return None
        names = COLUMNS["incidents"]
        statement = sql.SQL(
            "SELECT {} FROM incidents WHERE jurisdiction_id = %s AND id = %s FOR UPDATE"
        ).format(sql.SQL(", ").join(map(sql.Identifier, names)))
        rows = self.conn.execute(statement, (self.jurisdiction_id, int(incident_id))).fetchall()
        if not rows:
            return None
        row = _typed(pd.DataFrame(rows, columns=names)).iloc[0]
        return {str(name): value for name, value in row.items()}

    def update_incident(self, incident_id: int, changes: Mapping[str, object]) -> None:
        """Set columns of one incident; its point follows a new lon/lat."""
        unknown = set(changes) - set(COLUMNS["incidents"])
        if unknown:
            raise KeyError(sorted(unknown))
        if not changes:
            return
        assignments = [sql.SQL("{} = %s").format(sql.Identifier(name)) for name in changes]
        values = [_scalar(v) for v in changes.values()]
        if {"lon", "lat"} & set(changes):
            assignments.append(
                sql.SQL("geom = ST_SetSRID(ST_MakePoint(lon, lat), {})").format(sql.Literal(WGS84))
            )
        statement = sql.SQL("UPDATE incidents SET {} WHERE jurisdiction_id = %s AND id = %s")
        self.conn.execute(
            statement.format(sql.SQL(", ").join(assignments)),
            (*values, self.jurisdiction_id, int(incident_id)),
        )

    def rule_versions(self, rule_ids: Sequence[str]) -> pd.DataFrame:
        """Stored versions of these rules, under a transaction lock per jurisdiction so two
        processes never record the same version twice."""
        self.lock([f"{self.jurisdiction_id}/routing_rules"])
        names = COLUMNS["routing_rules"]
        statement = sql.SQL(
            "SELECT {} FROM routing_rules WHERE jurisdiction_id = %s AND rule_id = ANY(%s) "
            "ORDER BY rule_id, version"
        ).format(sql.SQL(", ").join(map(sql.Identifier, names)))
        rows = self.conn.execute(statement, (self.jurisdiction_id, list(rule_ids))).fetchall()
        return _typed(pd.DataFrame(rows, columns=list(names)))

    def claim_outbox(
        self, worker: str, now: datetime, lease_until: datetime, limit: int
    ) -> pd.DataFrame:
        """Pending messages due by ``now`` and not leased, leased to ``worker``; rows another
        worker is claiming at the same moment are skipped (``FOR UPDATE SKIP LOCKED``)."""
        names = COLUMNS["outbox"]
        # A materialized CTE: the locking subquery runs once (LIMIT holds).
        statement = sql.SQL(
            "WITH c AS MATERIALIZED ("
            "SELECT id FROM outbox WHERE jurisdiction_id = %s AND status = 'pending' "
            "AND next_attempt_at <= %s AND (claimed_until IS NULL OR claimed_until < %s) "
            "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
            "UPDATE outbox AS o SET claimed_by = %s, claimed_until = %s FROM c "
            "WHERE o.jurisdiction_id = %s AND o.id = c.id RETURNING {}"
        ).format(sql.SQL(", ").join(sql.Identifier("o", name) for name in names))
        rows = self.conn.execute(
            statement,
            (
                self.jurisdiction_id,
                _utc(now),
                _utc(now),
                int(limit),
                worker,
                _utc(lease_until),
                self.jurisdiction_id,
            ),
        ).fetchall()
        frame = _typed(pd.DataFrame(rows, columns=list(names)))
        return frame.sort_values("id", ignore_index=True)

    def finish_outbox(self, rows: pd.DataFrame) -> None:
        """Record delivery attempts (columns id, status, attempts, next_attempt_at,
        last_error, delivered_at) and release the rows' lease."""
        if not len(rows):
            return
        self.conn.execute(
            "UPDATE outbox AS o SET status = u.status, attempts = u.attempts, "
            "next_attempt_at = u.next_attempt_at, last_error = u.last_error, "
            "delivered_at = u.delivered_at, claimed_by = NULL, claimed_until = NULL "
            "FROM unnest(%s::bigint[], %s::text[], %s::integer[], %s::timestamptz[], "
            "%s::text[], %s::timestamptz[]) "
            "AS u(id, status, attempts, next_attempt_at, last_error, delivered_at) "
            "WHERE o.jurisdiction_id = %s AND o.id = u.id",
            (
                _values(pd.to_numeric(rows["id"]).astype("Int64")),
                _values(rows["status"]),
                _values(pd.to_numeric(rows["attempts"]).astype("Int64")),
                _values(pd.to_datetime(rows["next_attempt_at"], utc=True)),
                _values(rows["last_error"]),
                _values(pd.to_datetime(rows["delivered_at"], utc=True)),
                self.jurisdiction_id,
            ),
        )

    def due_escalations(self, now: datetime, limit: int) -> pd.DataFrame:
        """Open incidents past their escalation time and not escalated yet, locked (rows
        another worker holds are skipped), with the team to escalate to."""
        rows = self.conn.execute(
            "SELECT e.incident_id, e.escalate_at, e.escalate_to FROM escalations e "
            "JOIN incidents i ON i.id = e.incident_id AND i.jurisdiction_id = e.jurisdiction_id "
            "WHERE e.jurisdiction_id = %s AND e.escalated_at IS NULL AND e.escalate_at <= %s "
            "AND i.status = ANY(%s) ORDER BY e.incident_id LIMIT %s "
            "FOR UPDATE OF e SKIP LOCKED",
            (self.jurisdiction_id, _utc(now), _OPEN, int(limit)),
        ).fetchall()
        return _typed(pd.DataFrame(rows, columns=["incident_id", "escalate_at", "escalate_to"]))

    def mark_escalated(self, incident_ids: Sequence[int], at: datetime) -> None:
        """Record that these incidents were escalated at ``at``."""
        self.conn.execute(
            "UPDATE escalations SET escalated_at = %s "
            "WHERE jurisdiction_id = %s AND incident_id = ANY(%s)",
            (_utc(at), self.jurisdiction_id, [int(i) for i in incident_ids]),
        )


class PostgisStore(PortableReads):
    """The production store: a psycopg connection pool on a PostGIS database."""

    backend = "postgis"
    dialect = DIALECT

    def __init__(
        self,
        url: str,
        min_size: int = 1,
        max_size: int = 8,
        open_timeout_s: float = OPEN_TIMEOUT_S,
    ) -> None:
        self.url = url
        self.pool: ConnectionPool[Connection] = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            name="voirie",
            kwargs={"application_name": "voirie"},
            check=ConnectionPool.check_connection,
        )
        try:
            self.pool.open(wait=True, timeout=open_timeout_s)
        except PoolTimeout as exc:
            self.pool.close()
            raise StoreError(
                f"cannot connect to PostgreSQL at {describe(url)} "
                f"within {open_timeout_s:g} s; check VOIRIE_DATABASE_URL and the server"
            ) from exc
        self._types: dict[str, dict[str, str]] = {}

    def _retrying(self, work: Callable[[Connection], T]) -> T:
        """Run an idempotent read, retrying on a lost connection only."""
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                with self.pool.connection() as conn:
                    return work(conn)
            except psycopg.OperationalError as exc:
                if attempt == READ_ATTEMPTS:
                    raise StoreError(
                        f"PostgreSQL at {describe(self.url)} is not reachable ({exc})"
                    ) from exc
                time.sleep(RETRY_BACKOFF_S * attempt)
        raise AssertionError("unreachable")

    def _column_types(self, conn: Connection, table: str) -> dict[str, str]:
        """Column name -> SQL type of a table, read once from the catalogue."""
        # On the caller's connection: a unit of work must not wait for a second pooled one.
        if table not in self._types:
            rows = conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = %s",
                (table,),
            ).fetchall()
            self._types[table] = {str(name): str(kind) for name, kind in rows}
        return self._types[table]

    def schema_version(self) -> int:
        """Highest applied migration, 0 before the first."""

        def version(conn: Connection) -> int:
            row = conn.execute("SELECT to_regclass('voirie_migrations') IS NOT NULL").fetchone()
            if not row or not row[0]:
                return 0
            top = conn.execute("SELECT COALESCE(MAX(version), 0) FROM voirie_migrations")
            (value,) = top.fetchone() or (0,)
            return int(cast(int, value))

        return self._retrying(version)

    def upgrade(self) -> list[int]:
        """Apply pending migrations, each in its own transaction.

        Each transaction first takes one advisory lock, so processes starting together
        apply every migration exactly once: the others wait, then see it applied.
        """
        applied = []
        for version, name, text in migrations(self.backend):
            with self.pool.connection() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                conn.execute(_MIGRATIONS_TABLE)
                done = conn.execute(
                    "SELECT 1 FROM voirie_migrations WHERE version = %s", (version,)
                ).fetchone()
                if done:
                    continue
                # A packaged migration file, not user input: run as a multi-statement script.
                conn.execute(text)
                conn.execute(
                    "INSERT INTO voirie_migrations (version, name) VALUES (%s, %s)",
                    (version, name),
                )
            applied.append(version)
        self._types.clear()
        return applied

    @contextmanager
    def transaction(self, jurisdiction_id: str) -> Iterator[PostgisUnitOfWork]:
        """One pooled connection in one transaction: commit on success, roll back on error."""
        with self.pool.connection() as conn, conn.transaction():
            yield PostgisUnitOfWork(conn, jurisdiction_id, self._column_types)

    def _frame(self, text: str, params: Sequence[object]) -> pd.DataFrame:
        """Rows of a read query as a typed DataFrame (retried on a lost connection)."""

        def run(conn: Connection) -> pd.DataFrame:
            with conn.cursor() as cur:
                cur.execute(text, tuple(params))
                names = [column.name for column in cur.description or []]
                return _typed(pd.DataFrame(cur.fetchall(), columns=names))

        return self._retrying(run)

    def count(self, table: str, jurisdiction_id: str) -> int:
        """Rows of a schema table for one jurisdiction."""
        if table not in COLUMNS:
            raise KeyError(table)
        statement = sql.SQL("SELECT count(*) FROM {} WHERE jurisdiction_id = %s").format(
            sql.Identifier(table)
        )

        def run(conn: Connection) -> int:
            row = conn.execute(statement, (jurisdiction_id,)).fetchone()
            return int(cast(int, row[0])) if row else 0

        return self._retrying(run)

    def lookup(
        self, table: str, jurisdiction_id: str, column: str, values: Sequence[object]
    ) -> pd.DataFrame:
        """Rows of a schema table whose ``column`` is one of ``values``."""
        names = COLUMNS[table]
        if column not in names:
            raise KeyError(f"{table}.{column}")
        statement = sql.SQL(
            "SELECT {} FROM {} WHERE jurisdiction_id = %s AND {} = ANY(%s) ORDER BY {}, {}"
        ).format(
            sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.Identifier(table),
            sql.Identifier(column),
            sql.Identifier(column),
            sql.Identifier(names[0]),
        )

        def run(conn: Connection) -> pd.DataFrame:
            rows = conn.execute(statement, (jurisdiction_id, list(values))).fetchall()
            return _typed(pd.DataFrame(rows, columns=list(names)))

        return self._retrying(run)

    def add_token(self, jurisdiction_id: str, token_hash: str, token: TokenRecord) -> None:
        """Insert one token row in its own transaction."""
        with self.pool.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO api_tokens (jurisdiction_id, token_hash, name, role, teams) "
                "VALUES (%s, %s, %s, %s, %s)",
                (jurisdiction_id, token_hash, token.name, token.role, list(token.teams)),
            )

    def find_token(self, jurisdiction_id: str, token_hash: str) -> TokenRecord | None:
        """The token row with this hash (an idempotent read, retried on a lost connection)."""

        def run(conn: Connection) -> TokenRecord | None:
            row = conn.execute(
                "SELECT name, role, teams FROM api_tokens "
                "WHERE jurisdiction_id = %s AND token_hash = %s",
                (jurisdiction_id, token_hash),
            ).fetchone()
            if row is None:
                return None
            name, role, teams = row
            return TokenRecord(str(name), str(role), tuple(cast(list[str], teams)))

        return self._retrying(run)

    def incident_tile(self, jurisdiction_id: str, z: int, x: int, y: int) -> bytes:
        """The tile from ``ST_AsMVT``, candidates found through the GiST index in WGS84.

        Below ``mvt.CLUSTER_BELOW_ZOOM`` grouped per cell in SQL (``_CELL_TILE_SQL``).
        """
        first, last = mvt.CELL_RANGE
        cells = z < mvt.CLUSTER_BELOW_ZOOM
        params: dict[str, object] = {
            "z": z,
            "x": x,
            "y": y,
            "j": jurisdiction_id,
            "extent": mvt.EXTENT,
            "buffer": mvt.BUFFER,
            "margin": mvt.FETCH_BUFFER / mvt.EXTENT,
            "cell": mvt.CELL,
            "first": first,
            "last": last,
            "side": last - first + 1,
            "open": mvt.OPEN_STATUS_CODES,
        }

        def run(conn: Connection) -> bytes:
            row = conn.execute(_CELL_TILE_SQL if cells else _TILE_SQL, params).fetchone()
            return bytes(cast(bytes, row[0])) if row and row[0] is not None else b""

        return self._retrying(run)

    def analyze(self) -> None:
        """``ANALYZE`` voirie's tables: right after a bulk COPY the planner knows nothing."""
        tables = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))

        def run(conn: Connection) -> None:
            conn.execute(sql.SQL("ANALYZE {}").format(tables))

        self._retrying(run)

    def close(self) -> None:
        """Close every pooled connection."""
        self.pool.close()
