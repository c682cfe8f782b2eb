"""The production backend: PostgreSQL + PostGIS through psycopg 3 and a connection pool.

Each unit of work is one pooled connection in one transaction. Writers of the same keys
serialize on transaction-scoped advisory locks; ids come from the tables' identities, so
concurrent batches never draw the same id; bulk writes use COPY. Every key includes the
jurisdiction, so the schema can be distributed by jurisdiction with Citus. The statements
are the shared ones (``voirie.store.statements``, ``voirie.store.reads``) in PostgreSQL's
``DIALECT``; this module keeps what only PostGIS does: advisory locks, ids from identities,
COPY, the pool and its retries, the migration runner and tiles from ``ST_AsMVT``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import struct
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, TypeGuard, TypeVar, cast

import numpy as np
import pandas as pd
import psycopg
import shapely
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from voirie.codecs import mvt
from voirie.errors import StoreError
from voirie.store import binary_copy
from voirie.store.base import ChangeMark, applying, pending_migrations
from voirie.store.dialect import Column, Dialect
from voirie.store.pipelined import pipelined_transaction
from voirie.store.public_points import Placement
from voirie.store.reads import StoreReads
from voirie.store.schema import BOOL_COLUMNS, COLUMNS, DATETIME_COLUMNS, ID_TABLES, POINT_TABLES
from voirie.store.statements.session import Session, typed
from voirie.store.statements.tables import known_table
from voirie.store.statements.unit import SqlUnitOfWork
from voirie.values import aware_utc

WGS84 = 4326
log = logging.getLogger(__name__)
# A little-endian 2D point with its SRID (EWKB): byte order, type with the SRID bit, SRID, x, y.
_EWKB_POINT = struct.Struct("<BIidd")
OPEN_TIMEOUT_S = 30.0
# Reads are idempotent: a connection dropped under them (failover, restart) is retried,
# within the pool timeout: a request must fail fast (503) when the database is down.
READ_ATTEMPTS = 3
RETRY_BACKOFF_S = 0.2
# Fail fast: wait at most this long for a pooled connection (then 503), give up a new
# connection after CONNECT_TIMEOUT_S (libpq's minimum is 2 s).
POOL_TIMEOUT_S = 3.0
CONNECT_TIMEOUT_S = 2
STATEMENT_TIMEOUT_MS = 60_000
QUICK_STATISTICS_TARGET = 10
"""``default_statistics_target`` of a quick ``analyze`` (during a bulk load): a sample of
3,000 rows a table instead of 30,000. The load's own statements (keyed probes, the open
incidents near a batch) need the tables' sizes, not fine histograms: at 100k reports the
three tables it refreshes took 1.8 s to analyze at the default 100, 0.17 s at 10."""
SMALL_TABLE_BYTES = 16 * 1024 * 1024
"""A table whose heap holds at most this many bytes gets the quick target from every
``analyze``, the full one included: its full statistics cost the end of a small load the
most (a 23.5k-report load: every table 1.8 s of server time at the default target, 0.3 s
at ``QUICK_STATISTICS_TARGET``; its largest table, events, 11 MB) and change no plan
there (the 123 statements of ``voirie serve``'s reads and of a re-import after that load:
the same plans with either). A larger table keeps the full target, whose fixed cost
weighs less in a larger load."""
ANALYZE_CONNECTIONS = 2
"""Connections ``PostgisStore.analyze`` shares the tables between (the server gives each
its own core): every table of a 100k-report store took 2.15 s to analyze on one, 1.65 s
on two (median of 4, interleaved)."""
# Recover alone: the pool's background reconnection backs off 1, 2, 4 s... for
# ``reconnect_timeout``, then gives up and the next request tries at once. A short
# timeout bounds the backoff, so a database that comes back is used within ~2 s.
RECONNECT_TIMEOUT_S = 3.0
# A pooled connection is checked (one round trip) before it is lent only when it sat idle
# longer than this: one returned a moment ago is as good as a check, and a read that meets
# a dead one anyway retries (``_retrying``). Under traffic no request pays the check.
IDLE_CHECK_S = 2.0
# A peer that vanished without closing (network cut, host down) is noticed by TCP
# keepalives and a user timeout within ~15 s instead of the kernel's two hours.
KEEPALIVES: dict[str, object] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,
}
_INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})
# What a new backend does on its first statements and then keeps (``fill_pool``): load
# PostGIS's library, and read the catalog of the tables public reads join and of their
# indexes (planning opens every index of a table). 78 ms for a first OGC page against
# 11 ms on a backend that had served one (issue 19).
WARM_STATEMENTS = (
    "SELECT postgis_lib_version()",
    *(
        f"EXPLAIN SELECT * FROM {table} WHERE id = 1"
        for table in ("incidents", "reports", "events", "assignments")
    ),
)
WRITE_BEHIND_ROWS = 500
"""Inserts of at least this many rows are sent by a unit of work's writer thread while
the caller goes on (``PostgisSession``): a bulk load's; one report's rows are sent at once."""
# information_schema's type of a column -> its binary COPY format (``binary_copy.field``;
# a column of any other type makes the COPY go as text).
_BINARY = {
    "bigint": "int8",
    "integer": "int4",
    "smallint": "int2",
    "text": "text",
    "double precision": "float8",
    "timestamp with time zone": "timestamptz",
    "boolean": "bool",
}
# A city's change counter (migrations 0021, 0023): the store's version before 0021 (row
# '') plus the sum of the city's shards, changed when the latest of them was; a probe and
# a range of the primary key.
_CHANGE_MARK = (
    "SELECT (base.version + coalesce(sum(city.version), 0))::bigint,"
    " greatest(base.changed_at, max(city.changed_at)), clock_timestamp()"
    " FROM store_changes base LEFT JOIN store_changes city ON city.jurisdiction_id = %s"
    " AND city.jurisdiction_id <> ''"
    " WHERE base.jurisdiction_id = '' AND base.shard = 0 GROUP BY base.version, base.changed_at"
)
_MIGRATIONS_TABLE = sql.SQL(
    "CREATE TABLE IF NOT EXISTS voirie_migrations ("
    "version integer PRIMARY KEY, name text NOT NULL, "
    "applied_at timestamptz NOT NULL DEFAULT now())"
)

# Incidents of one tile in integer tile coordinates, with their public attributes
# (voirie.codecs.mvt.FIELDS, the sqlite backend's); geom is NULL outside the buffer.
# {public}: empty for a city without blurring (the exact points, as ever); for one that
# blurs, the rows with a public point (migration 0020) are left out of the exact read and
# read by that point instead, through the partial GiST index of the public points (which
# ``public_geom &&`` matches). Point tiles are read without parallel workers
# (``PostgisStore.incident_tile``).
_TILE_COLUMNS = """i.service_code, i.status, i.team, i.priority, i.report_count,
             to_char(i.last_reported_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS last_reported"""
_TILE_ENVELOPE = "ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), 4326)"
_TILE_INCIDENTS = f"""
      SELECT i.id,
             ST_AsMVTGeom(ST_Transform(i.geom, 3857), ST_TileEnvelope(%(z)s, %(x)s, %(y)s),
                          %(extent)s, %(buffer)s, true) AS geom,
             {_TILE_COLUMNS}
      FROM incidents i
      WHERE i.jurisdiction_id = %(j)s AND i.geom && {_TILE_ENVELOPE}{{public}}"""
_TILE_PUBLIC = f"""
        AND i.public_lon IS NULL
      UNION ALL
      SELECT i.id,
             ST_AsMVTGeom(ST_Transform(i.public_geom, 3857),
                          ST_TileEnvelope(%(z)s, %(x)s, %(y)s), %(extent)s, %(buffer)s, true),
             {_TILE_COLUMNS}
      FROM incidents i
      WHERE i.jurisdiction_id = %(j)s AND i.public_geom && {_TILE_ENVELOPE}"""
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


def _applied(conn: Connection) -> set[int]:
    """The versions of the migrations applied (none before the first)."""
    row = conn.execute("SELECT to_regclass('voirie_migrations') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return set()
    return {int(cast(int, v)) for (v,) in conn.execute("SELECT version FROM voirie_migrations")}


def _sizes(conn: Connection, tables: Sequence[str]) -> dict[str, int]:
    """The bytes of each table's heap, which its ``ANALYZE`` samples."""
    rows = conn.execute(
        "SELECT t, pg_relation_size(t::regclass) FROM unnest(%s::text[]) AS t", (list(tables),)
    ).fetchall()
    return {str(table): int(cast(int, size)) for table, size in rows}


def _analyze(conn: Connection, tables: Sequence[str]) -> None:
    """``ANALYZE`` these tables, at the target set in the transaction; nothing if none
    (a bare ``ANALYZE`` takes every table of the database)."""
    if tables:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(map(sql.Identifier, tables))))


