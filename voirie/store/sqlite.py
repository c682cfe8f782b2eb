"""The embedded backend: one sqlite file that is also a valid GeoPackage.

Writers serialize on ``BEGIN IMMEDIATE`` (with a generous busy timeout, so concurrent
writers wait instead of failing); readers never block thanks to WAL.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from voirie.codecs import mvt
from voirie.store import gpkg
from voirie.store.base import (
    KNOWN_REPORT_COLUMNS,
    MEMBER_COLUMNS,
    RESHAPE_COLUMNS,
    TokenRecord,
    migrations,
)
from voirie.store.candidates import BBox, OpenIncidents, bbox_around
from voirie.store.portable import PortableReads, PortableStatements, insert_text
from voirie.store.schema import BOOL_COLUMNS, COLUMNS, DATETIME_COLUMNS, MAX_ID, POINT_TABLES
from voirie.store.selection import (
    Dialect,
)

BUSY_TIMEOUT_MS = 60_000
_OPEN = ("new", "acknowledged", "scheduled", "in_progress")


def iso_utc(values: pd.Series) -> pd.Series:
    """Timestamps as GeoPackage DATETIME text (``YYYY-MM-DDTHH:MM:SS.SSSZ``), nulls kept."""
    times = pd.to_datetime(values, utc=True)
    text = times.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str.slice(0, 23) + "Z"
    return text.where(times.notna(), None)


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


DIALECT = Dialect(placeholder="?", bbox=_rtree_bbox, instant=_instant)
# Tile attributes that are not a column as such.
_TILE_COLUMNS = {"last_reported": "substr(i.last_reported_at, 1, 10)"}


def _rows(table: str, frame: pd.DataFrame) -> list[tuple[object, ...]]:
    """DataFrame rows as sqlite parameters in the schema's column order."""
    columns: dict[str, list[object]] = {}
    for name in COLUMNS[table]:
        series = frame[name] if name in frame else pd.Series([None] * len(frame))
        series = series.reset_index(drop=True)
        if name in DATETIME_COLUMNS:
            series = iso_utc(series)
        elif name in BOOL_COLUMNS:
            series = series.astype(bool).astype(int)
        # On a numpy array rather than through Series.where: the same values, without
        # pandas' fixed cost per call, which dominated the write of a one-report batch.
        values: np.ndarray = series.to_numpy(dtype=object, copy=True)
        values[pd.isna(values)] = None
        columns[name] = list(values.tolist())
    if table in POINT_TABLES:
        columns["geom"] = list(
            gpkg.point_blobs(frame["lon"].to_numpy(float), frame["lat"].to_numpy(float))
        )
    return list(zip(*columns.values(), strict=True))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Restore datetimes and booleans that sqlite returns as text and integers."""
    for name in frame.columns:
        if name in DATETIME_COLUMNS:
            frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
        elif name in BOOL_COLUMNS:
            frame[name] = frame[name].astype(bool)
    return frame


class SqliteUnitOfWork(PortableStatements):
    """A write transaction on the embedded store."""

    placeholder = "?"
    typed = staticmethod(_typed)

    def bind_instant(self, at: datetime) -> object:
        """An instant as this backend stores it."""
        return _instant(at)

    def bind_flag(self, value: bool) -> object:
        """A flag as this backend stores it (an integer)."""
        return int(value)

    def bind_point(self, lon: float, lat: float) -> object:
        """A WGS84 point as this backend stores it (a GeoPackage blob)."""
        return gpkg.point_blob(lon, lat)

    def _run_many(self, text: str, rows: Sequence[Sequence[object]]) -> None:
        self.conn.executemany(text, rows)

    def __init__(self, conn: sqlite3.Connection, jurisdiction_id: str) -> None:
        self.conn: sqlite3.Connection = conn
        self.jurisdiction_id = jurisdiction_id
        self._next_id: dict[str, int] = {}

    def lock(self, keys: Sequence[str]) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the database's write lock."""

    def known_reports(self, source: str, external_ids: Sequence[str]) -> pd.DataFrame:
        """Stored reports among ``external_ids``, with their ids and incident."""
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (external_id TEXT)")
        self.conn.execute("DELETE FROM wanted")
        self.conn.executemany("INSERT INTO wanted VALUES (?)", [(e,) for e in external_ids])
        rows = self.conn.execute(
            "SELECT r.external_id, r.content_hash, r.id, l.incident_id, r.received_at "
            "FROM reports r LEFT JOIN incident_reports l ON l.report_id = r.id "
            "WHERE r.jurisdiction_id = ? AND r.source = ? "
            "AND r.external_id IN (SELECT external_id FROM wanted)",
            (self.jurisdiction_id, source),
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
        """``open_incidents`` around the point as arrays, sorted by id in Python (an
        ORDER BY could lead sqlite to walk incidents by id instead of the R*Tree)."""
        rows = sorted(self._open_rows(bbox_around(lon, lat, reach_m), service_codes, since))
        # Stored text is ``YYYY-MM-DDTHH:MM:SS.SSSZ``: numpy parses it once the Z is off.
        return OpenIncidents.from_rows(rows, [str(row[4]).removesuffix("Z") for row in rows])

    def _open_rows(
        self, bbox: BBox, service_codes: Sequence[str], since: datetime
    ) -> list[tuple[object, ...]]:
        """Rows (id, lon, lat, service_code, last_reported_at, segment_id, street_name) of
        the open incidents of these services in the bbox, through the R*Tree."""
        marks = ", ".join("?" * len(service_codes))
        return self.conn.execute(
            "SELECT i.id, i.lon, i.lat, i.service_code, i.last_reported_at, i.segment_id, "
            "i.street_name FROM incidents i JOIN rtree_incidents_geom t ON t.id = i.id "
            "WHERE t.minx <= ? AND t.maxx >= ? AND t.miny <= ? AND t.maxy >= ? "
            f"AND i.jurisdiction_id = ? AND i.status IN ({', '.join('?' * len(_OPEN))}) "
            f"AND i.service_code IN ({marks}) AND i.last_reported_at >= ?",
            (
                bbox[2],
                bbox[0],
                bbox[3],
                bbox[1],
                self.jurisdiction_id,
                *_OPEN,
                *service_codes,
                _instant(since),
            ),
        ).fetchall()

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
            self.conn.executemany(insert_text(table, "?"), _rows(table, rows))

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

    def members(self, incident_ids: Sequence[int] | None = None) -> pd.DataFrame:
        """Linked reports of some incidents, or of every open one."""
        if incident_ids is None:
            where = f"i.status IN ({', '.join('?' * len(_OPEN))})"
            params: tuple[object, ...] = _OPEN
        else:
            where = "l.incident_id IN (SELECT value FROM json_each(?))"
            params = (json.dumps([int(i) for i in incident_ids]),)
        rows = self.conn.execute(
            "SELECT r.id, l.incident_id, r.service_code, r.lon, r.lat, r.address, r.requested_at, "
            "e.segment_id, e.street_name, l.score, l.reason FROM incident_reports l "
            "JOIN incidents i ON i.id = l.incident_id JOIN reports r ON r.id = l.report_id "
            "JOIN enrichments e ON e.report_id = r.id "
            f"WHERE l.jurisdiction_id = ? AND {where} ORDER BY r.requested_at, r.id",
            (self.jurisdiction_id, *params),
        ).fetchall()
        return _typed(pd.DataFrame(rows, columns=MEMBER_COLUMNS))

    def relink(self, links: pd.DataFrame) -> None:
        """Update each report's link in place."""
        self.conn.executemany(
            "UPDATE incident_reports SET incident_id = ?, score = ?, reason = ?, "
            "linked_at = ? WHERE jurisdiction_id = ? AND report_id = ?",
            zip(
                links["incident_id"].astype(int).tolist(),
                links["score"].astype(float).tolist(),
                links["reason"].astype(str).tolist(),
                iso_utc(links["linked_at"]).tolist(),
                [self.jurisdiction_id] * len(links),
                links["report_id"].astype(int).tolist(),
                strict=True,
            ),
        )

    def reshape_incidents(self, rows: pd.DataFrame) -> None:
        """One prepared UPDATE per incident; the GeoPackage triggers keep the R*Tree."""
        if not len(rows):
            return
        frame = rows[RESHAPE_COLUMNS].reset_index(drop=True)
        moved = frame["origin_report_id"].notna().to_numpy()
        geom = np.full(len(frame), None, dtype=object)
        geom[moved] = gpkg.point_blobs(
            frame.loc[moved, "lon"].to_numpy(float), frame.loc[moved, "lat"].to_numpy(float)
        )
        values = {
            name: (iso_utc(frame[name]) if name in DATETIME_COLUMNS else frame[name])
            .astype(object)
            .where(frame[name].notna(), None)
            .tolist()
            for name in RESHAPE_COLUMNS
        }
        params = [
            {
                **{name: values[name][k] for name in RESHAPE_COLUMNS},
                "geom": geom[k],
                "j": self.jurisdiction_id,
            }
            for k in range(len(frame))
        ]
        self.conn.executemany(
            "UPDATE incidents SET "
            "origin_report_id = coalesce(:origin_report_id, origin_report_id), "
            "lon = CASE WHEN :origin_report_id IS NULL THEN lon ELSE :lon END, "
            "lat = CASE WHEN :origin_report_id IS NULL THEN lat ELSE :lat END, "
            "segment_id = CASE WHEN :origin_report_id IS NULL THEN segment_id "
            "ELSE :segment_id END, "
            "street_name = CASE WHEN :origin_report_id IS NULL THEN street_name "
            "ELSE :street_name END, "
            "geom = CASE WHEN :origin_report_id IS NULL THEN geom ELSE :geom END, "
            "report_count = coalesce(:report_count, report_count), "
            "first_reported_at = coalesce(:first_reported_at, first_reported_at), "
            "last_reported_at = coalesce(:last_reported_at, last_reported_at), "
            "status = coalesce(:status, status), "
            "merged_into = coalesce(:merged_into, merged_into), "
            "updated_at = coalesce(:updated_at, updated_at) "
            "WHERE jurisdiction_id = :j AND id = :id",
            params,
        )

    def absorb(self, from_incident: int, to_incident: int) -> int:
        """``UPDATE OR IGNORE`` leaves behind the rows already on the target; then drop them."""
        key = {"j": self.jurisdiction_id, "a": int(from_incident), "b": int(to_incident)}
        for table in ("incident_supporters", "incident_followers"):
            self.conn.execute(
                f"UPDATE OR IGNORE {table} SET incident_id = :b "
                "WHERE jurisdiction_id = :j AND incident_id = :a",
                key,
            )
            self.conn.execute(
                f"DELETE FROM {table} WHERE jurisdiction_id = :j AND incident_id = :a", key
            )
        self.conn.execute(
            "UPDATE incidents SET merged_into = :b WHERE jurisdiction_id = :j AND merged_into = :a",
            key,
        )
        self.conn.execute(
            "UPDATE incidents SET supporters = (SELECT count(*) FROM incident_supporters s "
            "WHERE s.jurisdiction_id = :j AND s.incident_id = incidents.id) "
            "WHERE jurisdiction_id = :j AND id IN (:a, :b)",
            key,
        )
        (supporters,) = self.conn.execute(
            "SELECT supporters FROM incidents WHERE jurisdiction_id = :j AND id = :b", key
        ).fetchone()
        return int(supporters)

    def not_duplicates(self, incident_ids: Sequence[int] | None = None) -> pd.DataFrame:
        """Marked pairs touching the given incidents (all when None)."""
        where = ""
        if incident_ids is not None:
            where = (
                " AND (incident_a IN (SELECT value FROM json_each(:ids)) "
                "OR incident_b IN (SELECT value FROM json_each(:ids)))"
            )
        rows = self.conn.execute(
            "SELECT incident_a, incident_b FROM not_duplicates WHERE jurisdiction_id = :j"
            f"{where} ORDER BY incident_a, incident_b",
            {"j": self.jurisdiction_id, "ids": json.dumps([int(i) for i in incident_ids or []])},
        ).fetchall()
        return pd.DataFrame(rows, columns=["incident_a", "incident_b"], dtype="int64")

    def incident(self, incident_id: int) -> dict[str, object] | None:
        """The stored incident (this transaction already holds the write lock)."""
        if not 0 < int(incident_id) <= MAX_ID:
            return None
        names = COLUMNS["incidents"]
        cursor = self.conn.execute(
            f"SELECT {', '.join(names)} FROM incidents WHERE jurisdiction_id = ? AND id = ?",
            (self.jurisdiction_id, int(incident_id)),
        )
        rows = cursor.fetchall()
        if not rows:
            return None
        row = _typed(pd.DataFrame(rows, columns=names)).iloc[0]
        return {str(name): value for name, value in row.items()}

    def update_incident(self, incident_id: int, changes: Mapping[str, object]) -> None:
        """Set columns of one incident; its point follows a new lon/lat."""
        current = self.incident(incident_id)
        if current is None:
            raise KeyError(incident_id)
        current.update(changes)
        frame = pd.DataFrame([current])
        (values,) = _rows("incidents", frame)
        names = [*COLUMNS["incidents"], "geom"]
        keep = [
            i
            for i, name in enumerate(names)
            if name in changes or (name == "geom" and {"lon", "lat"} & set(changes))
        ]
        unknown = set(changes) - set(COLUMNS["incidents"])
        if unknown:
            raise KeyError(sorted(unknown))
        if keep:
            self.conn.execute(
                f"UPDATE incidents SET {', '.join(f'{names[i]} = ?' for i in keep)} "
                "WHERE jurisdiction_id = ? AND id = ?",
                (*(values[i] for i in keep), self.jurisdiction_id, int(incident_id)),
            )

    def rule_versions(self, rule_ids: Sequence[str]) -> pd.DataFrame:
        """Stored versions of these rules (``BEGIN IMMEDIATE`` already serializes writers)."""
        names = COLUMNS["routing_rules"]
        if not rule_ids:
            return _typed(pd.DataFrame(columns=list(names)))
        rows = self.conn.execute(
            f"SELECT {', '.join(names)} FROM routing_rules WHERE jurisdiction_id = ? "
            f"AND rule_id IN ({', '.join('?' * len(rule_ids))}) ORDER BY rule_id, version",
            (self.jurisdiction_id, *rule_ids),
        ).fetchall()
        return _typed(pd.DataFrame(rows, columns=list(names)))

    def claim_outbox(
        self, worker: str, now: datetime, lease_until: datetime, limit: int
    ) -> pd.DataFrame:
        """Pending messages due by ``now`` and not leased, leased to ``worker`` (the
        transaction's ``BEGIN IMMEDIATE`` keeps two workers from claiming the same rows)."""
        names = COLUMNS["outbox"]
        at = _instant(now)
        rows = self.conn.execute(
            f"SELECT {', '.join(names)} FROM outbox WHERE jurisdiction_id = ? "
            "AND status = 'pending' AND next_attempt_at <= ? "
            "AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY id LIMIT ?",
            (self.jurisdiction_id, at, at, int(limit)),
        ).fetchall()
        frame = _typed(pd.DataFrame(rows, columns=list(names)))
        self.conn.executemany(
            "UPDATE outbox SET claimed_by = ?, claimed_until = ? "
            "WHERE jurisdiction_id = ? AND id = ?",
            [(worker, _instant(lease_until), self.jurisdiction_id, int(i)) for i in frame["id"]],
        )
        frame["claimed_by"], frame["claimed_until"] = worker, pd.Timestamp(lease_until)
        return frame

    def finish_outbox(self, rows: pd.DataFrame) -> None:
        """Record delivery attempts (columns id, status, attempts, next_attempt_at,
        last_error, delivered_at) and release the rows' lease."""
        frame = rows.reset_index(drop=True)
        next_at, done_at = iso_utc(frame["next_attempt_at"]), iso_utc(frame["delivered_at"])
        self.conn.executemany(
            "UPDATE outbox SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ?, "
            "delivered_at = ?, claimed_by = NULL, claimed_until = NULL "
            "WHERE jurisdiction_id = ? AND id = ?",
            zip(
                frame["status"].astype(str),
                frame["attempts"].astype(int).tolist(),
                next_at,
                frame["last_error"].astype(object).where(frame["last_error"].notna(), None),
                done_at,
                [self.jurisdiction_id] * len(frame),
                frame["id"].astype(int).tolist(),
                strict=True,
            ),
        )

    def due_escalations(self, now: datetime, limit: int) -> pd.DataFrame:
        """Open incidents past their escalation time and not escalated yet, with the team
        to escalate to (columns incident_id, escalate_at, escalate_to)."""
        rows = self.conn.execute(
            "SELECT e.incident_id, e.escalate_at, e.escalate_to FROM escalations e "
            "JOIN incidents i ON i.id = e.incident_id AND i.jurisdiction_id = e.jurisdiction_id "
            "WHERE e.jurisdiction_id = ? AND e.escalated_at IS NULL AND e.escalate_at <= ? "
            f"AND i.status IN ({', '.join('?' * len(_OPEN))}) ORDER BY e.incident_id LIMIT ?",
            (self.jurisdiction_id, _instant(now), *_OPEN, int(limit)),
        ).fetchall()
        return _typed(pd.DataFrame(rows, columns=["incident_id", "escalate_at", "escalate_to"]))

    def mark_escalated(self, incident_ids: Sequence[int], at: datetime) -> None:
        """Record that these incidents were escalated at ``at``."""
        self.conn.executemany(
            "UPDATE escalations SET escalated_at = ? WHERE jurisdiction_id = ? AND incident_id = ?",
            [(_instant(at), self.jurisdiction_id, int(i)) for i in incident_ids],
        )


class SqliteStore(PortableReads):
    """The embedded store: a GeoPackage file opened with the stdlib sqlite3 module."""

    backend = "sqlite"
    dialect = DIALECT

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection per thread: the web server answers from a pool of threads, and two
        # threads must never interleave statements inside one connection's transaction.
        # Across connections sqlite itself serializes writers (WAL, busy timeout).
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
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
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            gpkg.register_functions(conn)
            self._local.conn = conn
            with self._guard:
                self._opened.append(conn)
        return conn

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

        Each migration is looked up inside the write transaction, so processes starting
        together apply it once (the others wait for the lock, then see it applied), and a
        migration numbered below one already applied (merged from another branch) still runs.
        """
        applied = []
        self.schema_version()  # creates the migrations table on a new file
        for version, name, sql in migrations(self.backend):
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                if self.conn.execute(
                    "SELECT 1 FROM voirie_migrations WHERE version = ?", (version,)
                ).fetchone():
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

    def _frame(self, text: str, params: Sequence[object]) -> pd.DataFrame:
        cursor = self.conn.execute(text, tuple(params))
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

    def incident_tile(self, jurisdiction_id: str, z: int, x: int, y: int) -> bytes:
        """Incidents in the tile (and its buffer) through the R*Tree, encoded by codecs.mvt.

        Below ``mvt.CLUSTER_BELOW_ZOOM`` one feature per cell (``mvt.encode_cells``).
        """
        minlon, minlat, maxlon, maxlat = mvt.lonlat_bounds(z, x, y)
        cells = z < mvt.CLUSTER_BELOW_ZOOM
        # Only the columns the tile needs: a city-wide cell tile reads every incident.
        names = (
            ["lon", "lat", "status", "report_count"] if cells else ["id", "lon", "lat", *mvt.FIELDS]
        )
        rows = self.conn.execute(
            f"SELECT {', '.join(_TILE_COLUMNS.get(name, f'i.{name}') for name in names)} "
            "FROM incidents i JOIN rtree_incidents_geom t ON t.id = i.id "
            "WHERE t.minx <= ? AND t.maxx >= ? AND t.miny <= ? AND t.maxy >= ? "
            "AND i.jurisdiction_id = ?",
            (maxlon, minlon, maxlat, minlat, jurisdiction_id),
        ).fetchall()
        frame = pd.DataFrame(rows, columns=names)
        px, py, keep = mvt.tile_coordinates(
            frame["lon"].to_numpy(float), frame["lat"].to_numpy(float), z, x, y
        )
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

    def lookup(
        self, table: str, jurisdiction_id: str, column: str, values: Sequence[object]
    ) -> pd.DataFrame:
        """Rows of a schema table whose ``column`` is one of ``values``."""
        names = _lookup_columns(table, column)
        if not values:
            return pd.DataFrame(columns=list(names))
        return self._frame(
            f"SELECT {', '.join(names)} FROM {table} WHERE jurisdiction_id = ? "
            f"AND {column} IN ({', '.join('?' * len(values))}) ORDER BY {column}, {names[0]}",
            (jurisdiction_id, *values),
        )

    def add_token(self, jurisdiction_id: str, token_hash: str, token: TokenRecord) -> None:
        """Insert one token row (autocommit: a single statement is its own transaction)."""
        self.conn.execute(
            "INSERT INTO api_tokens (jurisdiction_id, token_hash, name, role, teams, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                jurisdiction_id,
                token_hash,
                token.name,
                token.role,
                json.dumps(list(token.teams), ensure_ascii=False),
                _instant(datetime.now(UTC)),
            ),
        )

    def find_token(self, jurisdiction_id: str, token_hash: str) -> TokenRecord | None:
        """The token row with this hash, teams decoded from their JSON array."""
        row = self.conn.execute(
            "SELECT name, role, teams FROM api_tokens WHERE jurisdiction_id = ? AND token_hash = ?",
            (jurisdiction_id, token_hash),
        ).fetchone()
        if row is None:
            return None
        name, role, teams = row
        return TokenRecord(str(name), str(role), tuple(json.loads(teams)))

    def analyze(self) -> None:
        """``ANALYZE``: sqlite's planner picks indexes from the statistics it gathers."""
        self.conn.execute("ANALYZE")

    def close(self) -> None:
        """Close every thread's connection."""
        with self._guard:
            for conn in self._opened:
                conn.close()
            self._opened.clear()
        self._local = threading.local()


def _lookup_columns(table: str, column: str) -> tuple[str, ...]:
    """The columns of a schema table, once ``column`` is known to be one of them."""
    names = COLUMNS[table]
    if column not in names:
        raise KeyError(f"{table}.{column}")
    return names


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
