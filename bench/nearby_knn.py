"""``Reads.nearby`` before and after the search that stops at its page, on PostGIS.

Imports the bundled Paris DansMaRue file (23.5k reports) into a PostGIS database of its
own (kept for reruns; ``--reuse`` skips the import), then times 200 calls of each, at
(48.8735, 2.3631) with 500 m and the citizens' selection (open incidents, 200 at most):

- before: every open incident in the box read with its zones, measured, sorted and cut
  in pandas (what ``Reads.nearby`` did: ``_within``, then sort and page);
- after: ``Reads.nearby`` (``Store.nearest``: the database sorts and stops at the page).

Both answers are checked equal first. Usage::

    python bench/nearby_knn.py [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
                               [--reuse]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import psycopg

from voirie.city import load_city
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.model import OPEN_STATUSES
from voirie.services.citizens import MAX_NEARBY
from voirie.services.pipeline import Pipeline
from voirie.settings import StoreSettings
from voirie.store import open_store
from voirie.store.selection import Selection

PARIS = Path(__file__).parents[1] / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
DATABASE = "voirie_bench_nearby"
LON, LAT, RADIUS_M = 2.3631, 48.8735, 500.0
OPEN = tuple(sorted(status.value for status in OPEN_STATUSES))
CALLS = 200


def _p50_ms(call: Callable[[], object]) -> float:
    for _ in range(10):  # warm the pool's connections and the planner's caches
        call()
    times = []
    for _ in range(CALLS):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    if not args.reuse:
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {DATABASE}")
    url = urlunsplit(urlsplit(args.postgres)._replace(path=f"/{DATABASE}"))
    store = open_store(StoreSettings(database_url=url, pool_min_size=1, pool_max_size=2))
    city = load_city("paris")
    pipeline = Pipeline(city, store, CityGIS(city))
    if not args.reuse:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        store.upgrade()
        pipeline.imports.import_table(read_csv(PARIS), DANSMARUE)
        store.analyze()
    reads = pipeline.reads
    selection = Selection(statuses=OPEN, limit=MAX_NEARBY)

    def before() -> pd.DataFrame:
        found = reads._within("incidents", LON, LAT, RADIUS_M, selection)
        found = found.sort_values(["distance_m", "incident_id"], kind="stable")
        return found.iloc[:MAX_NEARBY]

    def after() -> pd.DataFrame:
        return reads.nearby(LON, LAT, RADIUS_M, selection)

    old, new = before().reset_index(drop=True), after()
    assert old["incident_id"].tolist() == new["incident_id"].tolist()
    assert (old["distance_m"] - new["distance_m"]).abs().max() < 1e-6
    print(f"incidents stored: {store.count('incidents', city.jurisdiction_id)}")
    print(f"before p50 {_p50_ms(before):.1f} ms, after p50 {_p50_ms(after):.1f} ms")
    store.close()


if __name__ == "__main__":
    main()
