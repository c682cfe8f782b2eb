"""The per-report write path's fewer round trips keep the store's guarantees (issue 20).

``prefetch_ids`` reserves several tables' ids in one statement: ``reserve_ids`` then hands
them out, fresh (on PostGIS never drawn by another transaction), increasing, and falls back to the
sequence once they run out. ``pipelined`` sends a unit of work's statements together: a
read inside it sees the writes queued before it, and an error anywhere rolls the whole
transaction back, as without a pipeline. On each backend (sqlite has no round trips to
save: the same calls, reserved on demand).
"""

from __future__ import annotations

import pytest
from eventrows import event, reasons

from voirie.store import Store

JURISDICTION = "paris.fr"


def test_prefetched_ids_are_fresh_and_handed_out_in_order(store: Store) -> None:
    with store.transaction(JURISDICTION) as uow:
        before = int(uow.tables.reserve_ids("events", 1)[0])
        uow.tables.prefetch_ids({"events": 3, "outbox": 2, "incidents": 0})
        first = uow.tables.reserve_ids("events", 2).tolist()
        second = uow.tables.reserve_ids("events", 1).tolist()
        beyond = uow.tables.reserve_ids("events", 2).tolist()  # more than prefetched
        outbox = uow.tables.reserve_ids("outbox", 2).tolist()
    drawn = [before, *first, *second, *beyond]
    assert drawn == sorted(drawn)
    assert len(set(drawn)) == len(drawn)
    assert len(set(outbox)) == 2
    if store.backend == "postgis":  # sqlite reserves after the stored maximum, under its lock
        with store.transaction(JURISDICTION) as uow:  # sequences never hand them out again
            later = uow.tables.reserve_ids("events", 5).tolist()
        assert not set(later) & set(drawn)


def test_prefetch_refuses_a_table_without_ids(store: Store) -> None:
    with store.transaction(JURISDICTION) as uow, pytest.raises(KeyError, match="report_zones"):
        uow.tables.prefetch_ids({"report_zones": 1})


def test_a_pipelined_read_sees_the_writes_queued_before_it(store: Store) -> None:
    with store.transaction(JURISDICTION) as uow, uow.pipelined():
        (event_id,) = uow.tables.reserve_ids("events", 1).tolist()
        uow.tables.insert_rows("events", [event(event_id, "queued")])
        read = uow.session.run("SELECT reason FROM events WHERE id = ?", (event_id,)).fetchone()
    assert read is not None
    assert read[0] == "queued"
    assert reasons(store, [event_id]) == ["queued"]


def _write_twice(store: Store, ids: list[int]) -> None:
    """Two new events, then the first id again (refused by the primary key), pipelined."""
    with store.transaction(JURISDICTION) as uow, uow.pipelined():
        uow.tables.insert_rows("events", [event(ids[0], "first")])
        uow.tables.insert_rows("events", [event(ids[1], "second")])
        uow.tables.insert_rows("events", [event(ids[0], "the same id again")])


def test_an_error_in_a_pipeline_rolls_back_every_write(store: Store) -> None:
    with store.transaction(JURISDICTION) as uow:
        ids = uow.tables.reserve_ids("events", 2).tolist()
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):  # sqlite3 or psycopg error
        _write_twice(store, ids)
    assert reasons(store, ids) == []
