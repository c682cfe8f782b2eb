"""Two parts of a public read, before and after issue 19's second pass, interleaved.

- A one-row read (the change counter) through a psycopg pool configured as voirie's was
  (``check_connection`` before each loan, a transaction per read: 4 round trips) and
  through ``PostgisStore`` as it is now (autocommit, checked only after 2 s idle: 1).
- The nearby statement (500 m around the bench's point, open incidents, 100 a page, and the
  total): before, the metric top-N over every row of the box with ``count(*) OVER ()``;
  after, ``voirie.store.knn.knn_sql``; each with PostgreSQL's JIT on and off.

Usage: ``python bench/reads_parts.py postgresql://postgres@127.0.0.1:5432/DB [ROUNDS]``
(a store filled by ``bench/export.py``'s ``synthesize``). Prints medians in ms.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import psycopg
from psycopg_pool import ConnectionPool
from pyproj import Transformer

from voirie.gis.metric import bbox_around
from voirie.store.knn import LocalMetric, knn_sql
from voirie.store.postgis import DIALECT, PostgisStore
from voirie.store.selection import Selection, nearest_sql

LON, LAT, RADIUS_M = 2.3631, 48.8735, 500.0
OPEN = ("acknowledged", "in_progress", "new", "scheduled")
# Paris's change counter as ``PostgisStore.change_mark`` reads it: since migration 0021
# one row per city, else the store's row from before it ('').
COUNTER = (
    "SELECT version, changed_at, clock_timestamp() FROM store_changes"
    " WHERE jurisdiction_id IN ('', 'paris.fr') ORDER BY jurisdiction_id DESC LIMIT 1"
)
_LAMBERT = Transformer.from_crs(4326, 2154, always_xy=True)


def _project(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    found: tuple[np.ndarray, np.ndarray] = _LAMBERT.transform(x, y)
    return found


def _median_ms(runs: dict[str, list[float]]) -> None:
    for label, times in runs.items():
        print(f"{label}: median {statistics.median(times):.3f} ms ({len(times)} runs)")


def pool_reads(url: str, rounds: int) -> None:
    """The counter read 200 times per round through each pool, rounds interleaved."""
    before: ConnectionPool[Any] = ConnectionPool(
        url, min_size=1, max_size=2, check=ConnectionPool.check_connection, open=True
    )
    after = PostgisStore(url, max_size=2)

    def old(text: str) -> object:
        with before.connection() as conn:
            return conn.execute(text).fetchall()

    reads: dict[str, Callable[[str], object]] = {
        "pool as before": old,
        "pool now": lambda text: after.rows(text, ()),
    }
    runs: dict[str, list[float]] = {label: [] for label in reads}
    try:
        for _ in range(rounds):
            for label, read in reads.items():
                started = time.perf_counter()
                for _ in range(200):
                    read(COUNTER)
                runs[label].append((time.perf_counter() - started) / 200 * 1000)
    finally:
        before.close()
        after.close()
    _median_ms(runs)


def nearby_statements(url: str, rounds: int) -> None:
    """Each nearby statement once per round on a JIT-on and a JIT-off session."""
    selection = Selection(statuses=OPEN, bbox=bbox_around(LON, LAT, RADIUS_M), limit=100)
    near, near_params = nearest_sql(
        "incidents", "paris.fr", selection, DIALECT, (LON, LAT), RADIUS_M, 2154
    )
    counted = near.replace(
        "SELECT row_id, distance_m FROM",
        "SELECT row_id, distance_m, count(*) OVER () AS total FROM",
        1,
    )

    def knn() -> tuple[str, list[object]]:
        local = LocalMetric.around((LON, LAT), RADIUS_M, _project)
        return knn_sql("incidents", "paris.fr", selection, DIALECT, local, RADIUS_M, 2154)

    statements: dict[str, Callable[[], tuple[str, list[object]]]] = {
        "metric top-N": lambda: (counted, near_params),
        "knn_sql": knn,
    }
    runs: dict[str, list[float]] = {}
    with (
        psycopg.connect(url, autocommit=True) as jit_on,
        psycopg.connect(url, autocommit=True, options="-c jit=off") as jit_off,
    ):
        for _ in range(rounds):
            for jit, conn in (("JIT on", jit_on), ("JIT off", jit_off)):
                for label, statement in statements.items():
                    started = time.perf_counter()
                    conn.execute(*statement()).fetchall()
                    elapsed = (time.perf_counter() - started) * 1000
                    runs.setdefault(f"nearby {label}, {jit}", []).append(elapsed)
    _median_ms(runs)


def main() -> None:
    url = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    print(f"{url.rsplit('/', 1)[-1]}, load {os.getloadavg()}")
    pool_reads(url, rounds)
    nearby_statements(url, rounds)


if __name__ == "__main__":
    main()
