"""A bulk import leaves the planner fresh statistics (PostGIS: ANALYZE after COPY)."""

from __future__ import annotations

import sqlite3

import psycopg

from tests.store.test_contract import N, run_import
from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.store import Store


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
