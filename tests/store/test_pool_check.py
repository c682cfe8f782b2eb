"""The PostGIS pool checks a connection only after it sat idle (``IdleCheck``).

A read on a connection whose server process died a moment ago is retried on another
(``_retrying``), so skipping the check costs a read nothing; a connection idle longer
than ``IDLE_CHECK_S`` is checked before it is lent, so a write after a quiet spell never
meets a dead one. Reads run without a transaction (autocommit): none is left open.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import psycopg
import pytest
from databases import allow_connections

from voirie.store.postgis import IDLE_CHECK_S, RECONNECT_TIMEOUT_S, PostgisStore

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


def test_a_read_waiting_while_reconnection_gives_up_is_served_when_the_database_is_back(
    postgis_server: str, postgis_url: str
) -> None:
    """A full pool whose connections were all lost replaces them in the background (1, 2 s
    apart, giving up after ``RECONNECT_TIMEOUT_S``). A read that queued meanwhile must get
    a connection once the database is back: psycopg_pool lowers its count when an attempt
    gives up but grows again only for a request arriving later, so without
    ``serve_waiters`` the queued read waited out its whole timeout with the database up."""
    database = urlsplit(postgis_url).path.lstrip("/")
    store = PostgisStore(postgis_url, min_size=2, max_size=2, pool_timeout_s=20.0)
    try:
        store.rows("SELECT 1", ())
        allow_connections(postgis_server, database, allowed=False)
        try:
            store.pool.check()  # the lost connections' replacements start, and fail
            with ThreadPoolExecutor(1) as reader:
                waiting = reader.submit(store.rows, "SELECT 1", ())
                time.sleep(RECONNECT_TIMEOUT_S + 1.5)  # every replacement gave up
                allow_connections(postgis_server, database, allowed=True)
                assert waiting.result() == [(1,)]
        finally:
            allow_connections(postgis_server, database, allowed=True)
    finally:
        store.close()


def test_a_full_pool_whose_idle_connections_were_all_lost_serves_the_next_read(
    postgis_url: str,
) -> None:
    """A served store's pool is full (``fill_pool``). After a restart every idle connection
    is dead; psycopg_pool checks them one per attempt, 1 and 2 s apart, so the first read
    would meet its pool timeout (a 503 with the database up). The first failed check
    checks every idle connection at once: the read waits for one replacement."""
    store = PostgisStore(postgis_url, min_size=8, max_size=8)
    try:
        store.pool.wait()
        with psycopg.connect(postgis_url, autocommit=True) as killer:
            killer.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            time.sleep(IDLE_CHECK_S + 0.2)  # every pooled connection is checked
            assert store.rows("SELECT 1", ()) == [(1,)]
    finally:
        store.close()
