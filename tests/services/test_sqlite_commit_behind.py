"""The sqlite import commits each batch on a thread while the next batch is merged
(``Importer._store_serially``): the commit is made on the connection that began the
transaction, whichever thread closes it, and the next batch begins only once it is done,
so the batches are written one after the other as before."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from datafiles import PARIS_REPORTS

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import RawTable, read_csv
from voirie.services.pipeline import Pipeline
from voirie.store.sqlite import SqliteStore

J = "paris.fr"
NOW = datetime(2026, 12, 7, tzinfo=UTC)


def test_a_transaction_closed_on_another_thread_commits_its_own_connection(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "store.gpkg")
    store.upgrade()
    try:
        with ExitStack() as opened:
            uow = opened.enter_context(store.transaction(J))
            event = {"id": 1, "jurisdiction_id": J, "entity": "report", "entity_id": 1}
            uow.tables.insert_rows(
                "events", [{**event, "kind": "received", "actor": "t", "at": NOW}]
            )
            behind = opened.pop_all()
        with ThreadPoolExecutor(max_workers=1) as committer:
            committer.submit(behind.close).result()
        with sqlite3.connect(store.path) as reader:  # another connection: committed rows only
            assert reader.execute("SELECT kind FROM events").fetchall() == [("received",)]
        assert store.conn.in_transaction is False
    finally:
        store.close()


def test_each_batch_commits_on_the_commit_thread_before_the_next_begins(
    tmp_path: Path, paris: City, paris_gis: CityGIS
) -> None:
    store = SqliteStore(tmp_path / "store.gpkg")
    store.upgrade()
    statements: list[tuple[str, str]] = []

    def traced(statement: str) -> None:
        if statement in ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"):
            statements.append((statement, threading.current_thread().name))

    try:
        store.conn.set_trace_callback(traced)  # the main thread's: the import's writes
        raw = read_csv(PARIS_REPORTS)
        summary = Pipeline(paris, store, paris_gis).imports.import_table(
            RawTable(raw.rows.iloc[:900], raw.columns), DANSMARUE, batch_size=300
        )
        stored = store.conn.execute("SELECT count(*) FROM reports").fetchone()
    finally:
        store.close()
    assert summary.imported == stored[0] == 900
    batches = [s for s in statements if s[1] != "MainThread" or s[0] == "BEGIN IMMEDIATE"]
    # The rule versions' transaction first (committed at once), then three batches, each
    # begun on the main thread and committed on the commit thread before the next begins.
    assert [s for s, _ in batches[-6:]] == ["BEGIN IMMEDIATE", "COMMIT"] * 3
    assert {thread for s, thread in batches[-6:] if s == "COMMIT"} == {"voirie-commit_0"}
