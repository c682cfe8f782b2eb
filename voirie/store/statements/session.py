"""One transaction as the statements see it: a connection, a jurisdiction and a dialect.

The repositories of ``voirie.store.statements`` are written once over a ``Session``: they
write their SQL with ``?`` marks and bind Python values through it. A backend's session
subclass adds the few things only that backend can do: take writers' locks, reserve ids,
append a DataFrame in bulk (COPY or ``executemany``) and run one statement over many rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any, Protocol, cast

import numpy as np
import pandas as pd

from voirie.store.dialect import Dialect
from voirie.store.public_points import Placement
from voirie.store.schema import BOOL_COLUMNS, DATETIME_COLUMNS


class Connection(Protocol):
    """What the statements use of a DB-API connection (sqlite3's and psycopg's alike)."""

    def execute(self, query: Any, params: Any = ..., /) -> Any: ...


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows as a backend returns them with the pipeline's types: instants tz-aware in UTC
    (sqlite gives GeoPackage text, psycopg datetimes), flags as bool."""
    for name in frame.columns:
        if name in DATETIME_COLUMNS:
            frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
        elif name in BOOL_COLUMNS:
            frame[name] = frame[name].astype(bool)
    return frame


def missing(value: object) -> bool:
    """Whether a scalar is a missing value: None, NaN, NaT or pandas' NA."""
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    return isinstance(value, np.datetime64) and bool(np.isnat(value))


class Session:
    """A connection in one transaction, the jurisdiction it writes and the backend's
    dialect; subclasses provide the backend-specific operations below."""

    placement: Placement | None = None
    """How the city places its rows for the public (``voirie.store.public_points``)."""

    def __init__(self, conn: Connection, jurisdiction_id: str, dialect: Dialect) -> None:
        self.conn = conn
        self.jurisdiction_id = jurisdiction_id
        self.dialect = dialect

    def run(self, statement: str, params: Sequence[object] = ()) -> Any:
        """Execute one statement written with ``?`` marks; its cursor."""
        return self.conn.execute(self.dialect.text(statement), tuple(params))

    def frame(
        self, statement: str, params: Sequence[object], columns: Sequence[str]
    ) -> pd.DataFrame:
        """The rows of one query as a typed DataFrame with these column names."""
        rows = self.run(statement, params).fetchall()
        return typed(pd.DataFrame(rows, columns=list(columns)))

    def value(self, column: str, value: object) -> object:
        """A Python or numpy scalar of a schema column as a bound parameter (missing
        values as NULL, instants and flags as the backend stores them)."""
        if missing(value):
            return None
        if isinstance(value, np.generic):
            value = value.item()
        if column in DATETIME_COLUMNS:
            return self.dialect.instant(cast(datetime, value))
        if column in BOOL_COLUMNS:
            return self.dialect.flag(bool(value))
        return value

    def column(self, column: str, values: Iterable[object]) -> list[object]:
        """A column of values bound as ``value`` binds each (instants parsed first)."""
        if column in DATETIME_COLUMNS:
            values = pd.to_datetime(pd.Series(list(values), dtype=object), utc=True)
        return [self.value(column, v) for v in values]

    @staticmethod
    def ints(values: Iterable[object]) -> list[int | None]:
        """A column of integers (which pandas may hold as floats beside a NaN) bound."""
        return [None if missing(v) else int(cast(int, v)) for v in values]

    def bound_row(self, names: Sequence[str], row: Mapping[str, object]) -> list[object]:
        """A row given as a mapping, bound in the order of ``names`` (absent means NULL)."""
        return [self.value(name, row.get(name)) for name in names]

    # --- backend-specific ---------------------------------------------------------------

    def run_many(self, statement: str, rows: Sequence[Sequence[object]]) -> None:
        """Execute one statement written with ``?`` marks once per row of parameters."""
        raise NotImplementedError

    def lock(self, keys: Sequence[str], shared: Sequence[str] = ()) -> None:
        """Serialize the writers of the same keys until this transaction ends; ``shared``
        keys first, in shared mode (held with other shared holders, against exclusive
        ones)."""
        raise NotImplementedError

    def reserve_ids(self, table: str, n: int) -> np.ndarray:
        """``n`` fresh ids of a table with reserved ids (checked by the caller)."""
        raise NotImplementedError

    def prefetch_ids(self, counts: Mapping[str, int]) -> None:
        """Reserve ids of several tables at once, for ``reserve_ids`` to hand out later in
        this transaction; by default nothing (no round trip to save: reserved on demand)."""

    def pipelined(self) -> AbstractContextManager[object]:
        """A block whose statements are sent together, results read only when needed;
        by default statements run one by one (no round trip to save)."""
        return nullcontext()

    def insert_frame(self, table: str, rows: pd.DataFrame) -> None:
        """Append the non-empty rows of a schema table (checked by the caller) in bulk."""
        raise NotImplementedError
