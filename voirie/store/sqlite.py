"""The embedded backend: one sqlite file that is also a valid GeoPackage.

Writers serialize on ``BEGIN IMMEDIATE`` (with a generous busy timeout, so concurrent
writers wait instead of failing); readers never block thanks to WAL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from voirie.store import gpkg
from voirie.store.base import BBox, migrations
from voirie.store.queries import QUERIES
from voirie.store.schema import BOOL_COLUMNS, COLUMNS, DATETIME_COLUMNS, POINT_TABLES

BUSY_TIMEOUT_MS = 60_000
_OPEN = ("new", "acknowledged", "scheduled", "in_progress")


def iso_utc(values: pd.Series) -> pd.Series:
    """Timestamps as GeoPackage DATETIME text (``YYYY-MM-DDTHH:MM:SS.SSSZ``), nulls kept."""
    times = pd.to_datetime(values, utc=True)
    text = times.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str.slice(0, 23) + "Z"
    return text.where(times.notna(), None)


def _rows(table: str, frame: pd.DataFrame) -> list[tuple[object, ...]]:
    """DataFrame rows as sqlite parameters in the schema's column order."""
    columns: dict[str, pd.Series] = {}
    for name in COLUMNS[table]:
        series = frame[name] if name in frame else pd.Series([None] * len(frame))
        series = series.reset_index(drop=True)
        if name in DATETIME_COLUMNS:
            series = iso_utc(series)
        elif name in BOOL_COLUMNS:
            series = series.astype(bool).astype(int)
        columns[name] = series.astype(object).where(series.notna(), None)
    if table in POINT_TABLES:
        columns["geom"] = pd.Series(
            gpkg.point_blobs(frame["lon"].to_numpy(float), frame["lat"].to_numpy(float)),
            dtype=object,
        )
    return list(zip(*(s.tolist() for s in columns.values()), strict=True))


def _insert_sql(table: str) -> str:
    names = list(COLUMNS[table]) + (["geom"] if table in POINT_TABLES else [])
    return (
        f"INSERT INTO {table} ({', '.join(names)}) "
        f"VALUES ({', '.join('?' * len(names))})"
    )


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Restore datetimes and booleans that sqlite returns as text and integers."""
    for name in frame.columns:
        if name in DATETIME_COLUMNS:
            frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
        elif name in BOOL_COLUMNS:
            frame[name] = frame[name].astype(bool)
    return frame


class SqliteUnitOfWork:
    """A write transaction on the embedded store."""

    def __init__(self, conn: sqlite3.Connection, jurisdiction_id: str) -> None:
        self.conn = conn
        self.jurisdiction_id = jurisdiction_id
        self._next_id: dict[str, int] = {}

    def lock(self, keys: Sequence[str]) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the database's write lock."""

    def known_reports(self, source: str, external_ids: Sequence[str]) -> pd.DataFrame:
        """Stored (external_id, content_hash) pairs among ``external_ids``."""
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (external_id TEXT)")
        self.conn.execute("DELETE FROM wanted")
        self.conn.executemany("INSERT INTO wanted VALUES (?)", [(e,) for e in external_ids])
        rows = self.conn.execute(
            "SELECT external_id, content_hash FROM reports "
            "WHERE jurisdiction_id = ? AND source = ? "
            "AND external_id IN (SELECT external_id FROM wanted)",
            (self.jurisdiction_id, source),
        ).fetchall()
        return pd.DataFrame(rows, columns=["external_id", "content_hash"])

    def open_incidents(
        self, bbox: BBox, service_codes: Sequence[str], since: datetime
    ) -> pd.DataFrame:
        """Open incidents in the bbox through the GeoPackage R*Tree."""
        marks = ", ".join("?" * len(service_codes))
        rows = self.conn.execute(
            "SELECT i.id, i.lon, i.lat, i.service_code, i.last_reported_at "
            "FROM incidents i JOIN rtree_incidents_geom t ON t.id = i.id "
            "WHERE t.minx <= ? AND t.maxx >= ? AND t.miny <= ? AND t.maxy >= ? "
            f"AND i.jurisdiction_id = ? AND i.status IN ({', '.join('?' * len(_OPEN))}) "
            f"AND i.service_code IN ({marks}) AND i.last_reported_at >= ?",
            (
                bbox[2], bbox[0], bbox[3], bbox[1], self.jurisdiction_id, *_OPEN,
                *service_codes, iso_utc(pd.Series([since])).iloc[0],
            ),
        ).fetchall()
        frame = pd.DataFrame(
            rows, columns=["incident_id", "lon", "lat", "service_code", "last_reported_at"]
        )
        return _typed(frame)

    def reserve_ids(self, table: str, n: int) -> np.ndarray:
        """Ids after the current maximum; safe because this transaction holds the write lock."""
        if table not in self._next_id:
            (top,) = self.conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()
            self._next_id[table] = int(top) + 1
        start = self._next_id[table]
        self._next_id[table] = start + n
        return np.arange(start, start + n, dtype=np.int64)

    def insert(self, table: str, rows: pd.DataFrame) -> None:
        """Append rows with one prepared statement."""
        if len(rows):
            self.conn.executemany(_insert_sql(table), _rows(table, rows))

    def add_to_incidents(self, rows: pd.DataFrame) -> None:
        """Add attached reports to existing incidents' counts and last-reported times."""
        params = zip(
            rows["added"].astype(int).tolist(),
            iso_utc(rows["last_reported_at"]).tolist(),
            iso_utc(rows["updated_at"]).tolist(),
            rows["incident_id"].astype(int).tolist(),
            strict=True,
        )
        self.conn.executemany(
            "UPDATE incidents SET report_count = report_count + ?, "
            "last_reported_at = max(last_reported_at, ?), updated_at = ? WHERE id = ?",
            params,
        )


