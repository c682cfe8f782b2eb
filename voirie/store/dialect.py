"""What differs between the SQL of the two backends, and nothing else.

Every statement of the store is written once, with ``?`` for each bound value, and asks a
``Dialect`` for the few pieces the backends spell differently: the placeholder, how a
bbox uses the spatial index, how an instant, a flag, a point or an array is bound, how a
column of bound rows is joined (``json_each`` or ``unnest``), and the row locks PostgreSQL
takes where sqlite's ``BEGIN IMMEDIATE`` already serializes writers. Each backend module
defines its ``DIALECT``; values are always bound, never formatted into the text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

Column = tuple[str, str]
"""A column of bound rows: its name and its SQL type (``bigint``, ``float8``, ``text``...)."""


@dataclass(frozen=True)
class Dialect:
    """The backend-specific spelling of the statements written once in ``voirie.store``."""

    placeholder: str
    """What a bound value is written as (``?`` or ``%s``)."""
    bbox: Callable[[str, str], str]
    """(table, alias) -> a condition with four placeholders: minx, miny, maxx, maxy."""
    public_bbox: Callable[[str, str], str]
    """``bbox`` on the rows' public points (``voirie.store.public_points``: the exact
    point where ``public_lon`` is NULL), through the spatial indexes; eight placeholders,
    the box twice."""
    instant: Callable[[datetime], object]
    """A datetime as the backend stores and compares it (a naive one is UTC)."""
    flag: Callable[[bool], object]
    """A boolean as the backend stores it."""
    point: Callable[[float, float], object]
    """A WGS84 point (lon, lat) as a bound value of a ``geom`` column."""
    make_point: Callable[[str, str], str]
    """(lon expression, lat expression) -> the SQL expression of that WGS84 point."""
    in_array: Callable[[str, str], str]
    """(column, element SQL type) -> a condition with one placeholder: the column is in
    the array bound there (see ``array``)."""
    array: Callable[[Sequence[object]], object]
    """Values as the one bound parameter of ``in_array``."""
    from_array: Callable[[object], tuple[str, ...]]
    """A stored array of texts as read back."""
    rows: Callable[[Sequence[Column]], str]
    """Columns -> a table expression ``... AS u`` of bound rows with those columns, for
    ``UPDATE ... FROM``; its parameters come from ``rows_params``."""
    rows_params: Callable[[Sequence[Sequence[object]]], list[object]]
    """The values of ``rows``'s columns (one list per column) as its bound parameters."""
    probe: Callable[[str, str, str], str]
    """(table, alias, condition) -> a join that finds, for each row before it, the one row
    of ``table`` meeting ``condition`` on its unique key, in that order whatever the
    planner's statistics say: ``CROSS JOIN LATERAL (... LIMIT 1)`` on PostgreSQL, a
    ``CROSS JOIN`` (which keeps the written order) on sqlite."""
    metric_distance: Callable[[str], str] | None
    """(alias) -> the distance in metres from the alias's point to a WGS84 point, both
    projected to a metric CRS, with four placeholders: the CRS's SRID, longitude,
    latitude, the SRID again; None where the backend cannot project (sqlite: the caller
    measures the distances of the rows in the box)."""
    lock_rows: str
    """Appended to a SELECT that must lock the rows it reads until commit."""
    skip_locked: Callable[[str], str]
    """(alias) -> appended to a SELECT that locks its rows and skips those already locked."""
    unindexed: Callable[[str], str]
    """(column) -> the column as an operand no index may serve (sqlite: ``+column``). A
    read by ids must be driven by the primary key: without statistics (a store that only
    ever took POSTs), sqlite would walk a ``(jurisdiction_id, ...)`` index, every row of
    the city, to find a hundred ids. PostgreSQL's planner has statistics: unchanged."""

    def text(self, statement: str) -> str:
        """A statement written with ``?`` marks, in this backend's placeholder."""
        return statement.replace("?", self.placeholder)
