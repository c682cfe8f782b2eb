"""Unit-of-work statements written once for both backends.

Where the SQL is the same on sqlite and PostgreSQL, only two things differ: the parameter
placeholder (``?`` or ``%s``) and how an instant is bound (GeoPackage text or an aware
datetime). Each backend's unit of work inherits these methods and says both; each store
inherits the layer reads, given its ``Dialect`` and how it runs one read query.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, NamedTuple, Protocol, cast

import numpy as np
import pandas as pd

from voirie.store.candidates import OPEN_INCIDENT_COLUMNS, BBox
from voirie.store.queries import QUERIES
from voirie.store.schema import BOOL_COLUMNS, COLUMNS, DATETIME_COLUMNS, POINT_TABLES
from voirie.store.selection import (
    EVERYTHING,
    LAYERS,
    Dialect,
    Layer,
    Selection,
    count_sql,
    select_sql,
    zones_sql,
)


class _Executes(Protocol):
    def execute(self, query: Any, params: Any = ..., /) -> Any: ...


class PortableStatements:
    """Followers, not-duplicate marks and notice recipients: one text for both backends."""

    placeholder: ClassVar[str]
    conn: _Executes
    jurisdiction_id: str

    def bind_instant(self, at: datetime) -> object:
        """An instant as this backend stores it."""
        raise NotImplementedError

    def bind_flag(self, value: bool) -> object:
        """A flag as this backend stores it."""
        raise NotImplementedError

    def bind_point(self, lon: float, lat: float) -> object:
        """A WGS84 point as this backend stores it."""
        raise NotImplementedError

    def _run(self, text: str, params: Sequence[object]) -> Any:
        return self.conn.execute(text.replace("?", self.placeholder), tuple(params))

    def _run_many(self, text: str, rows: Sequence[Sequence[object]]) -> None:
        raise NotImplementedError

    @staticmethod
    def typed(frame: pd.DataFrame) -> pd.DataFrame:
        """Columns as the backend returns them turned into the pipeline's types."""
        raise NotImplementedError

    def _open_rows(
        self, bbox: BBox, service_codes: Sequence[str], since: datetime
    ) -> list[tuple[object, ...]]:
        raise NotImplementedError

    def open_incidents(
        self, bbox: BBox, service_codes: Sequence[str], since: datetime
    ) -> pd.DataFrame:
        """Open incidents whose point lies in the bbox (edges included), through the
        backend's spatial index."""
        rows = self._open_rows(bbox, service_codes, since)
        return self.typed(pd.DataFrame(rows, columns=OPEN_INCIDENT_COLUMNS))

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, object]]) -> None:
        """Append rows given as mappings of Python scalars (the per-report path's writes):
        what ``insert`` stores for the same rows, without building a DataFrame.

        Columns a row lacks are NULL, as are NaN values; a point table's geometry comes
        from the row's lon/lat.
        """
        if table not in COLUMNS:
            raise KeyError(table)
        if rows:
            bound = [self._bound(table, row) for row in rows]
            self._run_many(insert_text(table, self.placeholder), bound)

    def _bound(self, table: str, row: Mapping[str, object]) -> list[object]:
        values: list[object] = []
        for name in COLUMNS[table]:
            value = row.get(name)
            if isinstance(value, np.generic):
                value = value.item()
            if value is None or (isinstance(value, float) and math.isnan(value)):
                values.append(None)
            elif name in DATETIME_COLUMNS:
                values.append(self.bind_instant(cast(datetime, value)))
            elif name in BOOL_COLUMNS:
                values.append(self.bind_flag(bool(value)))
            else:
                values.append(value)
        if table in POINT_TABLES:
            values.append(
                self.bind_point(float(cast(float, row["lon"])), float(cast(float, row["lat"])))
            )
        return values

    def known_report(self, source: str, external_id: str) -> KnownReport | None:
        """The stored report of a source under this external id, if any (a keyed lookup)."""
        row = self._run(
            "SELECT r.content_hash, r.id, l.incident_id, r.received_at FROM reports r "
            "LEFT JOIN incident_reports l ON l.report_id = r.id "
            "WHERE r.jurisdiction_id = ? AND r.source = ? AND r.external_id = ?",
            (self.jurisdiction_id, source, external_id),
        ).fetchone()
        if row is None:
            return None
        digest, report_id, incident_id, received_at = row
        if isinstance(received_at, str):  # GeoPackage text
            received_at = datetime.fromisoformat(received_at)
        return KnownReport(
            str(digest),
            int(report_id),
            None if incident_id is None else int(incident_id),
            received_at,
        )

    def add_report_to_incident(self, incident_id: int, reported_at: datetime, at: datetime) -> None:
        """Count one more report on a stored incident and move its last-reported time."""
        last = self.bind_instant(reported_at)
        self._run(
            "UPDATE incidents SET report_count = report_count + 1, "
            "last_reported_at = CASE WHEN last_reported_at < ? THEN ? ELSE last_reported_at END, "
            "updated_at = ? WHERE jurisdiction_id = ? AND id = ?",
            (last, last, self.bind_instant(at), self.jurisdiction_id, int(incident_id)),
        )

    def add_follower(self, incident_id: int, email: str, at: datetime) -> bool:
        """Insert the follower unless already there."""
        cursor = self._run(
            "INSERT INTO incident_followers (jurisdiction_id, incident_id, email, followed_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (self.jurisdiction_id, int(incident_id), email, self.bind_instant(at)),
        )
        return bool(cursor.rowcount == 1)

    def remove_follower(self, incident_id: int, email: str) -> bool:
        """Delete the follower, if any."""
        cursor = self._run(
            "DELETE FROM incident_followers "
            "WHERE jurisdiction_id = ? AND incident_id = ? AND email = ?",
            (self.jurisdiction_id, int(incident_id), email),
        )
        return bool(cursor.rowcount == 1)

    def add_supporter(
        self, incident_id: int, email: str | None, at: datetime, client_key: str | None = None
    ) -> tuple[bool, int]:
        """Insert the supporter unless the email, or the anonymous client's key, already
        supports the incident; then (counted, supporters)."""
        key = (self.jurisdiction_id, int(incident_id))
        counted = (
            self._run(
                "INSERT INTO incident_supporters (jurisdiction_id, incident_id, email, client_key, "
                "supported_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (*key, email, client_key, self.bind_instant(at)),
            ).rowcount
            == 1
        )
        if counted:
            self._run(
                "UPDATE incidents SET supporters = supporters + 1 "
                "WHERE jurisdiction_id = ? AND id = ?",
                key,
            )
        (supporters,) = self._run(
            "SELECT supporters FROM incidents WHERE jurisdiction_id = ? AND id = ?", key
        ).fetchone()
        return counted, int(supporters)

    def client_salt(self, day: str) -> str:
        """The salt of anonymous clients' keys for ``day`` (ISO date), made on first use;
        the salts of earlier days are deleted (their keys can no longer be traced)."""
        self._run(
            "DELETE FROM client_salts WHERE jurisdiction_id = ? AND day < ?",
            (self.jurisdiction_id, day),
        )
        self._run(
            "INSERT INTO client_salts (jurisdiction_id, day, salt) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (self.jurisdiction_id, day, secrets.token_hex(16)),
        )
        (salt,) = self._run(
            "SELECT salt FROM client_salts WHERE jurisdiction_id = ? AND day = ?",
            (self.jurisdiction_id, day),
        ).fetchone()
        return str(salt)

    def mark_not_duplicates(
        self, incident_a: int, incident_b: int, actor: str, reason: str, at: datetime
    ) -> bool:
        """Insert the ordered pair unless present."""
        low, high = sorted((int(incident_a), int(incident_b)))
        cursor = self._run(
            "INSERT INTO not_duplicates (jurisdiction_id, incident_a, incident_b, actor, "
            "reason, marked_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (self.jurisdiction_id, low, high, actor, reason, self.bind_instant(at)),
        )
        return bool(cursor.rowcount == 1)

    def subscribers(self, incident_id: int) -> list[str]:
        """Emails to tell about the incident: its followers' and its reporters' (private)."""
        key = (self.jurisdiction_id, int(incident_id))
        rows = self._run(
            "SELECT email FROM incident_followers WHERE jurisdiction_id = ? AND incident_id = ? "
            "UNION SELECT c.email FROM report_contacts c JOIN incident_reports l "
            "ON l.report_id = c.report_id AND l.jurisdiction_id = c.jurisdiction_id "
            "WHERE l.jurisdiction_id = ? AND l.incident_id = ? "
            "AND c.email IS NOT NULL AND c.email <> '' ORDER BY 1",
            (*key, *key),
        ).fetchall()
        return [str(email) for (email,) in rows]


