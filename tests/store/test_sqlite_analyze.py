"""``SqliteStore.analyze``: a quick refresh during a bulk load reads a bounded sample of
each index (``PRAGMA analysis_limit``) and leaves the connection reading whole indexes
again; the full refresh at the load's end reads them whole."""

from __future__ import annotations

from pathlib import Path

from eventrows import events

from voirie.store.sqlite import QUICK_ANALYSIS_LIMIT, SqliteStore

J = "paris.fr"


def _stat(store: SqliteStore, index: str) -> int:
    """The row count sqlite_stat1 holds for an index (its first figure)."""
    (stat,) = store.conn.execute("SELECT stat FROM sqlite_stat1 WHERE idx = ?", (index,)).fetchone()
    return int(str(stat).split()[0])


def test_a_quick_analyze_samples_and_a_full_one_follows(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "voirie.gpkg")
    try:
        store.upgrade()
        many = 5 * QUICK_ANALYSIS_LIMIT
        with store.transaction(J) as uow:
            uow.tables.insert("events", events(uow.tables.reserve_ids("events", many), "x"))
        store.analyze(["events"], quick=True)
        # Sampled: fewer rows than the index holds, and the limit is not left set.
        assert _stat(store, "events_kind_at") < many
        assert store.conn.execute("PRAGMA analysis_limit").fetchone() == (0,)
        store.analyze()
        assert _stat(store, "events_kind_at") == many
    finally:
        store.close()
