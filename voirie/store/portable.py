"""Unit-of-work statements written once for both backends.

Where the SQL is the same on sqlite and PostgreSQL, only two things differ: the parameter
placeholder (``?`` or ``%s``) and how an instant is bound (GeoPackage text or an aware
datetime). Each backend's unit of work inherits these methods and says both; each store
inherits the layer reads, given its ``Dialect`` and how it runs one read query.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Protocol, cast

import pandas as pd

from voirie.store.queries import QUERIES
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

    def _run(self, text: str, params: Sequence[object]) -> Any:
        return self.conn.execute(text.replace("?", self.placeholder), tuple(params))

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

    def select_zones(
        self, layer: Layer, jurisdiction_id: str, selection: Selection
    ) -> pd.DataFrame:
        """Zone codes of one page of selected rows."""
        return self._frame(*zones_sql(layer, jurisdiction_id, selection, self.dialect))
