"""What selecting blurred incidents by their public point costs the public reads (issue 17
item 5, migration 0020), in one run.

The peer is the same read without blurring: the same store and the same queries, through
two ``Reads`` sharing one ``CityGIS``: Paris as configured (no ``privacy.blur``: the exact
``bbox`` through the spatial index, as before) and Paris blurring the graffiti group on a
50 m grid (the ``bbox`` on the public points: the exact index for the rows without one,
the public index for the blurred ones). The reads are an OGC items page (100 incidents in
a box of 300 m and of 2 km around the centre of Paris, and its ``numberMatched``) and the
citizens' nearby search (500 m, 50 nearest). Sides are interleaved query by query and
round by round so the machine's load hits them alike; the median of ``--runs`` is printed
with the ratio to the plain read. The one-off cost of recomputing every public point
(``store.public_points.sync``, what a change of the city's blurring costs at start) is
timed too, and the store's statements alone on the blurred data, selected by the exact
point (as before) and by the public point.

Usage::

    nice python bench/blur_filters.py sqlite:////tmp/blur_100k.gpkg \
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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from export import CENTRE, synthesize

from voirie.city import City, load_city
from voirie.gis.enrich import CityGIS
from voirie.gis.metric import bbox_around
from voirie.model import OPEN_STATUSES
from voirie.services.reads import Reads
from voirie.settings import StoreSettings
from voirie.store import open_store
from voirie.store.base import Store
from voirie.store.public_points import Placement
from voirie.store.selection import Selection

PARIS = Path(__file__).parents[1] / "cities" / "paris"
GRAFFITI = "graffitis-tags-affiches"
OPEN = tuple(sorted(s.value for s in OPEN_STATUSES))
HEADER = "| read (centre of Paris) | plain (ms) | blurred grid 50 m (ms, ratio) | rows |"


def _blurring(folder: Path) -> City:
    """Paris blurring the graffiti group on a 50 m grid (its layers copied)."""
    target = folder / "grid"
    shutil.copytree(PARIS, target, ignore=shutil.ignore_patterns("reports"))
    config = yaml.safe_load((target / "city.yaml").read_text(encoding="utf-8"))
    config["privacy"] = {
        **(config.get("privacy") or {}),
        "blur": {"groups": [GRAFFITI], "method": "grid", "grid_m": 50},
    }
    (target / "city.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), "utf-8")
    return load_city(target)


def _queries(reads: Reads) -> dict[str, Callable[[], int]]:
    """The reads timed, each answering how many rows it found."""
    lon, lat = CENTRE

    def page(half_m: float) -> Callable[[], int]:
        box = bbox_around(lon, lat, half_m)

        def run() -> int:
            rows = reads.records("incidents", Selection(bbox=box, limit=100), zones=False)
            matched = reads.count("incidents", Selection(bbox=box))
            return len(rows) + matched

        return run

    def nearby() -> int:
        selection = Selection(statuses=OPEN, limit=50)
        found, total = reads.nearby_records(lon, lat, 500.0, selection, datetime.now(UTC))
        return len(found) + total

    return {"OGC page + numberMatched, 300 m box": page(150.0), "same, 2 km box": page(1000.0)} | {
        "nearby 500 m, 50 nearest": nearby
    }


def bench(url: str, incidents: int, runs: int, blurred_city: City) -> None:
    """Fill the store at ``url`` if needed, then time the reads on both sides."""
    with tempfile.TemporaryDirectory() as folder:
        have = synthesize(url, incidents, Path(folder))
    paris = load_city(PARIS)
    gis = CityGIS(paris)
    store = open_store(StoreSettings(database_url=url))
    plain = Reads(paris, store, gis)  # first: the blurred side's placement is the last one
    # Another blurring first (nothing blurred, under another fingerprint): the blurred
    # side's start then recomputes every point, as after a change of city.yaml.
    store.place_publicly(paris.jurisdiction_id, Placement(frozenset(), plain.blur.public, "reset"))
    start = time.perf_counter()
    blurred = Reads(blurred_city, store, gis)  # recomputes every public point
    sync_s = time.perf_counter() - start
    placed = len(
        store.lookup(
            "incidents", paris.jurisdiction_id, "service_code", sorted(blurred.blur.services)
        )
    )
    print(
        f"\n{url.split('@')[-1]}: {have:,} incidents, {placed:,} placed at a public point "
        f"(recomputed with the reports' in {sync_s:,.1f} s at start); "
        f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}"
    )
    sides = {"plain": _queries(plain), "blurred": _queries(blurred)}
    names = list(sides["plain"])
    timings: dict[tuple[str, str], list[float]] = {(s, n): [] for s in sides for n in names}
    found: dict[tuple[str, str], int] = {}
    for warm in sides.values():  # warm: plans and caches
        for run in warm.values():
            run()
    for _ in range(runs):
        for name in names:
            for side, queries in sides.items():
                start = time.perf_counter()
                found[(side, name)] = queries[name]()
                timings[(side, name)].append((time.perf_counter() - start) * 1000)
    print(HEADER)
    print("|---|---|---|---|")
    for name in names:
        base = statistics.median(timings[("plain", name)])
        ms = statistics.median(timings[("blurred", name)])
        rows = f"{found[('plain', name)]:,} / {found[('blurred', name)]:,}"
        print(f"| {name} | {base:,.1f} | {ms:,.1f} ({ms / base:.2f}×) | {rows} |")
    _sql_only(store, paris.jurisdiction_id, runs)
    print(f"load average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    store.close()


def _sql_only(store: Store, jurisdiction_id: str, runs: int) -> None:
    """The store's statements alone (a page of 100 and its count), the same blurred data
    selected by the exact point (what the public reads did before migration 0020) and by
    the public point: what selecting by the public point costs, without the blurring of
    the page's records (done either way)."""
    lon, lat = CENTRE
    timings: dict[tuple[float, bool], list[float]] = {}
    for _ in range(runs):
        for half_m in (150.0, 1000.0):
            box = bbox_around(lon, lat, half_m)
            for public in (False, True):
                selection = Selection(bbox=box, limit=100, public_points=public)
                start = time.perf_counter()
                store.page_rows("incidents", jurisdiction_id, selection)
                store.count_selected("incidents", jurisdiction_id, selection)
                timings.setdefault((half_m, public), []).append(
                    (time.perf_counter() - start) * 1000
                )
    print("| statements: page of 100 + count | exact point (ms) | public point (ms, ratio) |")
    print("|---|---|---|")
    for half_m in (150.0, 1000.0):
        exact = statistics.median(timings[(half_m, False)])
        moved = statistics.median(timings[(half_m, True)])
        print(f"| {2 * half_m:,.0f} m box | {exact:,.1f} | {moved:,.1f} ({moved / exact:.2f}×) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        city = _blurring(Path(folder))
        for url in args.urls:
            bench(url, args.incidents, args.runs, city)


if __name__ == "__main__":
    main()
