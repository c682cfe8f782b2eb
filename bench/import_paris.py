"""Import wall time and peak memory of the full Paris DansMaRue file, per storage backend.

Runs the real ``voirie import`` command in a fresh process per backend (so peak memory is
that process's own), on a fresh database each time, then a second time to measure the
idempotent re-import. Usage::

    python bench/import_paris.py [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
VOIRIE = str(Path(sys.executable).parent / "voirie")


def run(url: str, workdir: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one ``voirie import`` process."""
    env = {**os.environ, "VOIRIE_DATABASE_URL": url}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(
        [VOIRIE, "import", str(REPORTS), "--format", "dansmarue", "--city", "paris"],
        env=env,
        cwd=workdir,
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024


def main() -> int:
    """Print a Markdown table of the measurements."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp())
    database = f"voirie_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    pg_url = args.postgres.rsplit("/", 1)[0] + f"/{database}"
    rows = []
    try:
        for backend, url in (("sqlite", f"sqlite:///{workdir / 'b.gpkg'}"), ("postgis", pg_url)):
            first = run(url, workdir)
            second = run(url, workdir)
            rows.append((backend, *first, second[0]))
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(database)))
        shutil.rmtree(workdir)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {platform.platform()}"
    )
    print("\n| backend | import 23,508 rows (s) | rows/s | peak RSS (MiB) | re-import (s) |")
    print("|---|---|---|---|---|")
    for backend, wall, peak, again in rows:
        print(f"| {backend} | {wall:.1f} | {23508 / wall:,.0f} | {peak:.0f} | {again:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
