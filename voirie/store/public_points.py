"""Public points stored beside the exact ones (issue 17 item 5, migration 0020).

The public sees an incident (or a report) of a blurred service at its public point
(``voirie.gis.blur``). A public read that filters on a box or a circle (OGC ``bbox``,
Open311 ``bbox``, the downloads' ``bbox``, CQL2 ``s_intersects``, the nearby search) must
select, count, order and page such a row by that point, exactly as if it were its location:
shrinking a box around the public point must never tell where the exact one is. The SQL
can only do that on a stored point, with a spatial index, so each row of ``reports`` and
``incidents`` carries ``public_lon``/``public_lat``: NULL when it is the exact point (every
row of a city without blurring: nothing more is written), the blurred point otherwise.

The point depends on city.yaml and on the street network, which the database does not
hold, so the store computes it with the city's ``Placement`` (registered by the read
facade, ``services.reads.Reads``, for each city a process serves):

- when a row is inserted (``placed``), and when an incident moves or changes service
  (``replaced``): the statements of ``voirie.store.statements`` call them in the same
  transaction;
- for every row when the city's blurring changes (``StoreReads.place_publicly``, at the
  start of every pipeline: the fingerprint of the blurring it was computed with is kept
  in the table ``public_points``). A write made by a process that registered no
  placement for the city forgets that fingerprint, so the next start recomputes every
  point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np

from voirie.store.dialect import Dialect

PublicPoints = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""(service codes, lon, lat) -> the WGS84 (lon, lat) the public sees (``Blur.public``)."""
PUBLIC_TABLES = ("reports", "incidents")
"""The tables whose rows carry a public point."""
WRITE_BATCH_ROWS = 5_000
"""Rows set by one statement. Recomputing a city's points rewrites every blurred row: at
1M incidents, ~300k rows took 70 s in one UPDATE (every index of the table gets a new
entry per row), over the 60 s statement timeout, so a server could not start with them
placed; 5,000 rows take about a second (bench/RESULTS.md, "public points in batches")."""


class Session(Protocol):
    """What this module uses of a write session (``statements.session.Session``)."""

    jurisdiction_id: str
    dialect: Dialect

    @property
    def placement(self) -> Placement | None:
        """The city's placement, None when no pipeline registered one."""

    def run(self, statement: str, params: Sequence[object] = ...) -> Any:
        """Execute one statement written with ``?`` marks; its cursor."""


@dataclass(frozen=True)
class Placement:
    """How one city places its rows for the public: the blurred services, the function
    that computes their public points and the fingerprint of that blurring (None when the
    city blurs nothing)."""

    services: frozenset[str]
    public: PublicPoints
    fingerprint: str | None


def point_columns(alias: str, *, public: bool) -> tuple[str, str]:
    """The SQL of a row's longitude and latitude: its exact point, or with ``public``
    its public one (NULL where they are the same)."""
    if not public:
        return f"{alias}.lon", f"{alias}.lat"
    return (
        f"coalesce({alias}.public_lon, {alias}.lon)",
        f"coalesce({alias}.public_lat, {alias}.lat)",
    )


def _table(table: str) -> None:
    """Refuse a table without public points (the name is composed into the SQL)."""
    if table not in PUBLIC_TABLES:
        raise KeyError(f"{table}: no public points (tables: {', '.join(PUBLIC_TABLES)})")


