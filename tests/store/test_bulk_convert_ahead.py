"""The PostGIS bulk path's work around its COPYs: a bulk insert's binary stream is built by
the caller before the writer thread sends it (so the server never waits between two
COPYs for a stream to be built), the column types come from one catalogue read per
store, and ``analyze`` shares the tables between connections, the largest first."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pandas as pd
import psycopg
import pytest
from databases import opened_postgis
from eventrows import events

from voirie.store import postgis
from voirie.store.postgis import WRITE_BEHIND_ROWS, PostgisStore, _shares

J = "paris.fr"


@pytest.fixture
def store(postgis_url: str) -> Iterator[PostgisStore]:
    yield from opened_postgis(postgis_url, pool_max_size=4)


@pytest.mark.postgis
def test_bulk_streams_are_built_by_the_caller_and_stored(
    store: PostgisStore, postgis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[tuple[str, int, str]] = []
    real = postgis._binary_stream

    def spied(table: str, frame: pd.DataFrame, types: dict[str, str]) -> bytes | None:
        built.append((table, len(frame), threading.current_thread().name))
        return real(table, frame, types)

    monkeypatch.setattr(postgis, "_binary_stream", spied)
    many = 4 * WRITE_BEHIND_ROWS
    with store.transaction(J) as uow:
        ids = uow.tables.reserve_ids("events", 3 * many)
        for part in range(3):
            uow.tables.insert("events", events(ids[part * many : (part + 1) * many], f"p{part}"))
    assert built == [("events", many, threading.current_thread().name)] * 3
    with psycopg.connect(postgis_url) as conn:
        stored = conn.execute("SELECT reason, count(*) FROM events GROUP BY 1 ORDER BY 1")
        assert stored.fetchall() == [("p0", many), ("p1", many), ("p2", many)]


@pytest.mark.postgis
def test_column_types_read_once_for_every_table(store: PostgisStore) -> None:
    with store.transaction(J) as uow:
        uow.tables.insert("events", events(uow.tables.reserve_ids("events", 2), "first"))
    read = store._types
    assert read["events"]["at"] == "timestamp with time zone"
    assert read["reports"]["lon"] == "double precision"
    with store.transaction(J) as uow:
        uow.tables.insert("events", events(uow.tables.reserve_ids("events", 2), "again"))
    assert store._types is read  # not read again


def test_tables_shared_largest_first_into_balanced_groups() -> None:
    sizes = {"reports": 90, "events": 70, "incidents": 60, "zones": 30, "empty": 0, "none": 0}
    groups = _shares(sizes, 2)
    assert groups == [["reports", "zones", "empty", "none"], ["events", "incidents"]]
    assert _shares({"reports": 5}, 2) == [["reports"]]
    assert sorted(t for g in _shares(sizes, 3) for t in g) == sorted(sizes)
