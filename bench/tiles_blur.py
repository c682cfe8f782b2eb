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

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from export import _tile, synthesize

from voirie.city import City, load_city
from voirie.gis.enrich import CityGIS
from voirie.services.reads import Reads
from voirie.settings import StoreSettings
from voirie.store import open_store

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        cities = {method: _blurring(workdir, method) for method in ("grid", "street_middle")}
        for url in args.urls:
            bench(url, args.incidents, args.runs, workdir, cities)


if __name__ == "__main__":
    main()
