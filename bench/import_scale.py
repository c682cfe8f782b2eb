"""Bulk import at scale against its floor, on both backends (issue 14).

For each size and file order, a DansMaRue file made by ``bench/replicate_reports.py`` (new
ids, dates moved back by 280 days per copy, or less when that would date rows before 1990,
points jittered by about 30 m; ``--orders``: the copies written newest first, ``reverse``,
or oldest first, ``chronological``, the order of a city's history export) is imported by the real
``voirie import`` command in a fresh process into a fresh database, then imported again
(everything already there). Each process is waited for with ``wait4``, so its peak RSS is
its own. The floor is measured in the same run: the rows the import stored, every table of
them, are loaded into another fresh database of the same schema (same tables, indexes,
constraints and triggers) with no enrichment, deduplication or routing: ``COPY ... FROM
STDIN (FORMAT binary)`` on PostGIS, ``executemany`` of prepared INSERTs in one transaction
per table on sqlite (only the load is timed, not the reading of the rows). The fixed cost
(process start, loading the city and building its spatial indexes) is measured by importing
a one-row file, and the ratio is also given without it; it is measured twice, without
and with the city's prepared GIS cached (``voirie.gis.cache``; every import of the run
after the first loads it from the run's own cache folder).

Each figure is printed (and flushed) as soon as it is measured, each stage announced with
the time and load average when it starts, so that a run stopped part-way (a 5M-row size
takes hours) keeps what it measured; the Markdown table line of a size follows its floor.
A sqlite database is removed with its ``-wal`` and ``-shm`` files once measured.

Usage (the machine is shared: run it niced)::

    nice -n 10 python bench/import_scale.py --sizes 23508,100000,1000000
    nice -n 10 python bench/import_scale.py --sizes 100000 --orders reverse,chronological
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas
import psycopg
import shapely
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from replicate_reports import ORDERS, write_rows

from voirie.settings import StoreSettings
from voirie.store import open_store
from voirie.store.schema import COLUMNS, POINT_TABLES
from voirie.store.sqlite import SqliteStore, bulk_insert

VOIRIE = str(Path(sys.executable).parent / "voirie")
TABLES = ["routing_rules", *(t for t in COLUMNS if t != "routing_rules")]
"""Every table the import writes, parents before the rows that refer to them."""
FETCH_ROWS = 50_000


@dataclass(frozen=True)
class Run:
    """One ``voirie import`` process."""

    wall: float
    cpu: float
    """User + system CPU seconds of the import process (not the database server's)."""
    peak_mib: float
    output: str


def import_once(path: Path, url: str, workdir: Path) -> Run:
    """Run ``voirie import PATH`` into ``url``; its wall time and its own peak RSS. The
    prepared city GIS is cached under ``workdir/cache`` (``XDG_CACHE_HOME``): the first
    import of the run builds it, the others load it."""
    env = {
        **os.environ,
        "VOIRIE_DATABASE_URL": url,
        "COLUMNS": "100",
        "XDG_CACHE_HOME": str(workdir / "cache"),
    }
    start = time.perf_counter()
    with subprocess.Popen(
        [VOIRIE, "import", str(path), "--format", "dansmarue", "--city", "paris"],
        env=env,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as child:
        assert child.stdout is not None
        output = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if child.returncode not in (0, 1):
        raise RuntimeError(f"voirie import failed ({child.returncode}):\n{output}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, output)


def imported_count(output: str) -> int:
    """The "imported" figure of the import summary."""
    for line in output.splitlines():
        words = line.replace("│", " ").split()
        if words[:1] == ["imported"] and words[-1].isdigit():
            return int(words[-1])
    raise RuntimeError(f"no summary in:\n{output}")


def say(text: str) -> None:
    """One progress or figure line, with the time and the load average, flushed at once."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"[{time.strftime('%H:%M:%S')}, load {load}] {text}", flush=True)


def describe(what: str, run: Run, rows: int) -> str:
    """One import's figures as one line."""
    return (
        f"{what}: {run.wall:,.1f} s, {run.cpu:,.1f} s CPU ({rows / run.cpu:,.0f} rows per "
        f"CPU-second), peak RSS {run.peak_mib:,.0f} MiB"
    )


def remove_sqlite(path: Path) -> None:
    """A sqlite database and its WAL and shared-memory files."""
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        name.unlink(missing_ok=True)


DB_PREFIX = ["voirie_scale"]
"""Prefix of the databases the bench creates (``--db-prefix``)."""


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database on the server of ``admin_url``, dropped afterwards."""
    name = f"{DB_PREFIX[0]}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _upgraded(url: str) -> None:
    store = open_store(StoreSettings(database_url=url, pool_min_size=1, pool_max_size=1))
    try:
        store.upgrade()
    finally:
        store.close()


def postgis_floor(source_url: str, target_url: str, spool: Path) -> tuple[float, int]:
    """Seconds to COPY every stored row of ``source_url`` into the fresh ``target_url``
    (dumped to ``spool`` first, untimed), and the number of rows."""
    _upgraded(target_url)
    seconds, rows = 0.0, 0
    with psycopg.connect(source_url) as src, psycopg.connect(target_url) as dst:
        for table in TABLES:
            columns = [
                name
                for (name,) in src.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
                    " AND is_generated = 'NEVER' ORDER BY ordinal_position",
                    (table,),
                )
            ]
            names = sql.SQL(", ").join(map(sql.Identifier, columns))
            dump = spool / f"{table}.copy"
            with (
                dump.open("wb") as out,
                src.cursor().copy(
                    sql.SQL("COPY {} ({}) TO STDOUT (FORMAT binary)").format(
                        sql.Identifier(table), names
                    )
                ) as copy,
            ):
                for block in copy:
                    out.write(block)
            (count,) = src.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            ).fetchone() or (0,)
            rows += int(count)
            start = time.perf_counter()
            with (
                dump.open("rb") as data,
                dst.cursor().copy(
                    sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(
                        sql.Identifier(table), names
                    )
                ) as copy,
            ):
                while block := data.read(1 << 20):
                    copy.write(block)
            dst.commit()
            seconds += time.perf_counter() - start
            dump.unlink()
    return seconds, rows


def sqlite_floor(source: Path, target: Path) -> tuple[float, int]:
    """Seconds to load every stored row of ``source`` into the fresh ``target`` as the
    store's own bulk path loads a frame (``bulk_insert``: 100 rows a statement, the
    GeoPackage R*Tree's and the change counter's per-row triggers set aside and their work
    done once), one transaction per fetched block (the rows are read untimed), and the
    number of rows. (Row by row with every trigger, the floor was slower than the
    import's own writes of the same rows.)"""
    store = SqliteStore(target)
    store.upgrade()
    seconds, rows = 0.0, 0
    try:
        dst = store.conn
        with closing(sqlite3.connect(source)) as src:  # closed: no -wal/-shm left open
            for table in TABLES:
                names = [*COLUMNS[table], *(["geom"] if table in POINT_TABLES else [])]
                cursor = src.execute(f"SELECT {', '.join(names)} FROM {table}")
                while batch := cursor.fetchmany(FETCH_ROWS):
                    frame = pandas.DataFrame.from_records(batch, columns=names)
                    start = time.perf_counter()
                    dst.execute("BEGIN")
                    bulk_insert(dst, table, batch, frame)
                    dst.execute("COMMIT")
                    seconds += time.perf_counter() - start
                    rows += len(batch)
    finally:
        store.close()
    return seconds, rows


@dataclass(frozen=True)
class Row:
    """The figures of one size on one backend."""

    backend: str
    order: str
    rows: int
    first: Run
    again: Run
    imported: int
    floor: float
    floor_rows: int
    fixed: float

    def line(self) -> str:
        """One Markdown table line."""
        rate = self.rows / self.first.wall
        net = self.first.wall - self.fixed
        return (
            f"| {self.backend} | {self.order} | {self.rows:,} | {self.imported:,} | "
            f"{self.first.wall:,.1f} | "
            f"{self.first.cpu:,.1f} | {rate:,.0f} | {self.rows / self.first.cpu:,.0f} | "
            f"{self.first.peak_mib:,.0f} | {self.floor:,.1f} "
            f"({self.floor_rows:,} rows) | {self.floor / self.first.wall:.2f}× | "
            f"{self.floor / net:.2f}× | {self.again.wall:,.1f} "
            f"({self.again.wall / self.first.wall:.0%}) | {self.again.cpu:,.1f} "
            f"({self.again.cpu / self.first.cpu:.0%}) | {self.again.peak_mib:,.0f} |"
        )


def imports(path: Path, rows: int, url: str, work: Path, label: str) -> tuple[Run, Run]:
    """The import of ``path`` into ``url`` then its re-import, each printed once it ends."""
    say(f"{label}: import")
    first = import_once(path, url, work)
    imported = imported_count(first.output)
    say(f"{label}: {describe('import', first, rows)}, {imported:,} imported")
    say(f"{label}: re-import")
    again = import_once(path, url, work)
    say(f"{label}: {describe('re-import', again, rows)}")
    return first, again


def measure(
    backend: str, order: str, path: Path, rows: int, admin_url: str, work: Path, fixed: float
) -> Row:
    """Import, re-import and floor of one file on one backend, each figure printed as soon
    as it is measured."""
    label = f"{backend}, {rows:,} rows, {order}"
    if backend == "sqlite":
        store, floor_file = work / f"{backend}-{rows}.gpkg", work / f"floor-{rows}.gpkg"
        try:
            first, again = imports(path, rows, f"sqlite:///{store}", work, label)
            say(f"{label}: floor")
            floor, floor_rows = sqlite_floor(store, floor_file)
        finally:
            remove_sqlite(store)
            remove_sqlite(floor_file)
    else:
        with postgres_database(admin_url) as url, postgres_database(admin_url) as target:
            first, again = imports(path, rows, url, work, label)
            say(f"{label}: floor")
            floor, floor_rows = postgis_floor(url, target, work)
    say(f"{label}: floor {floor:,.1f} s for {floor_rows:,} rows")
    imported = imported_count(first.output)
    return Row(backend, order, rows, first, again, imported, floor, floor_rows, fixed)


def fixed_cost(backend: str, admin_url: str, work: Path) -> tuple[float, float]:
    """Wall seconds of importing a one-row file (process start, city, indexes, summary)
    with no cached city GIS (it is built and cached), then with it (loaded): the first
    is what the first import on a machine pays, the second every later one."""
    one = work / "one.csv"
    write_rows(one, 1)
    shutil.rmtree(work / "cache", ignore_errors=True)
    walls: list[float] = []
    for stage in ("cold", "warm"):
        say(f"{backend}: fixed cost, city GIS {stage}")
        if backend == "sqlite":
            remove_sqlite(work / "one.gpkg")
            walls.append(import_once(one, f"sqlite:///{work / 'one.gpkg'}", work).wall)
            remove_sqlite(work / "one.gpkg")
        else:
            with postgres_database(admin_url) as url:
                walls.append(import_once(one, url, work).wall)
        say(f"{backend}: fixed cost, city GIS {stage}: {walls[-1]:.1f} s")
    one.unlink()
    return walls[0], walls[1]


def versions(admin_url: str) -> str:
    """Python, key libraries and the server, for the results' header."""
    with psycopg.connect(admin_url) as conn:
        server = conn.execute("SHOW server_version").fetchone()
        postgis = conn.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'postgis'"
        ).fetchone()
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"pandas {pandas.__version__}, shapely {shapely.__version__}, psycopg "
        f"{psycopg.__version__}, sqlite {sqlite3.sqlite_version}, PostgreSQL "
        f"{server[0] if server else '?'} + PostGIS {postgis[0] if postgis else '?'}"
    )


def main() -> int:
    """Print the Markdown table of every size and backend."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="23508,100000")
    parser.add_argument("--backends", default="sqlite,postgis")
    parser.add_argument(
        "--orders", default="reverse", help=f"of the file's copies, among {', '.join(ORDERS)}"
    )
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--db-prefix", default=DB_PREFIX[0], help="of the databases created")
    args = parser.parse_args()
    DB_PREFIX[0] = args.db_prefix
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = args.backends.split(",")
    orders = args.orders.split(",")
    print(versions(args.postgres))
    print(f"load average at start: {os.getloadavg()}", flush=True)
    print(
        "| backend | order | rows | imported | import (s) | import CPU (s) | rows/s | "
        "rows per CPU-s | peak RSS (MiB) | floor (s) | floor / import | floor / (import − fixed) | "
        "re-import (s) | re-import CPU (s) | re-import RSS (MiB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory(prefix="import-scale-") as tmp:
        work = Path(tmp)
        costs = {b: fixed_cost(b, args.postgres, work) for b in backends}
        fixed = {b: warm for b, (_, warm) in costs.items()}
        for rows in sizes:
            for order in orders:
                path = work / f"reports-{rows}-{order}.csv"
                say(f"{rows:,} rows, {order}: writing the file")
                write_rows(path, rows, order=order)
                for backend in backends:
                    row = measure(backend, order, path, rows, args.postgres, work, fixed[backend])
                    print(row.line(), flush=True)
                path.unlink()
    print(
        "fixed cost (one-row import), city GIS built / loaded from its cache: "
        + ", ".join(f"{b} {cold:.1f} / {warm:.1f} s" for b, (cold, warm) in costs.items())
    )
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
