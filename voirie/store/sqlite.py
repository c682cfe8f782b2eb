"""The embedded backend: one sqlite file that is also a valid GeoPackage.

Writers serialize on ``BEGIN IMMEDIATE`` (with a generous busy timeout, so concurrent
writers wait instead of failing); readers never block thanks to WAL. The statements are
the shared ones (``voirie.store.statements``, ``voirie.store.reads``) in sqlite's
``DIALECT``; this module keeps what only sqlite does: ids after the maximum under the
write lock, bulk appends with ``executemany`` (a large frame's per-row insert triggers set
aside, their work done once), the connection per thread, the migration runner and the
tiles encoded in Python.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd

from voirie.codecs import mvt
from voirie.store import gpkg
from voirie.store.base import ChangeMark, applying, pending_migrations
from voirie.store.dialect import Column, Dialect
from voirie.store.public_points import Placement, point_columns
from voirie.store.reads import StoreReads
from voirie.store.schema import BOOL_COLUMNS, COLUMNS, DATETIME_COLUMNS, POINT_TABLES
from voirie.store.statements.session import Session, typed
from voirie.store.statements.tables import insert_text, known_table
from voirie.store.statements.unit import SqlUnitOfWork

BUSY_TIMEOUT_MS = 60_000
ROWS_A_STATEMENT = 100
"""Rows in each ``INSERT`` of a bulk append (``_insert_many``; at most 18 columns a row:
1,800 parameters, below sqlite's default limit of 32,766)."""
BULK_ROWS = 1_000
"""Rows from which ``insert_frame`` sets the per-row insert triggers aside
(``_TriggersAside``): a bulk load's frames. Setting them aside costs 0.2-0.3 ms a frame
(what ~30 rows cost the triggers), but each commit that changed the schema makes every
other connection (the API's threads) read it again at its next statement."""
_COUNTED_TABLES = frozenset({"reports", "incidents", "incident_reports", "assignments"})
"""The tables whose inserts move the change counter, one trigger per row (migration 0021)."""
# What migration 0021's insert trigger does for n rows of one city in one statement: the
# city's version, or the whole store's if the city has no row yet, plus n.
_COUNT_INSERTS = (
    "INSERT INTO store_changes (jurisdiction_id, version, changed_at) "
    "SELECT ?, version + ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
    "FROM store_changes WHERE jurisdiction_id = '' "
    "ON CONFLICT (jurisdiction_id) "
    "DO UPDATE SET version = version + ?, changed_at = excluded.changed_at"
)
QUICK_ANALYSIS_LIMIT = 1_000
"""Rows of each index a quick ``ANALYZE`` reads (``PRAGMA analysis_limit``; sqlite suggests
a few hundred to a thousand): a refresh during a load costs the same at any size."""


def iso_utc(values: pd.Series) -> np.ndarray:
    """Timestamps as GeoPackage DATETIME text (``YYYY-MM-DDTHH:MM:SS.SSSZ``, the
    milliseconds truncated), None for a missing one. numpy formats the whole column at
    once: pandas' ``strftime`` took 5 ms a column of 5,000, most of a batch's conversion."""
    times = pd.to_datetime(values, utc=True).dt.tz_localize(None).to_numpy()
    text: np.ndarray = np.datetime_as_string(times, unit="ms", timezone="UTC").astype(object)
    text[np.isnat(times)] = None
    return text


def _instant(moment: datetime) -> str:
    """An instant as the stored text compares (naive datetimes are taken as UTC): the text
    ``iso_utc`` gives, without a Series for one value."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%f")[:23] + "Z"


def _rtree_bbox(table: str, alias: str) -> str:
    """Points inside a bbox, through the GeoPackage R*Tree of the table."""
    return (
        f"{alias}.id IN (SELECT id FROM rtree_{table}_geom "
        "WHERE minx >= ? AND miny >= ? AND maxx <= ? AND maxy <= ?)"
    )


def _rtree_public_bbox(table: str, alias: str) -> str:
    """Public points inside a bbox: the exact R*Tree's hits without a public point, and
    the public R*Tree's (migration 0020: the blurred rows, those with a public point).
    One id list, as ``_rtree_bbox``: sqlite walks it in id order and stops at the page
    (an ``OR`` of two lists read every row of both, then sorted them)."""
    return (
        f"{alias}.id IN (SELECT t.id FROM rtree_{table}_geom t "
        "WHERE t.minx >= ? AND t.miny >= ? AND t.maxx <= ? AND t.maxy <= ? "
        f"AND NOT EXISTS (SELECT 1 FROM public_points_{table} p WHERE p.id = t.id) "
        f"UNION ALL SELECT id FROM public_points_{table} "
        "WHERE minx >= ? AND miny >= ? AND maxx <= ? AND maxy <= ?)"
    )


def _json(values: Sequence[object]) -> str:
    """Values as one JSON array parameter (read back with ``json_each``)."""
    return json.dumps(list(values), ensure_ascii=False)


def _rows(columns: Sequence[Column]) -> str:
    """Bound rows as a subquery over one JSON array of arrays; one column as a flat array
    of its values (``json_each``'s own ``value``: no array per row to write and extract,
    a quarter of the CPU of a bulk import's look-up of 50,000 ids)."""
    if len(columns) == 1:
        return f"(SELECT value AS {columns[0][0]} FROM json_each(?)) AS u"
    fields = ", ".join(
        f"json_extract(value, '$[{k}]') AS {name}" for k, (name, _) in enumerate(columns)
    )
    return f"(SELECT {fields} FROM json_each(?)) AS u"


def _rows_params(columns: Sequence[Sequence[object]]) -> list[object]:
    """``_rows``'s one parameter: the rows as a JSON array of arrays, or of values."""
    if len(columns) == 1:
        return [_json(columns[0])]
    return [_json(list(zip(*columns, strict=True)))]


DIALECT = Dialect(
    placeholder="?",
    bbox=_rtree_bbox,
    public_bbox=_rtree_public_bbox,
    instant=_instant,
    flag=int,
    point=gpkg.point_blob,
    make_point=lambda lon, lat: f"{gpkg.MAKE_POINT}({lon}, {lat}, {gpkg.WGS84_SRS_ID})",
    in_array=lambda column, _: f"{column} IN (SELECT value FROM json_each(?))",
    array=_json,
    from_array=lambda value: tuple(json.loads(str(value))),
    rows=_rows,
    rows_params=_rows_params,
    probe=lambda table, alias, condition: f"CROSS JOIN {table} {alias} ON {condition}",
    metric_distance=None,
    # BEGIN IMMEDIATE holds the database's write lock for the whole transaction.
    lock_rows="",
    skip_locked=lambda _: "",
    unindexed=lambda column: f"+{column}",
)
# Tile attributes that are not a column as such.
_TILE_COLUMNS = {"last_reported": "substr(i.last_reported_at, 1, 10)"}
# A tile's hits in the R*Tree (t): a point in the box (maxlon, minlon, maxlat, minlat).
_TILE_BOX = "t.minx <= ? AND t.maxx >= ? AND t.miny <= ? AND t.maxy >= ? AND "
# A public tile (a city that blurs): the exact R*Tree's hits without a public point, and
# the public points' (migration 0020), each incident drawn where it is found.
_PUBLIC_TILE_HITS = (
    "(SELECT t.id FROM rtree_incidents_geom t WHERE "
    + _TILE_BOX
    + "NOT EXISTS (SELECT 1 FROM public_points_incidents p WHERE p.id = t.id) "
    "UNION ALL SELECT t.id FROM public_points_incidents t WHERE "
    + _TILE_BOX.removesuffix(" AND ")
    + ") AS t"
)
_PUBLIC_TILE_COLUMNS = dict(zip(("lon", "lat"), point_columns("i", public=True), strict=True))


def _insert_values(table: str, frame: pd.DataFrame) -> np.ndarray:
    """DataFrame rows as sqlite parameters in the schema's column order: a 2-D array of
    Python objects, one row a row, from which each statement's parameters are one slice
    made flat (``_insert_many``): no tuple per row, no flattening of them in Python."""
    names = COLUMNS[table]
    values = np.empty((len(frame), len(names) + (table in POINT_TABLES)), dtype=object)
    for k, name in enumerate(names):
        if name not in frame:
            continue  # np.empty of objects holds None: NULL
        series = frame[name].reset_index(drop=True)
        if name in DATETIME_COLUMNS:
            values[:, k] = iso_utc(series)
            continue
        if name in BOOL_COLUMNS:
            series = series.astype(bool).astype(int)
        # On a numpy array rather than through Series.where: the same values, without
        # pandas' fixed cost per call, which dominated the write of a one-report batch.
        column: np.ndarray = series.to_numpy(dtype=object, copy=True)
        column[pd.isna(column)] = None
        values[:, k] = column
    if table in POINT_TABLES:
        values[:, -1] = gpkg.point_blobs(frame["lon"].to_numpy(float), frame["lat"].to_numpy(float))
    return values


class SqliteSession(Session):
    """A write transaction on the embedded store (``BEGIN IMMEDIATE`` already taken)."""

    conn: sqlite3.Connection

    def __init__(self, conn: sqlite3.Connection, jurisdiction_id: str) -> None:
        super().__init__(conn, jurisdiction_id, DIALECT)
        self._next_id: dict[str, int] = {}

    def run_many(self, statement: str, rows: Sequence[Sequence[object]]) -> None:
        """One prepared statement over the rows."""
        self.conn.executemany(statement, rows)

    def lock(self, keys: Sequence[str], shared: Sequence[str] = ()) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the database's write lock."""

    def reserve_ids(self, table: str, n: int) -> np.ndarray:
        """Ids after the current maximum; safe because this transaction holds the write lock."""
        if table not in self._next_id:
            (top,) = self.conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()
            self._next_id[table] = int(top) + 1
        start = self._next_id[table]
        self._next_id[table] = start + n
        return np.arange(start, start + n, dtype=np.int64)

    def insert_frame(self, table: str, rows: pd.DataFrame) -> None:
        """Append rows with one prepared statement; from ``BULK_ROWS`` rows, with the
        per-row insert triggers set aside and their work done once for all the rows."""
        values = _insert_values(table, rows)

        def flat(start: int, stop: int) -> list[object]:
            return list(values[start:stop].ravel().tolist())

        _bulk(self.conn, table, len(values), flat, rows)


Flat = Callable[[int, int], list[object]]
"""The parameters of the rows from ``start`` to ``stop`` (excluded), one row after the
other: what one multi-row ``INSERT`` binds."""


def bulk_insert(
    conn: sqlite3.Connection, table: str, params: Sequence[Sequence[object]], rows: pd.DataFrame
) -> None:
    """Append ``params`` (``insert_text``'s values of each of ``rows``) in the write
    transaction of ``conn``: ``ROWS_A_STATEMENT`` rows a statement and, from ``BULK_ROWS``
    rows, the per-row insert triggers set aside (``_TriggersAside``, which reads the ids,
    points and cities of ``rows``). Public for the benchmark's floor, which loads the same
    rows the same way (``bench/import_scale.py``; its rows come as tuples, flattened as
    they are: ``insert_frame`` builds its own as a 2-D array)."""
    _bulk(conn, table, len(params), lambda start, stop: list(chain(*params[start:stop])), rows)


def _bulk(conn: sqlite3.Connection, table: str, n: int, flat: Flat, rows: pd.DataFrame) -> None:
    """``bulk_insert`` of ``n`` rows whose parameters ``flat`` gives."""
    if n < BULK_ROWS or not _bulk_ready(table, rows):
        _insert_many(conn, table, n, flat)
        return
    with _TriggersAside(conn, table, rows):
        _insert_many(conn, table, n, flat)


def _insert_many(conn: sqlite3.Connection, table: str, n: int, flat: Flat) -> None:
    """Insert ``n`` rows in order, ``ROWS_A_STATEMENT`` in each ``INSERT ... VALUES`` (one
    prepared statement for them all), the rest in one: a batch's rows one a step of
    ``executemany`` took a fifth more (the statement run, reset and bound again a row).
    A statement that fails stores none of its rows; those of the statements before it
    stay, as the rows before a failing one did (every caller rolls back)."""
    head, marks = insert_text(table).split(" VALUES ")
    whole = n - n % ROWS_A_STATEMENT
    if whole:
        conn.executemany(
            f"{head} VALUES {', '.join([marks] * ROWS_A_STATEMENT)}",
            (flat(at, at + ROWS_A_STATEMENT) for at in range(0, whole, ROWS_A_STATEMENT)),
        )
    if whole < n:
        conn.execute(f"{head} VALUES {', '.join([marks] * (n - whole))}", flat(whole, n))


def _bulk_ready(table: str, rows: pd.DataFrame) -> bool:
    """Whether a frame's rows may be inserted with the triggers aside: each row of a point
    table has an id and a finite point (the R*Tree's row is then its id and its lon/lat,
    as the trigger computes it from the geometry built of them), each row of a counted
    table a city."""
    if table in POINT_TABLES:
        points = rows[["lon", "lat"]].to_numpy(float)
        if not (rows["id"].notna().all() and np.isfinite(points).all()):
            return False
    return table not in _COUNTED_TABLES or bool(rows["jurisdiction_id"].notna().all())


class _TriggersAside:
    """A table's per-row insert triggers dropped inside the write transaction while a
    frame's rows are inserted, their work done once for the rows stored, and the triggers
    created again from their stored text, whatever happened: the schema after the block is
    the one before it, byte for byte, and no other connection ever sees it without them
    (readers see the last commit; writers wait for this transaction's lock).

    Those set aside are the GeoPackage R*Tree's (five calls of Python ``ST_*`` functions
    and an R*Tree insert a row) and the change counter's (an upsert of ``store_changes`` a
    row). An insert that fails keeps the rows of its statements before the failing one
    (``_insert_many``); the triggers' work is done for those rows only. (Not a savepoint,
    which would make it all or nothing: inside one sqlite journals every page the insert
    changes, which made it 2-5 times slower.)"""

    def __init__(self, conn: sqlite3.Connection, table: str, rows: pd.DataFrame) -> None:
        self.conn, self.rows = conn, rows
        self.rtree = gpkg.rtree_name(table)  # none but the point tables' exist
        names = (f"{self.rtree}_insert", f"{table}_insert_change")
        self.saved: list[tuple[str, str]] = conn.execute(
            "SELECT name, sql FROM sqlite_master "
            "WHERE type = 'trigger' AND tbl_name = ? AND name IN (?, ?)",
            (table, *names),
        ).fetchall()
        present = {name for name, _ in self.saved}
        self.indexed, self.counted = names[0] in present, names[1] in present
        self.start = 0

    def __enter__(self) -> _TriggersAside:
        for name, _ in self.saved:
            self.conn.execute(f"DROP TRIGGER {name}")  # a name read from sqlite_master
        self.start = self.conn.total_changes
        return self

    def __exit__(self, error: type[BaseException] | None, *details: object) -> None:
        # The rows inserted, in order: no trigger left on the table fires on them (the
        # public point's needs ``public_lon``, never inserted), so each change is one row.
        stored = self.rows.iloc[: self.conn.total_changes - self.start]
        try:
            self.work(stored)
        finally:
            for _, sql in self.saved:
                self.conn.execute(sql)

    def work(self, rows: pd.DataFrame) -> None:
        """What the triggers set aside would have done for these rows: their boxes in the
        R*Tree, in the same order (the same nodes), and the change counter of each city
        moved by its number of rows."""
        if self.indexed and len(rows):
            lon, lat = rows["lon"].to_numpy(float).tolist(), rows["lat"].to_numpy(float).tolist()
            self.conn.executemany(
                f"INSERT OR REPLACE INTO {self.rtree} VALUES (?, ?, ?, ?, ?)",
                zip(rows["id"].to_numpy().tolist(), lon, lon, lat, lat, strict=True),
            )
        if self.counted and len(rows):
            per_city = rows["jurisdiction_id"].value_counts(sort=False)
            self.conn.executemany(
                _COUNT_INSERTS, [(city, int(n), int(n)) for city, n in per_city.items()]
            )


class SqliteStore(StoreReads):
    """The embedded store: a GeoPackage file opened with the stdlib sqlite3 module."""

    backend = "sqlite"
    dialect = DIALECT
    # One writer connection at a time: a bulk import writes its batches one after another.
    concurrent_transactions = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection per thread: the web server answers from a pool of threads, and two
        # threads must never interleave statements inside one connection's transaction.
        # Across connections sqlite itself serializes writers (WAL, busy timeout).
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self.placements: dict[str, Placement] = {}
        self.conn.execute("PRAGMA journal_mode = WAL")

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous = FULL")  # an acknowledged report survives power loss
            conn.execute("PRAGMA foreign_keys = ON")
            # Statement journals in memory: every INSERT of a write transaction that fires
            # triggers (the GeoPackage R*Tree ones) or checks foreign keys keeps the pages it
            # changes in a statement journal, a temporary file beyond 64 KiB: 130 KiB written
            # a report by an import (13 GB for 100k rows), a third of its CPU in the kernel.
            conn.execute("PRAGMA temp_store = MEMORY")
            gpkg.register_functions(conn)
            self._local.conn = conn
            with self._guard:
                self._opened.append(conn)
        return conn

    def schema_version(self) -> int:
        """Highest applied migration, 0 before the first."""
        return max(self._applied(), default=0)

    def _applied(self) -> set[int]:
        """The versions of the migrations applied; creates their table on a new file."""
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS voirie_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DATETIME NOT NULL)"
        )
        return {int(v) for (v,) in self.conn.execute("SELECT version FROM voirie_migrations")}

    def upgrade(self) -> list[int]:
        """Apply pending migrations, all in one transaction.

        A file already up to date costs one read and takes no lock. Otherwise the pending
        migrations are looked up again inside the write transaction, so processes starting
        together apply each once (the others wait for the lock, then see them applied).
        One commit for them all (one flush to disk, not one per migration); a migration
        that fails rolls back those applied with it, and its error names its file.
        """
        if not pending_migrations(self.backend, self._applied()):
            return []
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            todo = pending_migrations(self.backend, self._applied())
            for version, name, sql in todo:
                with applying(name):
                    self._migrate(version, sql)
            applied_at = datetime.now(UTC).isoformat()
            self.conn.executemany(
                "INSERT INTO voirie_migrations VALUES (?, ?, ?)",
                [(version, name, applied_at) for version, name, _ in todo],
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return [version for version, _, _ in todo]

    def _migrate(self, version: int, sql: str) -> None:
        """One migration's statements (executescript would commit first); the first also
        creates the GeoPackage R*Trees of the point tables."""
        for statement in _statements(sql):
            self.conn.execute(statement)
        if version == 1:
            for statement in _statements(
                "".join(gpkg.rtree_sql(table) for table in sorted(POINT_TABLES))
            ):
                self.conn.execute(statement)

    @contextmanager
    def transaction(
        self, jurisdiction_id: str, *, pipelined: bool = False
    ) -> Iterator[SqlUnitOfWork]:
        """A write transaction holding the database's write lock from the start
        (``pipelined`` changes nothing: no round trip to save in-process)."""
        conn = self.conn  # this thread's: the commit may be made on another (the import's)
        conn.execute("BEGIN IMMEDIATE")
        try:
            session = SqliteSession(conn, jurisdiction_id)
            session.placement = self.placements.get(jurisdiction_id)
            yield SqlUnitOfWork(session)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _frame(self, text: str, params: Sequence[object]) -> pd.DataFrame:
        cursor = self.conn.execute(text, tuple(params))
        names = [d[0] for d in cursor.description]
        return typed(pd.DataFrame(cursor.fetchall(), columns=names))

    def rows(self, text: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        """Rows of one read query as tuples, on this thread's connection."""
        return self.conn.execute(text, tuple(params)).fetchall()

    def rows_batch(
        self, statements: Sequence[tuple[str, Sequence[object]]]
    ) -> list[list[tuple[object, ...]]]:
        """The rows of several read queries, one after the other on this thread's
        connection (in-process: nothing to save by sending them together)."""
        return [self.conn.execute(text, tuple(params)).fetchall() for text, params in statements]

    def change_mark(self, jurisdiction_id: str) -> ChangeMark:
        """The city's change counter, and sqlite's clock (that of this machine)."""
        version, changed_at, now = self.conn.execute(
            "SELECT version, changed_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM store_changes"
            " WHERE jurisdiction_id IN ('', ?) ORDER BY jurisdiction_id DESC LIMIT 1",
            (jurisdiction_id,),
        ).fetchone()
        return ChangeMark(
            int(version), datetime.fromisoformat(changed_at), datetime.fromisoformat(now)
        )

    def _write(self, text: str, params: Sequence[object]) -> None:
        # Autocommit: a single statement is its own transaction.
        self.conn.execute(text, tuple(params))

    def incident_tile(
        self, jurisdiction_id: str, z: int, x: int, y: int, public: bool = False
    ) -> bytes:
        """Incidents in the tile (and its buffer) through the R*Tree, encoded by codecs.mvt.

        Below ``mvt.CLUSTER_BELOW_ZOOM`` one feature per cell (``mvt.encode_cells``). With
        ``public``, each incident is found and drawn at its stored public point: the exact
        R*Tree's hits without one, and the public points' R*Tree (migration 0020).
        """
        minlon, minlat, maxlon, maxlat = mvt.lonlat_bounds(z, x, y)
        cells = z < mvt.CLUSTER_BELOW_ZOOM
        # Only the columns the tile needs: a city-wide cell tile reads every incident.
        names = (
            ["lon", "lat", "status", "report_count"] if cells else ["id", "lon", "lat", *mvt.FIELDS]
        )
        columns = {**_TILE_COLUMNS, **(_PUBLIC_TILE_COLUMNS if public else {})}
        box = (maxlon, minlon, maxlat, minlat)
        rows = self.conn.execute(
            f"SELECT {', '.join(columns.get(name, f'i.{name}') for name in names)} "
            # CROSS JOIN fixes sqlite's join order: the R*Tree drives, each hit a rowid
            # look-up (the planner may otherwise walk a jurisdiction index of incidents);
            # features in id order, whatever the R*Tree's: the same tile, the same bytes.
            f"FROM {_PUBLIC_TILE_HITS if public else 'rtree_incidents_geom t'} "
            f"CROSS JOIN incidents i ON t.id = i.id WHERE {'' if public else _TILE_BOX}"
            "i.jurisdiction_id = ?" + ("" if cells else " ORDER BY i.id"),
            (*box, *(box if public else ()), jurisdiction_id),
        ).fetchall()
        frame = pd.DataFrame(rows, columns=names)
        lon, lat = frame["lon"].to_numpy(float), frame["lat"].to_numpy(float)
        px, py, keep = mvt.tile_coordinates(lon, lat, z, x, y)
        if cells:
            return mvt.encode_cells(
                px[keep],
                py[keep],
                frame["status"].to_numpy()[keep],
                frame["report_count"].to_numpy()[keep],
            )
        return mvt.encode_points(
            frame["id"].to_numpy()[keep],
            px[keep],
            py[keep],
            frame.loc[keep, list(mvt.FIELDS)].reset_index(drop=True),
        )

    def analyze(self, tables: Sequence[str] | None = None, *, quick: bool = False) -> None:
        """``ANALYZE`` (of these tables only, when given): sqlite's planner picks indexes
        from the statistics it gathers. ``quick``: each index read up to
        ``QUICK_ANALYSIS_LIMIT`` rows (``PRAGMA analysis_limit``) rather than whole, as a
        refresh during a load does (each full one a scan of tables growing to millions)."""
        for table in tables or ():
            known_table(table)
        self.conn.execute(f"PRAGMA analysis_limit = {QUICK_ANALYSIS_LIMIT if quick else 0}")
        try:
            if tables is None:
                self.conn.execute("ANALYZE")
            for table in tables or ():
                self.conn.execute(f"ANALYZE {table}")  # a schema table's name, checked
        finally:
            self.conn.execute("PRAGMA analysis_limit = 0")

    def close(self) -> None:
        """Close every thread's connection."""
        with self._guard:
            for conn in self._opened:
                conn.close()
            self._opened.clear()
        self._local = threading.local()


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