def _write(
    session: Session,
    table: str,
    ids: Sequence[int],
    lon: Sequence[float | None],
    lat: Sequence[float | None],
) -> None:
    """Set the public point of these rows (None: the exact point), ``WRITE_BATCH_ROWS``
    a statement (each well within the statement timeout, whatever the city's size). A row
    already at its point is left alone: no new row version, no index entries, so placing
    again what a concurrent start or an interrupted one already placed costs a read."""
    d = session.dialect
    rows = d.rows([("id", "bigint"), ("lon", "float8"), ("lat", "float8")])
    # Each bound row finds its row by id. sqlite (without statistics) would otherwise walk
    # the city's rows through a (jurisdiction_id, ...) index and scan every bound row for
    # each: 2.4 s for 2,000 rows, quadratic.
    text = (
        f"UPDATE {table} AS t SET public_lon = u.lon, public_lat = u.lat FROM {rows} "
        f"WHERE {d.unindexed('t.jurisdiction_id')} = ? AND t.id = u.id "
        f"AND ({_differs('t.public_lon', 'u.lon')} OR {_differs('t.public_lat', 'u.lat')})"
    )
    size = WRITE_BATCH_ROWS
    for start in range(0, len(ids), size):
        batch = [list(column[start : start + size]) for column in (ids, lon, lat)]
        session.run(text, (*d.rows_params(batch), session.jurisdiction_id))


def _differs(stored: str, new: str) -> str:
    """SQL true when two nullable values differ (NULL and NULL do not): ``IS DISTINCT
    FROM`` in words both backends read (sqlite has it only since 3.39)."""
    return f"({stored} <> {new} OR ({stored} IS NULL) <> ({new} IS NULL))"


def _forget(session: Session) -> None:
    """A row was written without the city's placement: its public point may be wrong, so
    the next start must recompute every point (its fingerprint is dropped)."""
    session.run("DELETE FROM public_points WHERE jurisdiction_id = ?", (session.jurisdiction_id,))


def placed(
    session: Session,
    table: str,
    ids: Sequence[object] | np.ndarray,
    codes: Sequence[object] | np.ndarray,
    lon: Sequence[object] | np.ndarray,
    lat: Sequence[object] | np.ndarray,
) -> None:
    """Store the public point of rows just inserted (their public columns are NULL):
    only the blurred ones are written, found in one vector operation (a bulk insert's
    columns come as arrays; a city without blurring costs nothing)."""
    _table(table)
    placement = session.placement
    if placement is None:
        _forget(session)
        return
    if not placement.services:
        return
    service = np.asarray(codes, dtype=object)
    blurred = np.isin(service, list(placement.services))
    if not blurred.any():
        return
    px, py = placement.public(
        service[blurred],
        np.asarray(lon, dtype=float)[blurred],
        np.asarray(lat, dtype=float)[blurred],
    )
    kept = np.asarray(ids)[blurred].astype(np.int64).tolist()
    _write(session, table, kept, px.tolist(), py.tolist())


def replaced(session: Session, table: str, ids: Sequence[int]) -> None:
    """Recompute the public point of rows that moved or changed service (a row no longer
    blurred gets NULL: its exact point)."""
    _table(table)
    placement = session.placement
    if placement is None:
        _forget(session)
        return
    if not ids or not placement.services:
        return  # a city without blurring: the start left every public point NULL
    d = session.dialect
    rows = session.run(
        f"SELECT id, service_code, lon, lat, public_lon FROM {table} "
        f"WHERE jurisdiction_id = ? AND {d.in_array('id', 'bigint')}",
        (session.jurisdiction_id, d.array([int(i) for i in ids])),
    ).fetchall()
    place_all(session, table, placement, rows)


def place_all(
    session: Session, table: str, placement: Placement, rows: Sequence[Sequence[object]]
) -> None:
    """Rows (id, service_code, lon, lat, public_lon) given their right public point:
    computed for the blurred ones, NULL for the others that had one."""
    blurred = [r for r in rows if r[1] in placement.services]
    cleared = [
        int(cast(int, r[0])) for r in rows if r[1] not in placement.services and r[4] is not None
    ]
    _write(session, table, cleared, [None] * len(cleared), [None] * len(cleared))
    if not blurred:
        return
    px, py = placement.public(
        np.array([r[1] for r in blurred], dtype=object),
        np.array([r[2] for r in blurred], dtype=float),
        np.array([r[3] for r in blurred], dtype=float),
    )
    _write(session, table, [int(cast(int, r[0])) for r in blurred], px.tolist(), py.tolist())
