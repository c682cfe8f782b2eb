"""The fixed cost of ``voirie import``: a one-row file, before and after a change (issue 14).

The real ``voirie`` console script imports a one-row DansMaRue file (``replicate_reports``)
into a new database (created for the run: the migrations applied), then imports it again
into that database (an existing, current one: the row is skipped). Each import is a fresh
process, run and waited for as ``import_scale.py`` runs its imports (``wait4``: its own CPU
and peak RSS). With ``--before TREE`` (a
copy of the source tree, e.g. ``git archive`` of the commit before a change) the same
imports run from that tree too, on its own ``PYTHONPATH`` and from its own folder, the two
sides alternating in every round (the machine's load moves figures by ±30 %). Each side
has its own GIS cache folder, filled by a first (one-row) import that is not counted.

Usage (from ``bench/`` of the tree measured; the machine is shared)::

    python bench/import_fixed_cost.py --backends sqlite,postgis --rounds 5 --before TREE
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import import_scale
from import_scale import Run, postgres_database, remove_sqlite
from replicate_reports import write_rows

TREE = Path(__file__).resolve().parents[1]
CASES = ("new database", "existing database")


@dataclass(frozen=True)
class Side:
    """One copy of the source tree, run on its own ``PYTHONPATH`` from its own folder,
    with its GIS cache under ``work/cache``."""

    label: str
    tree: Path
    work: Path


def import_once(side: Side, path: Path, url: str) -> Run:
    """``import_scale.import_once`` from ``side``'s tree (its own path, folder and cache)."""
    os.environ["PYTHONPATH"] = str(side.tree)
    return import_scale.import_once(path, url, side.work)


@contextmanager
def new_database(backend: str, admin_url: str, work: Path) -> Iterator[str]:
    """The URL of a new empty database of ``backend``, removed afterwards."""
    if backend == "postgis":
        with postgres_database(admin_url) as url:
            yield url
        return
    try:
        yield f"sqlite:///{work / 'one.gpkg'}"
    finally:
        remove_sqlite(work / "one.gpkg")


def load() -> str:
    """The 1-minute load average."""
    return f"{os.getloadavg()[0]:.1f}"


def main() -> int:
    """Run the rounds and print each import, then the medians per side, case and backend."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgis")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--rows",
        type=int,
        default=1,
        help="rows of the file (1: the fixed cost; more: "
        "the whole import, then the re-import as the existing-database case)",
    )
    parser.add_argument("--before", type=Path, help="a copy of the source tree before a change")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--db-prefix", default=import_scale.DB_PREFIX[0])
    args = parser.parse_args()
    import_scale.DB_PREFIX[0] = args.db_prefix
    with tempfile.TemporaryDirectory(prefix="voirie-fixed-") as folder:
        work = Path(folder)
        reports, one = work / "reports.csv", work / "one.csv"
        write_rows(reports, args.rows)
        write_rows(one, 1)
        sides = [Side("after", TREE, work / "after")]
        if args.before is not None:
            sides.insert(0, Side("before", args.before.resolve(), work / "before"))
        for side in sides:
            side.work.mkdir()
        runs: dict[tuple[str, str, str], list[Run]] = {}
        for backend in args.backends.split(","):
            for side in sides:  # a one-row import fills the side's GIS cache: not counted
                with new_database(backend, args.postgres, work) as url:
                    import_once(side, one, url)
            for round_ in range(args.rounds):
                order = sides if round_ % 2 == 0 else sides[::-1]
                for side in order:
                    with new_database(backend, args.postgres, work) as url:
                        for case in CASES:
                            before_load = load()
                            run = import_once(side, reports, url)
                            runs.setdefault((backend, case, side.label), []).append(run)
                            print(
                                f"{time.strftime('%H:%M:%S')} {backend} round {round_ + 1} "
                                f"{side.label} {case}: {run.wall:.2f} s wall, {run.cpu:.2f} s "
                                f"CPU, {run.peak_mib:.0f} MiB, load {before_load} -> {load()}",
                                flush=True,
                            )
        print(
            "\n| backend | case | side | wall (s) by round | median wall | median CPU | "
            "peak RSS (MiB) |"
        )
        print("|---|---|---|---|---|---|---|")
        for (backend, case, label), done in runs.items():
            walls = ", ".join(f"{r.wall:.2f}" for r in done)
            print(
                f"| {backend} | {case} | {label} | {walls} | "
                f"{statistics.median(r.wall for r in done):.2f} | "
                f"{statistics.median(r.cpu for r in done):.2f} | "
                f"{max(r.peak_mib for r in done):.0f} |"
            )
        if len(sides) == 2:
            print("\n| backend | case | after / before, median wall | median CPU |")
            print("|---|---|---|---|")
            for backend in args.backends.split(","):
                for case in CASES:
                    a, b = runs[(backend, case, "after")], runs[(backend, case, "before")]
                    wall = statistics.median(r.wall for r in a) / statistics.median(
                        r.wall for r in b
                    )
                    cpu = statistics.median(r.cpu for r in a) / statistics.median(r.cpu for r in b)
                    print(f"| {backend} | {case} | {wall:.2f}× | {cpu:.2f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