class KnownReport(NamedTuple):
    """What the per-report path needs of a report already stored under its external id."""

    content_hash: str
    report_id: int
    incident_id: int | None
    received_at: datetime


def insert_text(table: str, placeholder: str) -> str:
    """The INSERT of a schema table's columns (and geometry), one placeholder each."""
    names = list(COLUMNS[table]) + (["geom"] if table in POINT_TABLES else [])
    marks = ", ".join([placeholder] * len(names))
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})"


class PortableReads:
    """The reads of the report and incident layers and of the named queries."""

    dialect: ClassVar[Dialect]

    def _frame(self, text: str, params: Sequence[object]) -> pd.DataFrame:
        """Rows of one read query as a typed DataFrame."""
        raise NotImplementedError

    def read(self, query: str, jurisdiction_id: str) -> pd.DataFrame:
        """A whole layer, or a named read query, as a DataFrame."""
        if query in LAYERS:
            return self.select(query, jurisdiction_id, EVERYTHING)
        # Only the placeholder is formatted in; the jurisdiction itself is bound.
        return self._frame(QUERIES[query].format(j=self.dialect.placeholder), (jurisdiction_id,))

    def select(self, layer: Layer, jurisdiction_id: str, selection: Selection) -> pd.DataFrame:
        """One page of a layer's selected rows."""
        return self._frame(*select_sql(layer, jurisdiction_id, selection, self.dialect))

    def count_selected(self, layer: Layer, jurisdiction_id: str, selection: Selection) -> int:
        """Rows a selection keeps, whatever its page."""
        frame = self._frame(*count_sql(layer, jurisdiction_id, selection, self.dialect))
        return int(cast(int, frame.iloc[0, 0]))

    def events_between(
        self, jurisdiction_id: str, kind: str, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """Events of one kind at ``start`` ≤ at ≤ ``end``, oldest first (schema columns)."""
        mark, names = self.dialect.placeholder, ", ".join(COLUMNS["events"])
        return self._frame(
            f"SELECT {names} FROM events WHERE jurisdiction_id = {mark} AND kind = {mark} "
            f"AND at >= {mark} AND at <= {mark} ORDER BY at, id",
            (jurisdiction_id, kind, self.dialect.instant(start), self.dialect.instant(end)),
        )

    def select_zones(
        self, layer: Layer, jurisdiction_id: str, selection: Selection
    ) -> pd.DataFrame:
        """Zone codes of one page of selected rows."""
        return self._frame(*zones_sql(layer, jurisdiction_id, selection, self.dialect))
