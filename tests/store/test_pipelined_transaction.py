"""A transaction pipelined from its BEGIN to its COMMIT keeps a transaction's guarantees.

``Store.transaction(..., pipelined=True)`` (the per-report path, issue 20) sends BEGIN
with the first statements and COMMIT with the last on PostGIS
(``voirie.store.pipelined``): its rows are stored once it ends, a read in it sees the
writes sent before it, and a failing statement or an error raised in the block stores
nothing, whichever comes first; the connection goes back to the pool as it came (no
transaction left open, autocommit). On each backend (sqlite: the same calls, nothing
pipelined). The round trips of a POST are pinned in ``tests/api/test_open311_post_key.py``.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from eventrows import event, reasons
from psycopg.pq import TransactionStatus

from voirie.store import Store
from voirie.store.pipelined import pipelined_transaction
from voirie.store.postgis import PostgisStore

JURISDICTION = "paris.fr"


class Refused(Exception):
    """An error raised in the block once its writes are sent (as a refusal would be)."""


def _ids(store: Store, n: int) -> list[int]:
    with store.transaction(JURISDICTION) as uow:
        return [int(i) for i in uow.tables.reserve_ids("events", n)]


def _pooled_as_they_came(store: Store) -> None:
    """The pooled connection idle, outside a transaction, in autocommit (PostGIS)."""
    if not isinstance(store, PostgisStore):
        return
    with store.pool.connection() as conn:
        assert conn.autocommit
        assert conn.info.transaction_status == TransactionStatus.IDLE
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_pipelined_transaction_stores_its_rows_and_reads_them(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    ids = _ids(store, 2)
    with store.transaction(JURISDICTION, pipelined=True) as uow:
        uow.tables.insert_rows("events", [event(ids[0], "first")])
        read = uow.session.run("SELECT reason FROM events WHERE id = ?", (ids[0],)).fetchone()
        assert read is not None
        assert read[0] == "first"
        uow.tables.insert_rows("events", [event(ids[1], "second")])
        with uow.pipelined():  # already pipelined: changes nothing
            uow.tables.insert_rows("events", [event(ids[1] + 10**9, "third")])
    assert reasons(store, [ids[0], ids[1], ids[1] + 10**9]) == ["first", "second", "third"]
    _pooled_as_they_came(store)


def _write_twice(store: Store, ids: list[int]) -> None:
    """Two new events, then the first id again (refused by the primary key), pipelined."""
    with store.transaction(JURISDICTION, pipelined=True) as uow:
        uow.tables.insert_rows("events", [event(ids[0], "first")])
        uow.tables.insert_rows("events", [event(ids[1], "second")])
        uow.tables.insert_rows("events", [event(ids[0], "the same id again")])


def test_a_failing_statement_stores_nothing(store: Store) -> None:
    ids = _ids(store, 2)
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):  # sqlite3 or psycopg error
        _write_twice(store, ids)
    assert reasons(store, ids) == []
    _pooled_as_they_came(store)


def _refused_after_writing(store: Store, event_id: int) -> None:
    """An event written, sent, then the block refused."""
    with store.transaction(JURISDICTION, pipelined=True) as uow:
        uow.tables.insert_rows("events", [event(event_id, "sent")])
        uow.session.run("SELECT 1").fetchone()  # the write has reached the server
        raise Refused


def test_an_error_raised_in_the_block_stores_nothing(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    ids = _ids(store, 1)
    with pytest.raises(Refused):
        _refused_after_writing(store, ids[0])
    assert reasons(store, ids) == []
    _pooled_as_they_came(store)
    # The connection serves the next transaction.
    with store.transaction(JURISDICTION, pipelined=True) as uow:
        uow.tables.insert_rows("events", [event(ids[0], "again")])
    assert reasons(store, ids) == ["again"]


def _failing_block(conn: psycopg.Connection[Any], fail: str) -> None:
    """A row inserted in a pipelined transaction, then a failing statement or an error."""
    with pipelined_transaction(conn):
        conn.execute("INSERT INTO t VALUES (1)")
        if fail == "statement":
            conn.execute("INSERT INTO t VALUES (1)")
        else:
            conn.execute("SELECT 1").fetchone()
            raise Refused


@pytest.mark.parametrize("fail", ["statement", "error"])
def test_pipelined_transaction_ends_its_transaction_itself(postgis_url: str, fail: str) -> None:
    # A bare connection (no pool to roll back what it is given back).
    with psycopg.connect(postgis_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (x integer PRIMARY KEY)")
        with pytest.raises((Refused, psycopg.errors.UniqueViolation)):
            _failing_block(conn, fail)
        assert conn.info.transaction_status == TransactionStatus.IDLE
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
        with pipelined_transaction(conn):
            conn.execute("INSERT INTO t VALUES (2)")
        assert conn.info.transaction_status == TransactionStatus.IDLE
        assert conn.execute("SELECT x FROM t").fetchall() == [(2,)]


def test_pipelined_transaction_needs_an_autocommit_connection(postgis_url: str) -> None:
    with (
        psycopg.connect(postgis_url) as conn,
        pytest.raises(ValueError, match="autocommit"),
        pipelined_transaction(conn),
    ):
        pass
