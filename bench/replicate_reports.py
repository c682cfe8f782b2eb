"""A larger DansMaRue file for import scaling runs, made from the bundled one.

Copy k of the output is the bundled file with new ids (``R<k>`` appended), its dates moved
back by k × 280 days (so copies open their own incidents instead of joining the
original's) and its points moved by about 30 m (Gaussian, seeded). Copy 0 is the file as
it is. When that many copies would date reports before ``EARLIEST_REPORT`` (which the import
quarantines: from about 1M rows on), the shift is shortened so the last copy still starts
after it (``shift_days``; 56 days for 5M rows), and copies then overlap in time less than a
month's reports apart. The copies are written copy 0 first (``--order reverse``: the
file goes back in time block by block) or oldest first (``--order chronological``: the
same rows in date order, as a city's history export comes; the bundled file itself is
sorted by date). bench/RESULTS.md's import scaling runs use it.

Usage::

    python bench/replicate_reports.py --copies 5 -o /tmp/x5.csv.gz
    python bench/replicate_reports.py --rows 1000000 -o /tmp/1m.csv   # as many copies as needed
    python bench/replicate_reports.py --rows 1000000 --order chronological -o /tmp/1m.csv
    VOIRIE_DATABASE_URL=postgresql://... voirie import /tmp/x5.csv.gz --format dansmarue \
        --city cities/paris
"""

from __future__ import annotations

import argparse
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from voirie.ingest.validate import EARLIEST_REPORT

BUNDLED = Path(__file__).parent.parent / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
SHIFT_DAYS = 280
JITTER_DEG = (0.0004, 0.00027)  # lon, lat: about 30 m at Paris


def shift_days(source: pd.DataFrame, copies: int) -> int:
    """Days between copies: ``SHIFT_DAYS``, or less when the last of ``copies`` copies
    would otherwise hold reports dated before ``EARLIEST_REPORT``."""
    earliest = pd.to_datetime(source["datedecl"]).min()
    room = (earliest - pd.Timestamp(EARLIEST_REPORT.date())).days - 1
    return min(SHIFT_DAYS, room // max(copies - 1, 1))


def copies_of(source: pd.DataFrame, copies: int, seed: int = 1) -> Iterator[pd.DataFrame]:
    """The ``copies`` copies of a DansMaRue table (all columns as text) described above,
    one at a time (a file of millions of rows is written without holding it)."""
    rng = np.random.default_rng(seed)
    days = shift_days(source, copies)
    yield source
    for k in range(1, copies):
        part = source.copy()
        part["id_dmr"] = part["id_dmr"] + f"R{k}"
        moved = pd.to_datetime(part["datedecl"]) - pd.Timedelta(days=days * k)
        part["datedecl"] = moved.dt.strftime("%Y-%m-%d")
        for column, sigma in zip(("longitude", "latitude"), JITTER_DEG, strict=True):
            jittered = part[column].astype(float) + rng.normal(0, sigma, len(part))
            part[column] = jittered.astype(str)
        yield part


def replicate(source: pd.DataFrame, copies: int, seed: int = 1) -> pd.DataFrame:
    """All ``copies_of`` a table in one table."""
    return pd.concat(copies_of(source, copies, seed), ignore_index=True)


ORDERS = ("reverse", "chronological")
"""How ``write_rows`` orders the copies: copy 0 first, each later copy dated further back
(``reverse``: the file goes back in time by blocks), or the oldest copy first
(``chronological``: the order of a city's history export, sorted by date)."""


def write_rows(output: Path, rows: int, source: Path = BUNDLED, order: str = "reverse") -> int:
    """The first ``rows`` rows of as many copies as needed, written copy by copy to a CSV
    (gzipped when ``output`` ends in .gz) in ``order`` (``ORDERS``: both orders hold the
    same rows); the number of rows written."""
    table = pd.read_csv(source, dtype=str)
    left = rows
    with tempfile.TemporaryDirectory(prefix="replicate-") as tmp:
        parts: list[Path] = []
        for k, part in enumerate(copies_of(table, math.ceil(rows / len(table)))):
            if order == "reverse":
                part.iloc[:left].to_csv(output, index=False, header=k == 0, mode="a" if k else "w")
            else:  # the copies are made newest first: spill them, then write them back
                parts.append(Path(tmp) / f"{k}.pickle")
                part.iloc[:left].to_pickle(parts[-1])
            left -= min(left, len(part))
        for k, path in enumerate(reversed(parts)):
            pd.read_pickle(path).to_csv(output, index=False, header=k == 0, mode="a" if k else "w")
    return rows - left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=5)
    parser.add_argument("--rows", type=int, help="write this many rows (overrides --copies)")
    parser.add_argument("--source", type=Path, default=BUNDLED)
    parser.add_argument("--order", choices=ORDERS, default="reverse", help="of the copies")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    if args.rows:
        written = write_rows(args.output, args.rows, args.source, args.order)
    else:
        table = replicate(pd.read_csv(args.source, dtype=str), args.copies)
        table.to_csv(args.output, index=False)
        written = len(table)
    print(f"{written:,} rows -> {args.output}")


if __name__ == "__main__":
    main()