def _shares(sizes: Mapping[str, int], n: int) -> list[list[str]]:
    """The tables in at most ``n`` groups of nearly equal bytes: each table, the largest
    first, goes to the group that holds the fewest (no empty group)."""
    groups: list[list[str]] = [[] for _ in range(min(n, len(sizes)))]
    held = [0] * len(groups)
    for table in sorted(sizes, key=lambda name: -sizes[name]):
        least = held.index(min(held))
        groups[least].append(table)
        held[least] += sizes[table]
    return groups


def describe(url: str) -> str:
    """``host:port/dbname`` of a connection string, without user or password (safe to show)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the configured database"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def _gist_bbox(table: str, alias: str) -> str:
    """Points inside a bbox, through the table's GiST index."""
    return f"{alias}.geom && ST_MakeEnvelope(?, ?, ?, ?, {WGS84})"


def _gist_public_bbox(table: str, alias: str) -> str:
    """Public points inside a bbox: the exact GiST index for rows without a public point,
    the partial one of the public points (migration 0020: blurred rows only) for the
    others."""
    box = f"ST_MakeEnvelope(?, ?, ?, ?, {WGS84})"
    return (
        f"(({alias}.public_lon IS NULL AND {alias}.geom && {box}) OR {alias}.public_geom && {box})"
    )


