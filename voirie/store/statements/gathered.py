"""One report's rows of every table written as one statement (the per-report path).

A new report writes up to twelve tables (report, contact, enrichment, zones, attributes,
link, events; the incident it opens, its zones, assignment, escalation and notices). Sent
one ``executemany`` per table, each paid psycopg's per-statement Python (a cursor, the
query converted, the parameters dumped, the pipeline's bookkeeping, the result read):
a fifth of ``create()``'s CPU under cProfile (issue 20). Inside ``Tables.gathering`` the rows
appended with ``insert_rows`` are kept and sent when the block ends, on PostgreSQL as
one statement of data-modifying CTEs (``WITH t0 AS (INSERT ...), t1 AS (INSERT ...)
INSERT ...``) whose one parameter is every row as JSON (``jsonb_populate_recordset``
gives each table's rows its column types, as the server casts bound text); the foreign
keys between them are checked at the end of that statement, so the rows may refer to
each other in any order. sqlite has no data-modifying CTE (and no round trip to save):
there the block changes nothing.

A data-modifying statement of the block other than an insert (a report attached to an
incident counts on it: ``SqlIncidents.add_report``) may be held too (``hold``): one more
CTE of the same statement, its values read from the same JSON, instead of a statement
of its own (on the attach path, one statement in nine, issue 20).

Nothing in the block may read the rows it appended or changed (they are not sent yet):
the block covers the writes of one report, whose reads all came before
(``Intake._send``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import cast

import orjson
import pandas as pd

from voirie.store import public_points
from voirie.store.schema import BOOL_COLUMNS, COLUMNS, DATETIME_COLUMNS, POINT_TABLES
from voirie.store.statements.session import Session
from voirie.store.statements.tables import SqlTables, known_table

_PLAIN = frozenset[str]().union(*COLUMNS.values()) - DATETIME_COLUMNS - BOOL_COLUMNS
"""The columns whose text, integer or finite float values are bound as they are."""

Shape = tuple[str, ...]
"""The parts of one gathered statement, in order: a table's name (its rows inserted) or
the text of a held statement (``GatheredTables.hold``)."""
VALUES = "{values}"
"""Where a held statement's text reads its values: replaced by the JSON's one row."""


@lru_cache(maxsize=64)
def gathered_text(shape: Shape, make_point: Callable[[str, str], str]) -> str:
    """The one statement inserting rows of several tables from one bound JSON array (its
    ``k``-th element the rows of the ``k``-th table, objects keyed by column): a CTE per
    table but the last, whose INSERT is the statement's own; a point table's ``geom``
    made from the row's lon/lat. One parameter, so psycopg converts the text once (it
    re-parses a statement of more than 50 parameters at every execution) and PostgreSQL
    prepares it after a few; cached per shape: a POST writes one of a few."""
    inserts = []
    for k, table in enumerate(shape):
        if table not in COLUMNS:  # a held statement
            inserts.append(table.replace(VALUES, f"d, jsonb_to_record(d.rows -> {k} -> 0)"))
            continue
        names = list(COLUMNS[table])
        values = [f"r.{name}" for name in names]
        if table in POINT_TABLES:
            names.append("geom")
            values.append(make_point("r.lon", "r.lat"))
        inserts.append(
            f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(values)} "
            f"FROM d, jsonb_populate_recordset(NULL::{table}, d.rows -> {k}) AS r"
        )
    *ctes, last = inserts
    return (
        "WITH d AS (SELECT ?::jsonb AS rows)"
        + "".join(f", t{k} AS ({text})" for k, text in enumerate(ctes))
        + f" {last}"
    )


def _instant(value: object) -> str:
    """An instant bound in the JSON rows (ISO 8601 with its offset; orjson writes
    ``datetime`` itself, this takes its subclasses, ``pd.Timestamp``)."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} in a gathered row")


class GatheredTables(SqlTables):
    """``SqlTables`` whose ``insert_rows`` may be held and sent as one statement."""

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        # Only a pipelining session (PostgreSQL through psycopg) reads data-modifying CTEs.
        self.gathers = type(session).pipelined is not Session.pipelined
        self._held: list[tuple[str, list[dict[str, object]], Sequence[Mapping[str, object]]]]
        self._held = []
        self._gathering = False

    @contextmanager
    def gathering(self) -> Iterator[None]:
        """Hold the rows ``insert_rows`` appends until the block ends, then send them as
        one statement (dropped if the block raises: its transaction is rolled back)."""
        if not self.gathers or self._gathering:
            yield
            return
        self._gathering = True
        try:
            yield
            held = self._held
        finally:
            self._gathering, self._held = False, []
        self._send(held)

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, object]]) -> None:
        """``SqlTables.insert_rows``; held until the end of a ``gathering`` block."""
        if not self._gathering:
            super().insert_rows(table, rows)
            return
        known_table(table)
        if rows:
            names = COLUMNS[table]
            self._held.append((table, [self._bound(names, row) for row in rows], rows))

    def _bound(self, names: Sequence[str], row: Mapping[str, object]) -> dict[str, object]:
        """A row's values as ``Session.bound_row`` binds them, keyed by column for the
        JSON (missing ones left out: NULL). Text, integers and finite floats of plain
        columns are bound as they are; the rest goes through ``Session.value``."""
        bound: dict[str, object] = {}
        for name in names:
            value = row.get(name)
            kind = type(value)
            if name in _PLAIN and (
                kind is str or kind is int or (kind is float and math.isfinite(cast(float, value)))
            ):
                bound[name] = value
            elif value is not None and (value := self.session.value(name, value)) is not None:
                infinite = isinstance(value, float) and math.isinf(value)
                # JSON has no infinity: PostgreSQL reads the text ("inf") into float8.
                bound[name] = str(value) if infinite else value
        return bound

    def hold(self, statement: str, values: Mapping[str, object]) -> bool:
        """In a ``gathering`` block on PostgreSQL, hold a data-modifying statement (no
        RETURNING, nothing read back) to send as one more part of the gathered one, and
        say so; else False: the caller runs it itself. ``statement`` reads its values
        from ``FROM {values} AS v(name type, ...)``: ``values`` (instants aware, numbers,
        text) as one JSON object, typed by that column list. Sent with the rows, in the
        order of the calls, in the transaction of the block."""
        if not self._gathering:
            return False
        if VALUES not in statement:
            raise ValueError(f"a held statement reads no {VALUES}: {statement[:60]!r}")
        self._held.append((statement, [dict(values)], ()))
        return True

    def insert(self, table: str, rows: pd.DataFrame) -> None:
        """``SqlTables.insert``; refused in a ``gathering`` block (its rows would go
        before those held)."""
        if self._gathering:
            raise RuntimeError(f"{table}: a bulk insert inside a gathering block")
        super().insert(table, rows)

    def _send(
        self, held: list[tuple[str, list[dict[str, object]], Sequence[Mapping[str, object]]]]
    ) -> None:
        """The held rows in one statement, then the public points of those placed."""
        if not held:
            return
        session = self.session
        shape = tuple(table for table, _, _ in held)
        values = orjson.dumps([bound for _, bound, _ in held], default=_instant).decode()
        session.run(gathered_text(shape, session.dialect.make_point), (values,))
        for table, _, rows in held:
            if table in public_points.PUBLIC_TABLES:
                columns = [[row[n] for row in rows] for n in ("id", "service_code", "lon", "lat")]
                public_points.placed(session, table, *columns)
