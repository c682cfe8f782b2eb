"""A POST's rows of every table in one statement (``Tables.gathering``, issue 20) store what
``insert_rows`` stores, row by row.

The same rows of three tables that refer to each other (a report, its enrichment, its
event) go once through ``insert_rows`` and once inside ``Tables.gathering``; read back, every
column (the point included) is equal. Values cover what the pipeline writes and what
JSON cannot say as it is: aware, naive and pandas instants, flags, NaN, infinities and
None, numpy scalars, text with quotes. On PostGIS the gathered rows are sent when the
block ends (a read inside it does not see them yet); sqlite writes them as they come.
"""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from voirie.store import Store
from voirie.store.postgis import PostgisStore
from voirie.store.schema import COLUMNS

JURISDICTION = "paris.fr"
PARIS_SUMMER = timezone(timedelta(hours=2))

REPORT = {
    "jurisdiction_id": JURISDICTION,
    "source": "app",
    "service_code": "S1",
    "description": 'l\'encombrant « devant » le 3 "bis" \\ {}',
    "address": None,
    "channel": "app",
    "media_url": None,
    "lon": 2.3522219,
    "lat": 48.856614,
    "requested_at": datetime(2024, 3, 31, 2, 30, 15, 123456, tzinfo=PARIS_SUMMER),
    "received_at": pd.Timestamp("2024-03-31T00:31:00.000001", tz="UTC"),
    "content_hash": "abc",
}
ENRICHMENT = {
    "jurisdiction_id": JURISDICTION,
    "segment_id": "w1-0",
    "street_name": "Rue de Rivoli",
    "snap_distance_m": np.float64(3.25),
    "position_m": float("nan"),
    "side": "left",
    "snap_lon": float("inf"),
    "snap_lat": -float("inf"),
    "snap_method": "nearest",
    "boundary_distance_m": None,
    "off_network": np.bool_(False),
    "outside_territory": 0,
    "near_boundary": True,
}
EVENT = {
    "jurisdiction_id": JURISDICTION,
    "entity": "report",
    "kind": "received",
    "actor": "voirie",
    "reason": None,
    "at": datetime(2024, 1, 1, 12),  # naive: UTC
}


def _write(store: Store, report_id: int, event_id: int, gather: bool) -> None:
    """The report, its enrichment and its event, the event first (foreign keys are
    checked at the end of the gathered statement)."""
    with (
        store.transaction(JURISDICTION) as uow,
        uow.tables.gathering() if gather else nullcontext(),
    ):
        uow.tables.insert_rows("events", [{**EVENT, "id": event_id, "entity_id": report_id}])
        uow.tables.insert_rows(
            "reports", [{**REPORT, "id": report_id, "external_id": f"r-{report_id}"}]
        )
        uow.tables.insert_rows("enrichments", [{**ENRICHMENT, "report_id": report_id}])


def _stored(store: Store, table: str, key: str, value: int) -> tuple[object, ...]:
    """One stored row, its columns in schema order without the keys, then its point."""
    names = [n for n in COLUMNS[table] if n not in (key, "external_id", "entity_id")]
    point = ""
    if table == "reports":
        point = ", ST_AsEWKT(geom)" if isinstance(store, PostgisStore) else ", hex(geom)"
    mark = "%s" if isinstance(store, PostgisStore) else "?"
    with store.transaction(JURISDICTION) as uow:
        conn = uow.session.conn  # type: ignore[attr-defined]
        row = conn.execute(
            f"SELECT {', '.join(names)}{point} FROM {table} WHERE {key} = {mark}", (value,)
        ).fetchone()
    assert row is not None, f"{table} {value}: not stored"
    return tuple(row)


def test_gathered_rows_are_stored_as_insert_rows_stores_them(store: Store) -> None:
    with store.transaction(JURISDICTION) as uow:
        plain_event, gathered_event = uow.tables.reserve_ids("events", 2).tolist()
    _write(store, 1, plain_event, gather=False)
    _write(store, 2, gathered_event, gather=True)
    for table, key, ids in (
        ("reports", "id", (1, 2)),
        ("enrichments", "report_id", (1, 2)),
        ("events", "id", (plain_event, gathered_event)),
    ):
        plain, held = (_stored(store, table, key, value) for value in ids)
        assert held == plain, table
    enrichment = _stored(store, "enrichments", "report_id", 2)
    assert None in enrichment  # NaN and None stay NULL
    assert float("inf") in enrichment
    assert -float("inf") in enrichment


def test_a_gathered_block_sends_its_rows_when_it_ends(store: Store) -> None:
    with store.transaction(JURISDICTION) as uow:
        (event_id,) = uow.tables.reserve_ids("events", 1).tolist()
        with uow.tables.gathering():
            uow.tables.insert_rows("events", [{**EVENT, "id": event_id, "entity_id": 1}])
            inside = uow.session.run("SELECT count(*) FROM events WHERE id = ?", (event_id,))
            seen_inside = inside.fetchone()[0]
        after = uow.session.run("SELECT count(*) FROM events WHERE id = ?", (event_id,))
        seen_after = after.fetchone()[0]
    assert seen_inside == (0 if store.backend == "postgis" else 1)
    assert seen_after == 1


def _write_events(store: Store, ids: list[int]) -> None:
    with store.transaction(JURISDICTION) as uow, uow.tables.gathering():
        for event_id in ids:
            uow.tables.insert_rows("events", [{**EVENT, "id": event_id, "entity_id": 1}])


def test_a_failing_gathered_statement_rolls_every_row_back(store: Store) -> None:
    with store.transaction(JURISDICTION) as uow:
        ids = uow.tables.reserve_ids("events", 2).tolist()
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):  # sqlite3 or psycopg error
        _write_events(store, [*ids, ids[0]])  # the first id twice: refused by the primary key
    rows = store.rows(f"SELECT id FROM events WHERE id IN ({ids[0]}, {ids[1]})", ())
    assert rows == []


def test_a_bulk_insert_inside_a_gathered_block_is_refused(store: Store) -> None:
    """Its rows would go before those held; sqlite holds none: written as they come."""
    with store.transaction(JURISDICTION) as uow:
        (event_id,) = uow.tables.reserve_ids("events", 1).tolist()
        frame = pd.DataFrame([{**EVENT, "id": event_id, "entity_id": 1}])
        with uow.tables.gathering():
            if store.backend == "postgis":
                with pytest.raises(RuntimeError, match="gathering"):
                    uow.tables.insert("events", frame)
            else:
                uow.tables.insert("events", frame)
    stored = store.rows(f"SELECT id FROM events WHERE id = {event_id}", ())
    assert len(stored) == (0 if store.backend == "postgis" else 1)