def _ewkb_point(lon: float, lat: float) -> bytes:
    """A WGS84 point as EWKB (cast to geometry where a geometry column takes it)."""
    return _EWKB_POINT.pack(1, 0x20000001, WGS84, lon, lat)


def _rows(columns: Sequence[Column]) -> str:
    """Bound rows as ``unnest`` of one typed array per column."""
    arrays = ", ".join(f"%s::{kind}[]" for _, kind in columns)
    return f"unnest({arrays}) AS u({', '.join(name for name, _ in columns)})"


def _rows_params(columns: Sequence[Sequence[object]]) -> list[object]:
    """``_rows``'s parameters: a column of texts as one array literal, parsed by the
    statement's own ``::kind[]`` on the server (psycopg dumps a list of 50,000 ids, a
    re-import's probe, in about 120 ms of client CPU, one text in about 1 ms); any other
    column as it is."""
    return [_text_array(c) if _texts(c) else c for c in columns]


def _texts(column: Sequence[object]) -> TypeGuard[list[str]]:
    """Whether a column is a non-empty list of texts only."""
    return isinstance(column, list) and bool(column) and all(isinstance(v, str) for v in column)


def _text_array(values: Sequence[str]) -> str:
    """Texts as a PostgreSQL array literal, every element quoted (so ``NULL``, commas,
    braces and spaces stay texts), ``\\`` and ``"`` escaped when some text holds one."""
    joined = "".join(values)
    if '"' in joined or "\\" in joined:
        values = [v.replace("\\", "\\\\").replace('"', '\\"') for v in values]
    return '{"' + '","'.join(values) + '"}'


@functools.lru_cache(maxsize=64)
def _prefetch_text(counts: tuple[tuple[str, int], ...]) -> str:
    """The statement taking ``n`` fresh ids of each table's sequence, the tables (of
    ``schema.ID_TABLES``) and counts written into its text. Without parameters PostgreSQL
    plans it once per connection, where the same statement with the two arrays bound was
    planned anew at every POST (a custom plan: a generic one cannot know the arrays'
    lengths), and psycopg dumps no lists: about 60 µs of a POST, client and server
    (issue 20). Cached: a POST asks for the same counts every time."""
    for table, _ in counts:
        if table not in ID_TABLES:
            raise KeyError(f"{table}: no reserved ids")
    tables = ",".join(table for table, _ in counts)
    numbers = ",".join(str(int(n)) for _, n in counts)
    return (
        "SELECT c.t, nextval(pg_get_serial_sequence(c.t, 'id')) "
        f"FROM unnest('{{{tables}}}'::text[], '{{{numbers}}}'::int[]) AS c(t, n), "
        "generate_series(1, c.n)"
    )


DIALECT = Dialect(
    placeholder="%s",
    bbox=_gist_bbox,
    public_bbox=_gist_public_bbox,
    instant=aware_utc,
    flag=bool,
    point=_ewkb_point,
    make_point=lambda lon, lat: f"ST_SetSRID(ST_MakePoint({lon}, {lat}), {WGS84})",
    in_array=lambda column, kind: f"{column} = ANY(%s::{kind}[])",
    array=list,
    from_array=lambda value: tuple(cast(list[str], value)),
    rows=_rows,
    rows_params=_rows_params,
    probe=lambda table, alias, condition: (
        f"CROSS JOIN LATERAL (SELECT * FROM {table} {alias} WHERE {condition} LIMIT 1) {alias}"
    ),
    # ST_Transform to an integer SRID: a PROJ text would build its transformation per row.
    metric_distance=lambda alias: (
        f"ST_Distance(ST_Transform({alias}.geom, %s::integer), "
        f"ST_Transform(ST_SetSRID(ST_MakePoint(%s, %s), {WGS84}), %s::integer))"
    ),
    lock_rows=" FOR UPDATE",
    skip_locked=lambda alias: f" FOR UPDATE OF {alias} SKIP LOCKED",
    unindexed=lambda column: column,
)


def _values(series: pd.Series) -> list[object]:
    """A column as Python values with every kind of missing value (NaN, NaT, NA) as None.

    On a numpy array rather than through ``Series.where``: the same values, without
    pandas' fixed cost per call, which dominated the write of a one-report batch."""
    values = series.to_numpy(dtype=object, copy=True)
    values[pd.isna(values)] = None
    return cast(list[object], values.tolist())


def _copy_columns(table: str, frame: pd.DataFrame, types: dict[str, str]) -> list[list[object]]:
    """DataFrame columns as COPY columns: schema column order, then the point as EWKB
    bytes if the table has one."""
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
        columns.append(shapely.to_wkb(points, include_srid=True).tolist())
    return columns


