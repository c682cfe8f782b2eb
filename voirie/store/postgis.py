"""The production backend: PostgreSQL + PostGIS through psycopg 3 and a connection pool.

Each unit of work is one pooled connection in one transaction. Writers of the same keys
serialize on transaction-scoped advisory locks; ids come from the tables' identities, so
concurrent batches never draw the same id; bulk writes use COPY. Every key includes the
jurisdiction, so the schema can be distributed by jurisdiction with Citus.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
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

from voirie.errors import StoreError
from voirie.model import OPEN_STATUSES
from voirie.store.base import BBox, migrations
from voirie.store.queries import QUERIES
from voirie.store.schema import BOOL_COLUMNS, COLUMNS, DATETIME_COLUMNS, ID_TABLES, POINT_TABLES

WGS84 = 4326
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


def _values(series: pd.Series) -> list[object]:
    """A column as Python values with every kind of missing value (NaN, NaT, NA) as None."""
    return cast(list[object], series.astype(object).where(series.notna(), None).tolist())


def _copy_rows(
    table: str, frame: pd.DataFrame, types: dict[str, str]
) -> Iterator[tuple[object, ...]]:
    """DataFrame rows as COPY rows: schema column order, then the EWKB point if any."""
    columns: list[list[object]] = []
    for name in COLUMNS[table]:
        if name in frame:
            series = frame[name].reset_index(drop=True)
        else:
            series = pd.Series([None] * len(frame), dtype=object)
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


class PostgisUnitOfWork:
    """A write transaction on one pooled connection."""

    def __init__(
        self, conn: Connection, jurisdiction_id: str,
        column_types: Callable[[Connection, str], dict[str, str]],
    ) -> None:
        self.conn = conn
        self.jurisdiction_id = jurisdiction_id
        self._column_types = column_types

    def lock(self, keys: Sequence[str]) -> None:
        """Transaction-scoped advisory locks, taken in sorted order so writers never deadlock."""
        hashes = sorted({lock_key(key) for key in keys})
        if hashes:
            with self.conn.cursor() as cur:
                cur.executemany("SELECT pg_advisory_xact_lock(%s)", [(h,) for h in hashes])

    def known_reports(self, source: str, external_ids: Sequence[str]) -> pd.DataFrame:
        """Stored (external_id, content_hash) pairs among ``external_ids``."""
        rows = self.conn.execute(
            "SELECT external_id, content_hash FROM reports "
            "WHERE jurisdiction_id = %s AND source = %s AND external_id = ANY(%s)",
            (self.jurisdiction_id, source, list(external_ids)),
        ).fetchall()
        return pd.DataFrame(rows, columns=["external_id", "content_hash"])

    def open_incidents(
        self, bbox: BBox, service_codes: Sequence[str], since: datetime
    ) -> pd.DataFrame:
        """Open incidents whose point lies in the bbox (edges included), through the GiST index."""
        rows = self.conn.execute(
            "SELECT id, lon, lat, service_code, last_reported_at FROM incidents "
            "WHERE jurisdiction_id = %s AND geom && ST_MakeEnvelope(%s, %s, %s, %s, %s) "
            "AND status = ANY(%s) AND service_code = ANY(%s) AND last_reported_at >= %s "
            "ORDER BY id",
            (
                self.jurisdiction_id, *(float(v) for v in bbox), WGS84, _OPEN,
                list(service_codes), _utc(since),
            ),
        ).fetchall()
        frame = pd.DataFrame(
            rows, columns=["incident_id", "lon", "lat", "service_code", "last_reported_at"]
        )
        return _typed(frame)

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


class PostgisStore:
    """The production store: a psycopg connection pool on a PostGIS database."""

    backend = "postgis"

    def __init__(
        self, url: str, min_size: int = 1, max_size: int = 8,
        open_timeout_s: float = OPEN_TIMEOUT_S,
    ) -> None:
        self.url = url
        self.pool: ConnectionPool[Connection] = ConnectionPool(
            url, min_size=min_size, max_size=max_size, open=False, name="voirie",
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

    def read(self, query: str, jurisdiction_id: str) -> pd.DataFrame:
        """A named read query as a DataFrame."""
        # Only the placeholder is formatted in; the jurisdiction itself is bound.
        text = QUERIES[query].format(j="%s")

        def run(conn: Connection) -> pd.DataFrame:
            with conn.cursor() as cur:
                cur.execute(text, (jurisdiction_id,))
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

    def close(self) -> None:
        """Close every pooled connection."""
        self.pool.close()
