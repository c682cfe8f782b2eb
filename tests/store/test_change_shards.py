"""Migration 0023: a city's change counter in shards (issue 20). Two transactions that
write one city commit without waiting for each other on its counter (with one row per
city, the second commit waited for the first one's row lock until the first ended), and
the city's version still grows by one per commit."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from voirie.settings import StoreSettings
from voirie.store import open_store

J = "paris.fr"
SHARDS = 16
pytestmark = pytest.mark.postgis


def _connections(url: str) -> Iterator[psycopg.Connection]:
    """Connections whose server processes count on different shards (pid modulo 16)."""
    seen: set[int] = set()
    while True:
        conn = psycopg.connect(url)
        shard = conn.info.backend_pid % SHARDS
        if shard in seen:
            conn.close()
            continue
        seen.add(shard)
        yield conn


def test_two_writers_of_one_city_commit_without_waiting_on_its_counter(postgis_url: str) -> None:
    store = open_store(StoreSettings(database_url=postgis_url, pool_min_size=1, pool_max_size=2))
    try:
        with psycopg.connect(postgis_url, autocommit=True) as admin:
            # A table of the city's rows counted as voirie's tables are (migration 0011).
            admin.execute("CREATE TABLE city_rows (jurisdiction_id text NOT NULL)")
            admin.execute(
                "CREATE CONSTRAINT TRIGGER city_rows_change AFTER INSERT ON city_rows"
                " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
                " EXECUTE FUNCTION voirie_count_change()"
            )
        before = store.change_mark(J)
        connections = _connections(postgis_url)
        first, second = next(connections), next(connections)
        try:
            first.execute("INSERT INTO city_rows VALUES (%s)", (J,))
            first.execute("SET CONSTRAINTS ALL IMMEDIATE")  # counted now: its shard's row locked
            second.execute("SET lock_timeout = '5s'")
            second.execute("INSERT INTO city_rows VALUES (%s)", (J,))
            second.commit()  # counted at its commit, on another shard: no wait
            assert store.change_mark(J).version == before.version + 1
            first.commit()
        finally:
            first.close()
            second.close()
        after = store.change_mark(J)
        assert after.version == before.version + 2
        assert after.changed_at >= before.changed_at
    finally:
        store.close()
