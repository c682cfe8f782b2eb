"""The bulk path's overlap of client and server work (issue 14 items 1-2).

On PostGIS a unit of work sends its bulk inserts (``postgis.WRITE_BEHIND_ROWS`` rows or
more) from a writer thread while the import builds the next rows. What must hold: an
import stores exactly what it stores with every insert sent at once; a statement after
an insert sees its rows; an insert that fails, or an error of the caller while inserts
are being sent, leaves nothing of the transaction and a usable connection. Also here:
binary COPY with its text fallback, ids reserved in one statement, and statistics of a
few tables (what an import refreshes while it loads).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from databases import scratch_database
from datafiles import PARIS_REPORTS
from eventrows import events

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.services.pipeline import Pipeline
from voirie.settings import StoreSettings
from voirie.store import Store, open_store
from voirie.store import postgis as postgis_module
from voirie.store.postgis import WRITE_BEHIND_ROWS, PostgisStore
from voirie.store.sqlite import SqliteStore
from voirie.store.statements.unit import SqlUnitOfWork

ROWS = 2_400
BATCH = 1_200
"""Batches large enough for every table of reports to be sent behind."""
WALL_CLOCK = ["received_at", "updated_at", "linked_at", "assigned_at"]
J = "paris.fr"
EVENTS = 2 * WRITE_BEHIND_ROWS


def _count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


@contextmanager
def _postgis(server: str) -> Iterator[tuple[str, PostgisStore]]:
    with ExitStack() as stack:
        url = stack.enter_context(contextmanager(scratch_database)(server))
        store = open_store(StoreSettings(database_url=url, pool_min_size=1, pool_max_size=2))
        stack.callback(store.close)
        store.upgrade()
        assert isinstance(store, PostgisStore)
        yield url, store


@pytest.fixture
def pg(postgis_server: str) -> Iterator[tuple[str, PostgisStore]]:
    """A fresh upgraded PostGIS store and its URL."""
    with _postgis(postgis_server) as opened:
        yield opened


def _layers(pipeline: Pipeline) -> list[pd.DataFrame]:
    """The report and incident layers, without the instants of the import itself."""
    return [
        pd.DataFrame(layer.drop(columns=["geometry", *WALL_CLOCK], errors="ignore")).sort_values(
            key, ignore_index=True
        )
        for layer, key in (
            (pipeline.reads.reports(), "report_id"),
            (pipeline.reads.incidents(), "incident_id"),
        )
    ]


@pytest.mark.postgis
@pytest.mark.slow
def test_inserts_sent_behind_store_what_inserts_sent_at_once(
    postgis_server: str,
    paris: City,
    paris_gis: CityGIS,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "reports.csv"
    pd.read_csv(PARIS_REPORTS, dtype=str, keep_default_na=False).iloc[:ROWS].to_csv(
        path, index=False
    )
    table = read_csv(path)
    with _postgis(postgis_server) as (_, at_once), _postgis(postgis_server) as (_, behind):
        with monkeypatch.context() as patched:
            patched.setattr(postgis_module, "WRITE_BEHIND_ROWS", 10**9)  # every insert at once
            one = Pipeline(paris, at_once, paris_gis)
            first = one.imports.import_table(table, DANSMARUE, batch_size=BATCH)
        other = Pipeline(paris, behind, paris_gis)
        second = other.imports.import_table(table, DANSMARUE, batch_size=BATCH)
        counts = ("read", "imported", "new_incidents", "attached_in_batch", "already_imported")
        assert [getattr(second, c) for c in counts] == [getattr(first, c) for c in counts]
        assert first.imported > 0.9 * ROWS
        assert first.attached_in_batch > 0
        for mine, theirs in zip(_layers(other), _layers(one), strict=True):
            pd.testing.assert_frame_equal(mine, theirs)
        again = other.imports.import_table(table, DANSMARUE, batch_size=BATCH)
        assert (again.imported, again.already_imported) == (0, first.imported)


@pytest.mark.postgis
def test_a_statement_after_an_insert_sent_behind_sees_its_rows(
    pg: tuple[str, PostgisStore],
) -> None:
    url, store = pg
    many = 20 * EVENTS  # long enough to convert that the read would come first
    with store.transaction(J) as uow:
        uow.tables.insert("events", events(uow.tables.reserve_ids("events", many)))
        assert isinstance(uow, SqlUnitOfWork)
        seen = uow.reports.known("app", ["nothing"])  # any statement: waits for the insert
        (count,) = uow.session.run("SELECT count(*) FROM events").fetchone()
    assert seen.empty
    assert count == many
    assert _count(url, "events") == many


def _insert_twice(store: PostgisStore) -> None:
    """Two bulk inserts of the same ids, then a third one queued after the failure."""
    with store.transaction(J) as uow:
        ids = uow.tables.reserve_ids("events", EVENTS)
        uow.tables.insert("events", events(ids))
        uow.tables.insert("events", events(ids))  # fails in the writer thread
        uow.tables.insert("events", events(ids + 10**6))


@pytest.mark.postgis
def test_an_insert_failing_behind_leaves_nothing_of_its_transaction(
    pg: tuple[str, PostgisStore],
) -> None:
    url, store = pg
    with pytest.raises(psycopg.errors.UniqueViolation):
        _insert_twice(store)
    assert _count(url, "events") == 0
    with store.transaction(J) as uow:  # the connection went back to the pool usable
        uow.tables.insert("events", events(uow.tables.reserve_ids("events", EVENTS)))
    assert _count(url, "events") == EVENTS


def _fail_while_sending(store: PostgisStore) -> None:
    """A bulk insert sent behind, then an error of the caller's own."""
    with store.transaction(J) as uow:
        uow.tables.insert("events", events(uow.tables.reserve_ids("events", EVENTS)))
        raise RuntimeError("the caller's own error, not the insert's")


