"""The PostGIS pool checks a connection only after it sat idle (``IdleCheck``).

A read on a connection whose server process died a moment ago is retried on another
(``_retrying``), so skipping the check costs a read nothing; a connection idle longer
than ``IDLE_CHECK_S`` is checked before it is lent, so a write after a quiet spell never
meets a dead one. Reads run without a transaction (autocommit): none is left open.
"""

from __future__ import annotations

import time

import psycopg
import pytest

from voirie.store.postgis import IDLE_CHECK_S, PostgisStore

pytestmark = pytest.mark.postgis


def _kill_pooled(store: PostgisStore, killer: psycopg.Connection[tuple[object, ...]]) -> None:
    """Terminate the server process of the pool's only connection (left in the pool)."""
    ((pid,),) = store.rows("SELECT pg_backend_pid()", ())
    killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(0.2)  # the server process is gone, the pool does not know yet


def test_a_read_on_a_fresh_dead_connection_is_retried(postgis_url: str) -> None:
    store = PostgisStore(postgis_url, min_size=1, max_size=1)
    try:
        with psycopg.connect(postgis_url, autocommit=True) as killer:
            _kill_pooled(store, killer)
            assert store.rows("SELECT 1", ()) == [(1,)]
    finally:
        store.close()


def test_a_connection_idle_past_the_limit_is_checked_before_a_write(postgis_url: str) -> None:
    store = PostgisStore(postgis_url, min_size=1, max_size=1)
    try:
        with psycopg.connect(postgis_url, autocommit=True) as killer:
            _kill_pooled(store, killer)
            time.sleep(IDLE_CHECK_S + 0.2)
            with store.transaction("75") as uow:  # the check replaced the dead one
                assert uow.session.conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        store.close()


def test_a_read_leaves_no_transaction_open(postgis_url: str) -> None:
    store = PostgisStore(postgis_url, min_size=1, max_size=1)
    try:
        store.rows("SELECT 1", ())
        with store.pool.connection() as conn:
            assert conn.autocommit
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    finally:
        store.close()