class SqliteStore:
    """The embedded store: a GeoPackage file opened with the stdlib sqlite3 module."""

    backend = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
        self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        gpkg.register_functions(self.conn)

    def schema_version(self) -> int:
        """Highest applied migration, 0 before the first."""
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS voirie_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DATETIME NOT NULL)"
        )
        (version,) = self.conn.execute(
            "SELECT COALESCE(MAX(version), 0) FROM voirie_migrations"
        ).fetchone()
        return int(version)

    def upgrade(self) -> list[int]:
        """Apply pending migrations, each in its own transaction.

        The version is read inside the write transaction, so processes starting together
        apply each migration once: the others wait for the lock, then see it applied.
        """
        applied = []
        for version, name, sql in migrations(self.backend):
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                if version <= self.schema_version():
                    self.conn.execute("COMMIT")
                    continue
                # executescript would commit first; run statement by statement instead.
                for statement in _statements(sql):
                    self.conn.execute(statement)
                if version == 1:
                    for statement in _statements(
                        "".join(gpkg.rtree_sql(table) for table in sorted(POINT_TABLES))
                    ):
                        self.conn.execute(statement)
                self.conn.execute(
                    "INSERT INTO voirie_migrations VALUES (?, ?, ?)",
                    (version, name, datetime.now(UTC).isoformat()),
                )
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            applied.append(version)
        return applied

    @contextmanager
    def transaction(self, jurisdiction_id: str) -> Iterator[SqliteUnitOfWork]:
        """A write transaction holding the database's write lock from the start."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield SqliteUnitOfWork(self.conn, jurisdiction_id)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def read(self, query: str, jurisdiction_id: str) -> pd.DataFrame:
        """A named read query as a DataFrame."""
        cursor = self.conn.execute(QUERIES[query].format(j="?"), (jurisdiction_id,))
        names = [d[0] for d in cursor.description]
        return _typed(pd.DataFrame(cursor.fetchall(), columns=names))

    def count(self, table: str, jurisdiction_id: str) -> int:
        """Rows of a schema table for one jurisdiction."""
        if table not in COLUMNS:
            raise KeyError(table)
        (n,) = self.conn.execute(
            f"SELECT COUNT(*) FROM {table} WHERE jurisdiction_id = ?",
            (jurisdiction_id,),
        ).fetchone()
        return int(n)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def _statements(sql: str) -> Iterator[str]:
    """Split a migration script into complete statements (triggers hold inner semicolons)."""
    buffer = ""
    for line in sql.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer.strip()
            buffer = ""
    if buffer.strip():
        yield buffer.strip()