@pytest.mark.postgis
def test_an_error_while_inserts_are_sent_rolls_them_back(
    pg: tuple[str, PostgisStore],
) -> None:
    url, store = pg
    with pytest.raises(RuntimeError, match="the caller's"):
        _fail_while_sending(store)
    assert _count(url, "events") == 0


@pytest.mark.postgis
def test_a_value_a_binary_copy_cannot_take_is_sent_as_text(
    pg: tuple[str, PostgisStore],
) -> None:
    url, store = pg
    with store.transaction(J) as uow:
        ids = uow.tables.reserve_ids("events", 3)
        uow.tables.insert("events", events(ids, reason=[7, "x", None]))  # text column
    with psycopg.connect(url) as conn:
        reasons = [r for (r,) in conn.execute("SELECT reason FROM events ORDER BY id")]
    assert reasons == ["7", "x", None]


@pytest.mark.postgis
def test_ids_are_reserved_at_once_unique_and_in_order(pg: tuple[str, PostgisStore]) -> None:
    _, store = pg
    with store.transaction(J) as uow:
        first = uow.tables.reserve_ids("events", 20_000)
        second = uow.tables.reserve_ids("events", 5)
    assert first.dtype == np.int64
    assert len(np.unique(first)) == 20_000
    assert (np.diff(first) > 0).all()
    assert second.min() > first.max()


def test_statistics_of_a_few_tables(store: Store, store_url: str) -> None:
    """What an import refreshes while it loads: the tables named, not the others."""
    with store.transaction(J) as uow:
        uow.tables.insert("events", events(uow.tables.reserve_ids("events", 10)))
    store.analyze(["events"])
    if isinstance(store, SqliteStore):
        rows = store.conn.execute("SELECT DISTINCT tbl FROM sqlite_stat1").fetchall()
        assert [t for (t,) in rows] == ["events"]
    else:
        with psycopg.connect(store_url) as conn:
            # Never analyzed, reltuples is -1; analyzed, the row count.
            tuples: dict[str, float] = dict(
                conn.execute(
                    "SELECT relname, reltuples FROM pg_class WHERE relname IN ('events', 'reports')"
                ).fetchall()
            )
        assert tuples == {"events": 10, "reports": -1}
    with pytest.raises(KeyError, match="not a table"):
        store.analyze(["events; DROP TABLE reports"])
