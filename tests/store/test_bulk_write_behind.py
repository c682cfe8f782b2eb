"""What the PostGIS bulk inserts owe their caller while the writer thread sends them
(``PostgisSession.insert_frame``): the caller may change its frame as soon as the insert
returns, and a small insert made while others are being sent is stored after them; and
``PostgisStore.analyze`` reaches every table."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from databases import opened_postgis
from eventrows import events

from voirie.store.postgis import WRITE_BEHIND_ROWS, PostgisStore
from voirie.store.schema import COLUMNS

J = "paris.fr"
pytestmark = pytest.mark.postgis


@pytest.fixture
def store(postgis_url: str) -> Iterator[PostgisStore]:
    yield from opened_postgis(postgis_url, pool_max_size=4)


def test_a_frame_changed_after_its_insert_returns_is_stored_as_it_was(
    store: PostgisStore, postgis_url: str
) -> None:
    many = 20 * WRITE_BEHIND_ROWS  # sent behind, and long enough to send
    with store.transaction(J) as uow:
        rows = events(uow.tables.reserve_ids("events", many), "as inserted")
        uow.tables.insert("events", rows)
        rows["reason"] = "changed afterwards"
        rows["id"] = rows["id"] + 10**9
    with psycopg.connect(postgis_url) as conn:
        stored = conn.execute("SELECT reason, count(*), max(id) FROM events GROUP BY 1").fetchall()
    assert [(reason, count) for reason, count, _ in stored] == [("as inserted", many)]
    assert stored[0][2] < 10**9


def test_a_small_insert_made_while_others_are_sent_is_stored_after_them(
    store: PostgisStore, postgis_url: str
) -> None:
    many = 20 * WRITE_BEHIND_ROWS
    with store.transaction(J) as uow:
        ids = uow.tables.reserve_ids("events", many + 1)
        uow.tables.insert("events", events(ids[:many], "bulk"))
        uow.tables.insert("events", events(ids[many:], "small"))
    with psycopg.connect(postgis_url) as conn:
        # Rows of one transaction are appended in the order they were stored (a fresh
        # table: no free space to reuse), so the small insert's row is the last one.
        order = [reason for (reason,) in conn.execute("SELECT reason FROM events ORDER BY ctid")]
    assert order == ["bulk"] * many + ["small"]


def test_analyze_reaches_every_table(store: PostgisStore, postgis_url: str) -> None:
    with store.transaction(J) as uow:
        uow.tables.insert("events", events(uow.tables.reserve_ids("events", 3), "few"))
    store.analyze()
    with psycopg.connect(postgis_url) as conn:
        # Never analyzed, reltuples is -1 (PostgreSQL 14 and later).
        tuples: dict[str, float] = dict(
            conn.execute(
                "SELECT relname, reltuples FROM pg_class WHERE relname = ANY(%s)", (list(COLUMNS),)
            ).fetchall()
        )
    assert sorted(tuples) == sorted(COLUMNS)
    assert tuples["events"] == 3
    assert all(count >= 0 for count in tuples.values())
