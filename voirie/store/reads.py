"""Store-level reads and the token writes, written once for both backends.

The layers (through a ``Selection``), the named queries, events in a time window, counts,
keyed lookups and API tokens: the same SQL on sqlite and PostgreSQL, spelled with the
backend's ``Dialect``. A backend says only how it runs one read (``_frame``: sqlite on the
thread's connection, PostGIS on a pooled one with retries) and one write in its own
transaction (``_write``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar, cast

import numpy as np
import pandas as pd

from voirie.store.base import MetricCRS, TokenRecord
from voirie.store.dialect import Dialect
from voirie.store.queries import QUERIES
from voirie.store.schema import COLUMNS
from voirie.store.selection import (
    EVERYTHING,
    LAYERS,
    Layer,
    Selection,
    count_sql,
    nearest_sql,
    points_sql,
    select_sql,
    zones_sql,
)
from voirie.store.statements.tables import known_table


class StoreReads:
    """The reads of a store, and its tokens, over its dialect."""

    dialect: ClassVar[Dialect]

    def _frame(self, text: str, params: Sequence[object]) -> pd.DataFrame:
        """Rows of one read query (in the backend's placeholders) as a typed DataFrame."""
        raise NotImplementedError

    def _write(self, text: str, params: Sequence[object]) -> None:
        """Run one write statement (in the backend's placeholders) in its own transaction."""
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

    def nearest(
        self,
        layer: Layer,
        jurisdiction_id: str,
        selection: Selection,
        point: tuple[float, float],
        radius_m: float,
        metric: MetricCRS,
    ) -> pd.DataFrame:
        """The page of the rows a selection keeps within ``radius_m`` metres of a point,
        nearest first then by id: ``row_id``, ``distance_m``.

        Where the database projects (PostGIS), it measures, sorts and stops at the page
        itself (``nearest_sql``). Elsewhere (sqlite) only id, lon and lat of the rows in the
        selection's bbox are read (through the R*Tree), measured with ``metric.project``,
        and the page is cut here; either way the caller reads the page's rows alone.
        """
        if self.dialect.metric_distance is not None and metric.srid is not None:
            d = self.dialect
            return self._frame(
                *nearest_sql(layer, jurisdiction_id, selection, d, point, radius_m, metric.srid)
            )
        rows = self._frame(*points_sql(layer, jurisdiction_id, selection, self.dialect))
        x, y = metric.project(np.array([point[0]], float), np.array([point[1]], float))
        px, py = metric.project(rows["lon"].to_numpy(float), rows["lat"].to_numpy(float))
        distance = np.hypot(px - x[0], py - y[0])
        within = distance <= radius_m
        ids, distance = rows["row_id"].to_numpy(np.int64)[within], distance[within]
        order = np.lexsort((ids, distance))  # by distance, then id
        start = selection.offset
        stop = None if selection.limit is None else start + selection.limit
        kept = order[start:stop]
        return pd.DataFrame({"row_id": ids[kept], "distance_m": distance[kept]})

    def events_between(
        self, jurisdiction_id: str, kind: str, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """Events of one kind at ``start`` ≤ at ≤ ``end``, oldest first (schema columns)."""
        d = self.dialect
        return self._frame(
            d.text(
                f"SELECT {', '.join(COLUMNS['events'])} FROM events WHERE jurisdiction_id = ? "
                "AND kind = ? AND at >= ? AND at <= ? ORDER BY at, id"
            ),
            (jurisdiction_id, kind, d.instant(start), d.instant(end)),
        )

    def select_zones(
        self, layer: Layer, jurisdiction_id: str, selection: Selection
    ) -> pd.DataFrame:
        """Zone codes of one page of selected rows."""
        return self._frame(*zones_sql(layer, jurisdiction_id, selection, self.dialect))

    def count(self, table: str, jurisdiction_id: str) -> int:
        """Rows of a schema table for one jurisdiction."""
        known_table(table)  # the name is composed into the text: a schema table only
        frame = self._frame(
            self.dialect.text(f"SELECT count(*) FROM {table} WHERE jurisdiction_id = ?"),
            (jurisdiction_id,),
        )
        return int(cast(int, frame.iloc[0, 0]))

    def lookup(
        self, table: str, jurisdiction_id: str, column: str, values: Sequence[object]
    ) -> pd.DataFrame:
        """Rows of a schema table whose ``column`` is one of ``values``, ordered by that
        column then the table's first column."""
        known_table(table)
        names = COLUMNS[table]
        if column not in names:  # composed into the text too: one of the table's columns
            raise KeyError(f"{table}.{column}")
        if not values:
            return pd.DataFrame(columns=list(names))
        d = self.dialect
        values = [v.item() if isinstance(v, np.generic) else v for v in values]
        kind = "bigint" if all(isinstance(v, int) for v in values) else "text"
        return self._frame(
            d.text(
                f"SELECT {', '.join(names)} FROM {table} WHERE jurisdiction_id = ? "
                f"AND {d.in_array(column, kind)} ORDER BY {column}, {names[0]}"
            ),
            (jurisdiction_id, d.array(list(values))),
        )

    def add_token(self, jurisdiction_id: str, token_hash: str, token: TokenRecord) -> None:
        """Store an API token's hash with its holder, role and teams."""
        d = self.dialect
        self._write(
            d.text(
                "INSERT INTO api_tokens (jurisdiction_id, token_hash, name, role, teams, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)"
            ),
            (
                jurisdiction_id,
                token_hash,
                token.name,
                token.role,
                d.array(list(token.teams)),
                d.instant(datetime.now(UTC)),
            ),
        )

    def find_token(self, jurisdiction_id: str, token_hash: str) -> TokenRecord | None:
        """The token stored under this hash in this jurisdiction, if any."""
        frame = self._frame(
            self.dialect.text(
                "SELECT name, role, teams FROM api_tokens "
                "WHERE jurisdiction_id = ? AND token_hash = ?"
            ),
            (jurisdiction_id, token_hash),
        )
        if frame.empty:
            return None
        name, role, teams = frame.iloc[0]
        return TokenRecord(str(name), str(role), self.dialect.from_array(teams))
