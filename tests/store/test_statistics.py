"""A bulk import leaves the planner fresh statistics (PostGIS: ANALYZE after COPY)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg

from tests.store.test_contract import N, run_import
from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.settings import StoreSettings
from voirie.store import Store, open_store
from voirie.store.selection import Selection, select_sql
from voirie.store.sqlite import DIALECT, SqliteStore


def test_bulk_import_refreshes_statistics(
    store: Store, store_url: str, paris: City, paris_gis: CityGIS
) -> None:
    summary = run_import(store, paris, paris_gis, batch_size=50)
    assert summary.imported == N
    if store.backend == "postgis":
        with psycopg.connect(store_url) as conn:
            row = conn.execute(
                "SELECT reltuples FROM pg_class WHERE relname = 'reports'"
            ).fetchone()
        # Never analyzed, reltuples is -1; analyzed, it is the row count.
        assert row is not None
        assert row[0] == N
    else:
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
            rows = conn.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = 'reports'").fetchall()
        assert rows
        assert all(int(stat.split()[0]) == N for (stat,) in rows)


def test_a_read_by_ids_is_driven_by_the_primary_key_without_statistics(tmp_path: Path) -> None:
    """A store that only ever took POSTs has no ``sqlite_stat1``: a read of a page of ids
    must still look each id up, not walk a ``(jurisdiction_id, ...)`` index over the city
    (1 s per Open311 GET at 1M incidents before ``Dialect.unindexed``)."""
    store = open_store(StoreSettings(database_url=f"sqlite:///{tmp_path / 'plan.gpkg'}"))
    store.upgrade()
    assert isinstance(store, SqliteStore)
    for layer in ("incidents", "reports"):
        sql, params = select_sql(layer, "paris", Selection(ids=tuple(range(1, 101))), DIALECT)
        plan = [row[3] for row in store.conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
        alias = layer[0]
        assert f"SEARCH {alias} USING INTEGER PRIMARY KEY (rowid=?)" in plan, plan