def _binary_stream(table: str, frame: pd.DataFrame, types: dict[str, str]) -> bytes | None:
    """The rows of ``frame`` as one binary COPY stream of the table's columns (schema
    order, then the point as EWKB ``bytea``: its binary input reads EWKB), built a column
    at a time (``binary_copy``); None when a column has no binary type here or a value
    does not fit its column's (say a number in a text column): that COPY is sent as text,
    which the server parses as before."""
    fields = []
    for name in COLUMNS[table]:
        if types.get(name) not in _BINARY:
            return None
        series = frame[name] if name in frame else pd.Series([None] * len(frame), dtype=object)
        column = binary_copy.field(_BINARY[types[name]], series)
        if column is None:
            return None
        fields.append(column)
    if table in POINT_TABLES:
        points = shapely.set_srid(
            shapely.points(frame["lon"].to_numpy(float), frame["lat"].to_numpy(float)), WGS84
        )
        wkb = pd.Series(shapely.to_wkb(points, include_srid=True), dtype=object)
        column = binary_copy.field("bytea", wkb)
        if column is None:
            return None
        fields.append(column)
    return binary_copy.encode(fields, len(frame))


class PostgisSession(Session):
    """A write transaction on one pooled connection.

    A bulk insert (``WRITE_BEHIND_ROWS`` rows or more) is converted to its COPY stream by
    the caller, then sent by the session's writer thread while the caller goes on building
    the next rows: the server stores one table while the client prepares the next (psycopg
    leaves the GIL while it waits on the socket), and never waits for a stream to be built
    between two COPYs (converting on the writer thread left the connection idle for a
    fifth of a 23.5k import's store pass). Every other statement first waits for those inserts
    (``drain``), so statements still run on the connection one at a time and in the
    caller's order, and an insert that failed raises there, at the latest before the
    commit (``PostgisStore.transaction``)."""

    conn: Connection

    def __init__(
        self,
        conn: Connection,
        jurisdiction_id: str,
        column_types: Callable[[Connection], Mapping[str, dict[str, str]]],
    ) -> None:
        super().__init__(conn, jurisdiction_id, DIALECT)
        self._column_types = column_types
        self._tables: Mapping[str, dict[str, str]] | None = None
        self._spare: dict[str, list[int]] = {}
        self._prefetched: list[psycopg.Cursor[tuple[object, ...]]] = []
        self._writer: ThreadPoolExecutor | None = None
        self._behind: list[Future[None]] = []

    def drain(self) -> None:
        """Wait for the inserts the writer thread is sending; raise the first one's
        error (those queued after it failed as the transaction was already aborted)."""
        behind, self._behind = self._behind, []
        errors = [error for future in behind if (error := future.exception()) is not None]
        if errors:
            raise errors[0]

    def close(self) -> None:
        """Wait for the writer thread's inserts, whatever their outcome (the transaction
        is being rolled back, or ``drain`` already raised), and stop the thread: the
        commit or rollback then has the connection alone."""
        for future in self._behind:
            future.exception()
        self._behind = []
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    def run(self, statement: str, params: Sequence[object] = ()) -> Any:
        """``Session.run`` once the inserts still being sent are done."""
        self.drain()
        return super().run(statement, params)

    def run_many(self, statement: str, rows: Sequence[Sequence[object]]) -> None:
        """One round trip for all the rows (psycopg pipelines ``executemany``)."""
        self.drain()
        with self.conn.cursor() as cur:
            cur.executemany(DIALECT.text(statement), rows)

    def lock(self, keys: Sequence[str], shared: Sequence[str] = ()) -> None:
        """Transaction-scoped advisory locks: the ``shared`` keys first (shared mode), then
        the others, each set in sorted order, so writers never deadlock as long as every
        key is taken in one mode or comes after every key taken in the other."""
        common = sorted({lock_key(key) for key in shared})
        hashes = sorted({lock_key(key) for key in keys} - set(common))
        if not (common or hashes):
            return
        self.drain()
        # One statement, the keys in the arrays' order (a function scan yields its rows in
        # order, each locked as it comes); the arrays as literals: a statement per key and
        # psycopg's list dumping were a tenth of a POST's worker CPU (issue 20).
        self.conn.execute(
            "SELECT count(CASE WHEN t.shared THEN pg_advisory_xact_lock_shared(t.k) "
            "ELSE pg_advisory_xact_lock(t.k) END) "
            "FROM unnest(%s::int8[], %s::bool[]) AS t(k, shared)",
            (
                "{" + ",".join(map(str, common + hashes)) + "}",
                "{" + ",".join(["t"] * len(common) + ["f"] * len(hashes)) + "}",
            ),
        )

    def pipelined(self) -> AbstractContextManager[object]:
        """psycopg's pipeline mode: statements are queued and sent together, a read
        waits for its own results only (one round trip for everything before it)."""
        self.drain()
        return self.conn.pipeline()

    def prefetch_ids(self, counts: Mapping[str, int]) -> None:
        """Fresh ids of several tables' sequences in one statement, kept for ``reserve_ids``
        (ids left unused are gaps, as a rolled back transaction leaves). Sent now, read at
        the next ``reserve_ids``: in a pipelined block it shares the round trip of the
        reads sent with it."""
        if not counts:
            return
        self.drain()
        self._prefetched.append(self.conn.execute(_prefetch_text(tuple(counts.items()))))

    def reserve_ids(self, table: str, n: int) -> np.ndarray:
        """``n`` fresh ids from the table's identity sequence, unique even across
        transactions (prefetched ones first)."""
        self.drain()
        while self._prefetched:
            for name, value in self._prefetched.pop(0).fetchall():
                self._spare.setdefault(str(name), []).append(int(cast(int, value)))
            for kept in self._spare.values():
                kept.sort()
        spare = self._spare.get(table, [])
        if len(spare) >= n:
            self._spare[table] = spare[n:]
            return np.array(spare[:n], dtype=np.int64)
        # The sequence is looked up once (OFFSET 0 keeps the subquery from being folded
        # into a lookup per id: 7x the time), the ids come back as one array.
        row = self.conn.execute(
            "SELECT array_agg(nextval(q.s)) FROM (SELECT pg_get_serial_sequence(%s, 'id')"
            "::regclass AS s OFFSET 0) AS q, generate_series(1, %s)",
            (table, n),
        ).fetchone()
        assert row is not None  # an aggregate returns one row
        return np.sort(np.array(row[0], dtype=np.int64))

    def insert_frame(self, table: str, rows: pd.DataFrame) -> None:
        """Append rows with COPY: a bulk insert is converted here (so the frame may change
        as soon as this returns) and sent by the writer thread, a smaller one sent now."""
        types = self._types(table)
        if len(rows) < WRITE_BEHIND_ROWS:
            self.drain()
            self._copy(table, rows, types)
            return
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voirie-copy")
        stream = _binary_stream(table, rows, types)
        if stream is None:  # rare (see ``_copy``): converted to text on the writer thread
            self._behind.append(self._writer.submit(self._copy_text, table, rows.copy(), types))
        else:
            self._behind.append(self._writer.submit(self._send, table, stream))

    def _types(self, table: str) -> dict[str, str]:
        """Column name -> SQL type of a table (the store's catalogue read, made at this
        session's first insert, before anything is sent behind)."""
        if self._tables is None:
            self.drain()
            self._tables = self._column_types(self.conn)
        return self._tables.get(table, {})

    def _statement(self, table: str, binary: bool) -> sql.Composed:
        """The table's ``COPY ... FROM STDIN`` of its schema columns, then its point."""
        names = list(COLUMNS[table]) + (["geom"] if table in POINT_TABLES else [])
        return sql.SQL("COPY {} ({}) FROM STDIN{}").format(
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.SQL(" (FORMAT binary)" if binary else ""),
        )

    def _send(self, table: str, stream: bytes) -> None:
        """COPY a binary stream (``_binary_stream``) into the table."""
        with self.conn.cursor() as cur, cur.copy(self._statement(table, True)) as copy:
            copy.write(stream)

    def _copy(self, table: str, rows: pd.DataFrame, types: dict[str, str]) -> None:
        """COPY rows, binary when every value fits its column's binary format (the
        server then parses no text: timestamps, numbers and points cost it as much as
        in the bulk floor's binary COPY), else as text."""
        # Convert everything before COPY starts: the connection is busy until it ends.
        stream = _binary_stream(table, rows, types)
        if stream is None:
            self._copy_text(table, rows, types)
        else:
            self._send(table, stream)

    def _copy_text(self, table: str, rows: pd.DataFrame, types: dict[str, str]) -> None:
        """COPY rows as text (the server parses every value)."""
        columns = _copy_columns(table, rows, types)
        # Text COPY parses the hex form of the points.
        columns[len(COLUMNS[table]) :] = [
            [bytes(cast(bytes, point)).hex() for point in column]
            for column in columns[len(COLUMNS[table]) :]
        ]
        with self.conn.cursor() as cur, cur.copy(self._statement(table, False)) as copy:
            for row in zip(*columns, strict=True):
                copy.write_row(row)


