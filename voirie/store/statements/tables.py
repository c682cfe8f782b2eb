"""Rows appended to any schema table, and the ids reserved for them beforehand.

Events, assignments, enrichments, zones, contacts and the reports and incidents
themselves are all written this way: the batch path hands a DataFrame (``insert``, in
bulk), the per-report path a few mappings of Python scalars (``insert_rows``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import numpy as np
import pandas as pd

from voirie.store import public_points
from voirie.store.schema import COLUMNS, ID_TABLES, POINT_TABLES
from voirie.store.statements.session import Session


def insert_text(table: str) -> str:
    """The INSERT of a schema table's columns (and its point), one ``?`` each."""
    names = list(COLUMNS[table]) + (["geom"] if table in POINT_TABLES else [])
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


def known_table(table: str) -> None:
    """Refuse a name that is not a schema table (names are composed into the SQL text)."""
    if table not in COLUMNS:
        raise KeyError(f"{table}: not a table of voirie.store.schema")


def _id_table(table: str) -> None:
    """Refuse a table whose rows get no reserved ids."""
    if table not in ID_TABLES:
        raise KeyError(f"{table}: no reserved ids (tables with ids: {', '.join(ID_TABLES)})")


class SqlTables:
    """``Tables`` over a session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def reserve_ids(self, table: str, n: int) -> np.ndarray:
        """``n`` fresh ids, so rows written in this batch can refer to each other."""
        _id_table(table)
        if n <= 0:
            return np.zeros(0, dtype=np.int64)
        return self.session.reserve_ids(table, n)

    def prefetch_ids(self, counts: Mapping[str, int]) -> None:
        """Reserve ids of several tables at once (one round trip where the backend has
        them), handed out by the next ``reserve_ids`` calls of this transaction."""
        for table in counts:
            _id_table(table)
        self.session.prefetch_ids({table: n for table, n in counts.items() if n > 0})

    def insert(self, table: str, rows: pd.DataFrame) -> None:
        """Append rows (columns as in ``schema.COLUMNS[table]``) in bulk."""
        known_table(table)
        if len(rows):
            self.session.insert_frame(table, rows)
            if table in public_points.PUBLIC_TABLES:
                columns = [rows[n].to_numpy() for n in ("id", "service_code", "lon", "lat")]
                public_points.placed(self.session, table, *columns)

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, object]]) -> None:
        """Append rows given as mappings of Python scalars: what ``insert`` stores for the
        same rows, without building a DataFrame. Columns a row lacks are NULL, as are
        missing values (NaN, NaT); a point table's geometry comes from the row's lon/lat."""
        known_table(table)
        if not rows:
            return
        session, names = self.session, COLUMNS[table]
        bound = [session.bound_row(names, row) for row in rows]
        if table in POINT_TABLES:
            for values, row in zip(bound, rows, strict=True):
                lon, lat = float(cast(float, row["lon"])), float(cast(float, row["lat"]))
                values.append(session.dialect.point(lon, lat))
        session.run_many(insert_text(table), bound)
        if table in public_points.PUBLIC_TABLES:
            columns = [[row[n] for row in rows] for n in ("id", "service_code", "lon", "lat")]
            public_points.placed(session, table, *columns)
