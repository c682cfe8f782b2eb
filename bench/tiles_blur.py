"""What blurring costs the incident tiles (issue 17 item 5), in one run.

The peer is the same tile without blurring: the same store, the same tiles (Paris centre at
z10, z12, z14 and z16), read through ``Reads.incident_tile`` by three ``Reads`` sharing one
``CityGIS``: Paris as configured (no ``privacy.blur``: the tile as before), Paris blurring
the graffiti group on a 50 m grid, and the same on the street's middle. A store keeps one
set of public points per city (migration 0020), placed when a ``Reads`` starts: the sides
are read one after the other (grid, middle, plain), each after its ``Reads`` placed its
points (the time that takes is printed), the tiles interleaved round by round within a
side; the median of ``--runs`` reads is printed, with the ratio to the plain tile.

Usage::

    nice python bench/tiles_blur.py sqlite:////tmp/blur_100k.gpkg \
        postgresql://postgres@127.0.0.1:5432/voirie_bench_blur [--incidents 100000]

The stores are filled by ``bench/export.py``'s ``synthesize`` (the bundled Paris reports
imported, their incidents copied with a 30 m jitter up to the number asked).

``--workers`` (PostGIS only) times instead the plain tiles and the grid side's public
tiles as the store reads them (cell tiles with the planner's parallel workers, point
tiles without) against the same store read by a role for which PostgreSQL never plans
workers (``max_parallel_workers_per_gather = 0``, a role made for the run and dropped
after it), rounds alternating which side reads first; it prints the median and the
spread of ``--runs`` reads a side.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from export import _tile, synthesize

from voirie.city import City, load_city
from voirie.gis.enrich import CityGIS
from voirie.services.reads import Reads
from voirie.settings import StoreSettings
from voirie.store import Store, open_store

PARIS = Path(__file__).parents[1] / "cities" / "paris"
GRAFFITI = "graffitis-tags-affiches"
ZOOMS = (10, 12, 14, 16)
HEADER = "| tile (Paris centre) | plain (ms) | grid 50 m (ms, ratio) | street middle (ms, ratio) |"


def _blurring(folder: Path, method: str) -> City:
    """Paris blurring the graffiti group with ``method`` (its layers copied)."""
    target = folder / method
    shutil.copytree(PARIS, target, ignore=shutil.ignore_patterns("reports"))
    config = yaml.safe_load((target / "city.yaml").read_text(encoding="utf-8"))
    config["privacy"] = {
        **(config.get("privacy") or {}),
        "blur": {"groups": [GRAFFITI], "method": method, "grid_m": 50},
    }
    (target / "city.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), "utf-8")
    return load_city(target)


def bench(url: str, incidents: int, runs: int, workdir: Path, cities: dict[str, City]) -> None:
    """Fill the store at ``url`` if needed, then time the tiles on the three sides."""
    have = synthesize(url, incidents, workdir)
    paris = load_city(PARIS)
    gis = CityGIS(paris)
    store = open_store(StoreSettings(database_url=url))
    sides = {"grid": cities["grid"], "street_middle": cities["street_middle"], "plain": paris}
    blurred = [s.code for s in paris.config.services if s.group == GRAFFITI]
    counts = store.lookup("incidents", paris.jurisdiction_id, "service_code", sorted(blurred))
    print(
        f"\n{url.split('@')[-1]}: {have:,} incidents, {len(counts):,} of blurred services; "
        f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}"
    )
    tiles = [_tile(z) for z in ZOOMS]
    timings: dict[tuple[str, int], list[float]] = {(s, z): [] for s in sides for z in ZOOMS}
    sizes: dict[tuple[str, int], int] = {}
    for name, city in sides.items():
        start = time.perf_counter()
        reads = Reads(city, store, gis)  # places the side's public points
        print(f"  {name}: public points placed in {time.perf_counter() - start:,.1f} s")
        for _ in range(runs):
            for z, x, y in tiles:
                start = time.perf_counter()
                content = reads.incident_tile(z, x, y)
                timings[(name, z)].append((time.perf_counter() - start) * 1000)
                sizes[(name, z)] = len(content)
    print(HEADER)
    print("|---|---|---|---|")
    for z in ZOOMS:
        plain = statistics.median(timings[("plain", z)])
        cells = [f"z{z}", f"{plain:,.1f} ({sizes[('plain', z)] / 1024:,.0f} KiB)"]
        for name in ("grid", "street_middle"):
            ms = statistics.median(timings[(name, z)])
            cells.append(f"{ms:,.1f} ({ms / plain:.2f}×, {sizes[(name, z)] / 1024:,.0f} KiB)")
        print("| " + " | ".join(cells) + " |")
    print(f"load average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    store.close()


SERIAL_ROLE = "voirie_bench_serial"


def bench_workers(url: str, incidents: int, runs: int, workdir: Path, grid: City) -> None:
    """The tiles read as the store does and by a role without parallel workers: the plain
    tiles, and the public ones of Paris blurring the graffiti group on a 50 m grid."""
    have = synthesize(url, incidents, workdir)
    paris = load_city(PARIS)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"DROP ROLE IF EXISTS {SERIAL_ROLE}")
        admin.execute(f"CREATE ROLE {SERIAL_ROLE} LOGIN IN ROLE pg_read_all_data")
        admin.execute(f"ALTER ROLE {SERIAL_ROLE} SET max_parallel_workers_per_gather = 0")
    parts = urlsplit(url)  # the same server and database, as the role
    serial_url = urlunsplit(
        parts._replace(netloc=f"{SERIAL_ROLE}@{parts.netloc.rpartition('@')[2]}")
    )
    stores: dict[str, Store] = {
        "as served": open_store(StoreSettings(database_url=url)),
        "no workers": open_store(StoreSettings(database_url=serial_url)),
    }
    try:
        start = time.perf_counter()
        Reads(grid, stores["as served"], CityGIS(paris))  # places the grid's public points
        print(
            f"\n{url.split('@')[-1]}: {have:,} incidents, grid public points placed in "
            f"{time.perf_counter() - start:,.1f} s; "
            f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}"
        )
        tiles = [(public, _tile(z)) for public in (False, True) for z in ZOOMS]
        timings: dict[tuple[str, bool, int], list[float]] = {
            (side, public, z): [] for side in stores for public, (z, _, _) in tiles
        }
        for run in range(runs):
            for public, (z, x, y) in tiles:
                for side in list(stores)[:: 1 if run % 2 == 0 else -1]:
                    start = time.perf_counter()
                    stores[side].incident_tile(paris.jurisdiction_id, z, x, y, public)
                    timings[(side, public, z)].append((time.perf_counter() - start) * 1000)
        print("| tile (Paris centre) | as served (ms) | no workers (ms) | no workers / as served |")
        print("|---|---|---|---|")
        for public, (z, _, _) in tiles:
            served, serial = (timings[(side, public, z)] for side in stores)
            cells = [f"z{z} {'grid 50 m' if public else 'plain'}"]
            for values in (served, serial):
                spread = f"{min(values):,.1f}–{max(values):,.1f}"
                cells.append(f"{statistics.median(values):,.1f} ({spread})")
            cells.append(f"{statistics.median(serial) / statistics.median(served):.2f}×")
            print("| " + " | ".join(cells) + " |")
        print(f"load average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    finally:
        for store in stores.values():
            store.close()
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"DROP ROLE IF EXISTS {SERIAL_ROLE}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--workers", action="store_true", help="parallel workers against none (PostGIS)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        if args.workers:
            for url in args.urls:
                bench_workers(url, args.incidents, args.runs, workdir, _blurring(workdir, "grid"))
            return
        cities = {method: _blurring(workdir, method) for method in ("grid", "street_middle")}
        for url in args.urls:
            bench(url, args.incidents, args.runs, workdir, cities)


if __name__ == "__main__":
    main()