class IdleCheck:
    """The pool's ``check``: ``ConnectionPool.check_connection`` for a connection not lent
    for longer than ``after_s`` only (``stamp`` is the pool's ``configure`` callback: when
    each connection was made). Timed from the last lending, not the last return: a pool
    with a ``reset`` callback hands every returned connection to a worker thread, a thread
    switch per request; a connection lent within ``after_s`` was idle no longer."""

    def __init__(self, after_s: float = IDLE_CHECK_S) -> None:
        self.after_s = after_s
        self.pool: ConnectionPool[Connection] | None = None
        """The pool whose connections this checks, set once the pool is made."""
        self._since: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()

    def stamp(self, conn: Connection) -> None:
        """Note that ``conn`` is known good now (just opened)."""
        self._since[conn] = time.monotonic()

    def __call__(self, conn: Connection) -> None:
        since, now = self._since.get(conn), time.monotonic()
        if since is None or now - since > self.after_s:
            try:
                ConnectionPool.check_connection(conn)
            except psycopg.Error:
                # One idle connection lost says its idle peers may be too (a restart, an
                # outage): psycopg_pool would check them one per attempt, 1 and 2 s
                # apart, past a request's timeout. Check them all now (the lost ones are
                # replaced in the background), so the request waits for one replacement.
                if self.pool is not None:
                    self.pool.check()
                raise
        self._since[conn] = now


def serve_waiters(pool: ConnectionPool[Connection]) -> None:
    """The pool's ``reconnect_failed``: when a connection's replacement gave up while a
    request waits, start another. psycopg_pool lowers its count then but grows again only
    for a request arriving later, so a request that queued behind the lost connections
    (a read retrying through an outage) would wait out its timeout with the database back;
    ``check`` grows the pool by one, which keeps growing while requests wait."""
    if pool.get_stats().get("requests_waiting"):
        pool.check()


class PostgisStore(StoreReads):
    """The production store: a psycopg connection pool on a PostGIS database."""

    backend = "postgis"
    dialect = DIALECT

    def __init__(
        self,
        url: str,
        min_size: int = 1,
        max_size: int = 8,
        open_timeout_s: float = OPEN_TIMEOUT_S,
        *,
        pool_timeout_s: float = POOL_TIMEOUT_S,
        connect_timeout_s: int = CONNECT_TIMEOUT_S,
        statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
    ) -> None:
        self.url = url
        self.placements: dict[str, Placement] = {}
        checked = IdleCheck()
        self.pool: ConnectionPool[Connection] = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            name="voirie",
            kwargs={
                "application_name": "voirie",
                "connect_timeout": max(2, connect_timeout_s),
                # No JIT: voirie's statements are short, and compiling one took longer
                # than running it (250 ms of a 600 ms nearby search at 1M incidents).
                "options": f"-c statement_timeout={statement_timeout_ms} -c jit=off",
                # A read is one statement, sent alone: no BEGIN before it, no COMMIT after
                # (two round trips). Units of work open their transaction themselves.
                "autocommit": True,
                **KEEPALIVES,
            },
            configure=checked.stamp,
            check=checked,
            timeout=pool_timeout_s,
            # At start, keep trying as long as ``open`` waits (a database starting late).
            reconnect_timeout=open_timeout_s,
            reconnect_failed=serve_waiters,
        )
        checked.pool = self.pool
        try:
            self.pool.open(wait=True, timeout=open_timeout_s)
        except PoolTimeout as exc:
            self.pool.close()
            raise StoreError(
                f"cannot connect to PostgreSQL at {describe(url)} "
                f"within {open_timeout_s:g} s; check VOIRIE_DATABASE_URL and the server"
            ) from exc
        self.pool.reconnect_timeout = RECONNECT_TIMEOUT_S
        self._types: dict[str, dict[str, str]] = {}

    @property
    def concurrent_transactions(self) -> bool:
        """Whether two transactions can be open at once, each on its pooled connection
        (seeing the other's rows only once committed): a bulk import then reads its
        next batch while the last one commits (``Importer._store_overlapped``)."""
        return self.pool.max_size >= 2

    def unavailable(self, exc: Exception) -> StoreError:
        """The 503 for a database that cannot answer now (down, restarting, overloaded)."""
        if isinstance(exc, PoolTimeout):
            reason = f"no connection within {self.pool.timeout:g} s"
        elif isinstance(exc, psycopg.errors.QueryCanceled):
            reason = "the query took longer than the statement timeout"
        else:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StoreError(
            f"the database (PostgreSQL at {describe(self.url)}) is not available: {reason}; "
            "try again in a few seconds"
        )

    def _retrying(self, work: Callable[[Connection], T]) -> T:
        """Run an idempotent read, retrying on a lost connection only, within the pool
        timeout; ``StoreError`` (503) when the database does not answer in time."""
        deadline = time.monotonic() + self.pool.timeout
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                with self.pool.connection(timeout=max(0.1, deadline - time.monotonic())) as conn:
                    return work(conn)
            except (PoolTimeout, psycopg.errors.QueryCanceled) as exc:
                raise self.unavailable(exc) from exc
            except psycopg.OperationalError as exc:
                pause = RETRY_BACKOFF_S * attempt
                if attempt == READ_ATTEMPTS or time.monotonic() + pause >= deadline:
                    raise self.unavailable(exc) from exc
                # One connection lost (a restart, a failover) says its idle peers may be
                # too: a full pool (``fill_pool``) would hand them out one per attempt.
                self.pool.check()
                time.sleep(pause)
        raise AssertionError("unreachable")

    def _column_types(self, conn: Connection) -> dict[str, dict[str, str]]:
        """Table -> column name -> SQL type of every table of the schema, read from the
        catalogue once (one statement) until the next migration."""
        # On the caller's connection: a unit of work must not wait for a second pooled one.
        if not self._types:
            rows = conn.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = ANY(%s)",
                (list(COLUMNS),),
            ).fetchall()
            read: dict[str, dict[str, str]] = {}
            for table, name, kind in rows:
                read.setdefault(str(table), {})[str(name)] = str(kind)
            self._types = read  # whole, for the sessions of other threads
        return self._types

    def schema_version(self) -> int:
        """Highest applied migration, 0 before the first."""
        return max(self._retrying(_applied), default=0)

    def upgrade(self) -> list[int]:
        """Apply pending migrations, all in one transaction.

        A database already up to date costs one read and takes no lock. Otherwise the
        transaction first takes one advisory lock, so processes starting together apply
        every migration exactly once: the others wait, then see them applied. One commit
        for them all (one flush of the log to disk, not one per migration: 23 on a new
        database); a migration that fails rolls back those applied with it, and its error
        names its file.
        """
        if not pending_migrations(self.backend, self._retrying(_applied)):
            return []
        with self.pool.connection() as conn, conn.transaction():
            # A migration rewrites whole tables: no per-statement limit here.
            conn.execute("SET LOCAL statement_timeout = 0")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute(_MIGRATIONS_TABLE)
            todo = pending_migrations(self.backend, _applied(conn))
            for _, name, text in todo:
                with applying(name):
                    # A packaged migration file, not user input: run as a multi-statement
                    # script.
                    conn.execute(text)
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO voirie_migrations (version, name) VALUES (%s, %s)",
                    [(version, name) for version, name, _ in todo],
                )
        self._types = {}
        return [version for version, _, _ in todo]

    @contextmanager
    def transaction(
        self, jurisdiction_id: str, *, pipelined: bool = False
    ) -> Iterator[SqlUnitOfWork]:
        """One pooled connection in one transaction: commit on success, roll back on error.

        ``pipelined``: every statement in psycopg's pipeline mode, BEGIN and COMMIT
        included (``pipelined_transaction``: neither costs a round trip of its own);
        no bulk insert then (COPY has no pipeline mode).

        A connection that cannot be had in time, or that drops during the transaction,
        is a ``StoreError`` (503), never a bare 500: the client retries (with its
        Idempotency-Key, should the drop have cut the commit itself)."""
        try:
            with self.pool.connection() as conn:
                begun = pipelined_transaction(conn) if pipelined else conn.transaction()
                with begun:
                    session = PostgisSession(conn, jurisdiction_id, self._column_types)
                    session.placement = self.placements.get(jurisdiction_id)
                    try:
                        yield SqlUnitOfWork(session, pipelined=pipelined)
                        session.drain()  # an insert still being sent fails before the commit
                    finally:
                        session.close()
        except (PoolTimeout, psycopg.OperationalError) as exc:
            if isinstance(exc, psycopg.OperationalError):
                self.pool.check()  # its idle peers may be lost too (as ``_retrying``)
            raise self.unavailable(exc) from exc

    def _frame(self, text: str, params: Sequence[object]) -> pd.DataFrame:
        """Rows of a read query as a typed DataFrame (retried on a lost connection)."""

        def run(conn: Connection) -> pd.DataFrame:
            with conn.cursor() as cur:
                cur.execute(text, tuple(params))
                names = [column.name for column in cur.description or []]
                return typed(pd.DataFrame(cur.fetchall(), columns=names))

        return self._retrying(run)

    def rows(self, text: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        """Rows of one read query as tuples (retried on a lost connection)."""

        def run(conn: Connection) -> list[tuple[object, ...]]:
            with conn.cursor() as cur:
                cur.execute(text, tuple(params))
                return list(cur.fetchall())

        return self._retrying(run)

    def rows_batch(
        self, statements: Sequence[tuple[str, Sequence[object]]]
    ) -> list[list[tuple[object, ...]]]:
        """The rows of several read queries, sent together on one pooled connection (one
        round trip in pipeline mode): a page and its zones cost one connection check."""

        def run(conn: Connection) -> list[list[tuple[object, ...]]]:
            with conn.pipeline():
                cursors = [conn.cursor() for _ in statements]
                for cur, (text, params) in zip(cursors, statements, strict=True):
                    cur.execute(text, tuple(params))
            return [list(cur.fetchall()) for cur in cursors]

        return self._retrying(run)

    def change_mark(self, jurisdiction_id: str) -> ChangeMark:
        """The city's change counter, and the database server's clock."""

        def run(conn: Connection) -> ChangeMark:
            row = conn.execute(_CHANGE_MARK, (jurisdiction_id,)).fetchone()
            assert row is not None  # migrations 0021 and 0023 keep the store's row ''
            version, changed_at, now = row
            return ChangeMark(
                int(cast(int, version)), cast(datetime, changed_at), cast(datetime, now)
            )

        return self._retrying(run)

    def _write(self, text: str, params: Sequence[object]) -> None:
        """One statement in its own transaction (``StoreError`` when the database is down)."""
        try:
            with self.pool.connection() as conn, conn.transaction():
                conn.execute(text, tuple(params))
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise self.unavailable(exc) from exc

    def incident_tile(
        self, jurisdiction_id: str, z: int, x: int, y: int, public: bool = False
    ) -> bytes:
        """The tile from ``ST_AsMVT``, candidates found through the GiST index in WGS84
        (with ``public``, the public points' too: ``_TILE_PUBLIC``).

        Below ``mvt.CLUSTER_BELOW_ZOOM`` grouped per cell in SQL (``_CELL_TILE_SQL``).
        """
        first, last = mvt.CELL_RANGE
        statement = (_CELL_TILE_SQL if z < mvt.CLUSTER_BELOW_ZOOM else _TILE_SQL).format(
            public=_TILE_PUBLIC if public else ""
        )
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
            if z < mvt.CLUSTER_BELOW_ZOOM:
                # A cell tile keeps the planner's workers: it projects every incident of
                # a wide area (all of Paris at z10), work that workers do share; without
                # them a z10 tile took 1.6x as long at 1M incidents, 1.1-1.3x at 100k
                # (bench/RESULTS.md, "Cell tiles with or without parallel workers").
                row = conn.execute(statement, params).fetchone()
            else:
                # A point tile is read without parallel workers: the per-row cost of
                # ST_AsMVTGeom and ST_Transform tips even a z16 tile of ~300 rows into a
                # parallel plan once its row estimate grows (the public points' branch, or
                # dead rows after the points were rewritten), and its workers take 30-60 ms
                # to start for ~2 ms of work (bench/RESULTS.md, "z16 tiles 2-4x slower").
                # Pipelined: the setting costs no round trip of its own.
                with conn.pipeline(), conn.transaction():
                    conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
                    row = conn.execute(statement, params).fetchone()
            return bytes(cast(bytes, row[0])) if row and row[0] is not None else b""

        return self._retrying(run)

    def analyze(self, tables: Sequence[str] | None = None, *, quick: bool = False) -> None:
        """``ANALYZE`` voirie's tables (only these, when given): right after a bulk COPY
        the planner knows nothing. ``quick``: sampled at ``QUICK_STATISTICS_TARGET``, as
        the small tables always are (``SMALL_TABLE_BYTES``).

        A server analyzes one table at a time per connection, on one core: the tables
        are shared between up to ``ANALYZE_CONNECTIONS`` pooled connections, the largest
        first (the end of a 23.5k import waited 1.1-1.3 s for its statistics on one)."""
        names = list(COLUMNS) if tables is None else list(tables)
        for table in names:
            known_table(table)
        if not names:
            return  # a bare ANALYZE would take every table of the database
        # One pooled connection is left to the caller's open transaction, if any (an
        # import refreshes statistics with a batch's open): a group waiting for a
        # connection the pool cannot lend would time out.
        shares = max(1, min(ANALYZE_CONNECTIONS, self.pool.max_size - 1))
        sizes = self._retrying(lambda conn: _sizes(conn, names))
        groups = _shares(sizes, shares)
        small = {t for t, size in sizes.items() if quick or size <= SMALL_TABLE_BYTES}

        def run(group: list[str], conn: Connection) -> None:
            with conn.transaction():
                conn.execute("SET LOCAL statement_timeout = 0")
                _analyze(conn, [t for t in group if t not in small])
                target = sql.Literal(QUICK_STATISTICS_TARGET)
                conn.execute(sql.SQL("SET LOCAL default_statistics_target = {}").format(target))
                _analyze(conn, [t for t in group if t in small])

        if len(groups) == 1:
            self._retrying(functools.partial(run, groups[0]))
            return
        with ThreadPoolExecutor(len(groups), thread_name_prefix="voirie-analyze") as workers:
            done = [workers.submit(self._retrying, functools.partial(run, g)) for g in groups]
        for future in done:
            future.result()

    def fill_pool(self, statements: Sequence[str] = WARM_STATEMENTS) -> None:
        """Open every connection the pool may lend, now, and run ``statements`` on each;
        keep them open (the pool's minimum becomes its maximum).

        For a server, at start: otherwise the pool grows from its minimum under the first
        burst of requests, and those requests wait for the new connections and for their
        backends' first statements (the p99 of a worker's first seconds). Tests and the
        CLI open the minimum only. Best effort: when PostgreSQL will not open them all in
        time (``max_connections`` reached by other workers or nodes), the pool keeps its
        minimum and grows on demand, as without this, and the start goes on with a warning."""
        size, minimum = self.pool.max_size, self.pool.min_size
        self.pool.resize(size, size)  # opened by the pool's workers, kept open when idle
        lent: list[Connection] = []
        try:
            try:  # not ``pool.wait``: it closes the pool when it times out
                while len(lent) < size:
                    lent.append(self.pool.getconn(timeout=self.pool.timeout + CONNECT_TIMEOUT_S))
            except PoolTimeout:
                self.pool.resize(minimum, size)
                log.warning(
                    "PostgreSQL opened %d of the pool's %d connections at start: "
                    "the others will be opened on demand",
                    len(lent),
                    size,
                )
                return
            for conn in lent:
                for statement in statements:
                    conn.execute(statement.encode())  # fixed text: no parameters
        finally:
            for conn in lent:
                self.pool.putconn(conn)

    def close(self) -> None:
        """Close every pooled connection."""
        self.pool.close()
