"""Sustained POST /open311/v2/requests.json, interleaved with the servers it is compared to.

Every server runs at once (``uvicorn --workers 2`` each, on 127.0.0.1, over one scratch
database loaded with the bundled Paris DansMaRue reports) and the load goes to one at a time
in short alternating rounds (A B A B ...), so that each side meets the same machine: a
ratio taken from two windows minutes apart measured the load of the machine, not the code
(issue 20). Comparisons (``--compare``):

- ``ceiling`` (PostGIS): voirie (``voirie.api.app:app_from_env``, what ``voirie serve``
  runs without the outbox worker) against a bare FastAPI app that reads the same form and
  inserts one row into one table (a pool of 8 connections per worker, as voirie's);
- ``rate-limits`` (PostGIS): voirie without rate limits, with them in process memory and
  with them in redis (the load comes from one address and one key, so the quotas are
  raised out of reach: every request is charged as at the defaults, none refused);
- ``synchronous`` (sqlite): voirie with ``PRAGMA synchronous = NORMAL`` (the bench patches
  the connection) against ``FULL`` (what the store runs), each on its own copy of the file;
- ``workers`` (PostGIS): the ceiling and voirie with 1, then 2, then 4 workers each
  (issue 14 item 3: how each scales with processes on this machine).

A separate load process keeps ``--concurrency`` keep-alive connections busy for
``--seconds`` per round (bodies: real positions and services of the bundled reports moved
up to 50 m, each request with its own Idempotency-Key) and counts requests/s, p50/p99 and
errors. Each round also records the 1-minute load average and the CPU time of the server's
processes (its supervisor and workers, from ``/proc/<pid>/stat``) per request. After each
round, every acknowledged id must be in the store exactly once and the round must have
stored nothing else. Prints each side's medians and the median ratio to the first side with
its spread (min-max over the rounds).

``--before TREE`` adds to ``ceiling``, ``workers`` and ``synchronous`` (at FULL) a side
served from another copy of the source tree (e.g. ``git archive`` of the commit before a
change; uvicorn's ``--app-dir TREE``, first on ``sys.path``): before and after a change in
one interleaved run, on one database. The other sides serve the tree the bench runs from
(uvicorn puts its working directory first on ``sys.path``, ahead of ``PYTHONPATH``: to
measure a copy of the tree, run the bench from that copy). Each side prints the
``voirie`` package its workers import.

Usage::

    python bench/api_load.py [--compare ceiling|rate-limits|synchronous|workers]
                             [--rounds 5] [--seconds 10] [--concurrency 8] [--before TREE]
                             [--database-prefix voirie_load]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import psycopg
from fastapi import FastAPI, Request
from psycopg import sql
from psycopg_pool import ConnectionPool

from voirie.city import Service, load_city
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.services.auth import Role, issue_token
from voirie.services.pipeline import Pipeline
from voirie.settings import StoreSettings
from voirie.store import open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from submit_latency import PARIS_CSV, SERVER, probe_reports

HOST = "127.0.0.1"
WORKERS = 2
VOIRIE_PATH = "/open311/v2/requests.json"
CEILING_PATH = "/requests"
CEILING_TABLE = "bench_ceiling"
# The load comes from one address with one key: quotas out of its reach, every request
# still charged against them.
UNREACHABLE = "1000000000/minute"
RATES_CHARGED = {
    f"VOIRIE_RATE_{name}": UNREACHABLE
    for name in ("ADDRESS_READS", "ADDRESS_WRITES", "KEY", "SUPPORT")
}
LIMITS_OFF = {"VOIRIE_RATE_LIMITS_ENABLED": "false"}
REDIS_URL = "redis://127.0.0.1:6379"


# --- the ceiling server (imported by uvicorn's workers) ------------------------------------


def ceiling_app() -> FastAPI:
    """A FastAPI app whose one endpoint inserts one row per request (``BENCH_DATABASE_URL``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = ConnectionPool(
            os.environ["BENCH_DATABASE_URL"], min_size=1, max_size=8, open=True
        )
        try:
            yield
        finally:
            app.state.pool.close()

    app = FastAPI(lifespan=lifespan)

    def insert(pool: ConnectionPool, key: str, form: dict[str, str]) -> int:
        with pool.connection() as conn:
            row = conn.execute(
                f"INSERT INTO {CEILING_TABLE} (external_id, service_code, lon, lat, "
                "description) VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (
                    key,
                    form["service_code"],
                    float(form["long"]),
                    float(form["lat"]),
                    form.get("description"),
                ),
            ).fetchone()
        assert row is not None
        return int(row[0])

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(CEILING_PATH, status_code=201)
    async def post(request: Request) -> list[dict[str, str]]:
        from fastapi.concurrency import run_in_threadpool

        form = {k: str(v) for k, v in (await request.form()).items()}
        key = request.headers["Idempotency-Key"]
        new_id = await run_in_threadpool(insert, request.app.state.pool, key, form)
        return [{"service_request_id": str(new_id)}]

    return app


def voirie_synchronous_normal() -> FastAPI:
    """voirie with its sqlite connections at ``synchronous = NORMAL`` (the setting before
    issue 13): the "before" of the synchronous comparison, never used outside the bench."""
    from voirie.api.app import app_from_env

    class Normal(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            if sql.startswith("PRAGMA synchronous"):
                sql = "PRAGMA synchronous = NORMAL"
            return super().execute(sql, *args)

    connect = sqlite3.connect
    sqlite3.connect = lambda *a, **k: connect(*a, factory=Normal, **k)  # type: ignore[assignment]
    return app_from_env()


# --- the load process ----------------------------------------------------------------------


async def _one_connection(
    port: int,
    path: str,
    bodies: list[bytes],
    start: int,
    step: int,
    until: float,
    max_requests: int,
    run: str,
    out: dict[str, Any],
) -> None:
    """One keep-alive connection sending requests until the deadline or the count."""
    reader, writer = await asyncio.open_connection(HOST, port)
    k = start
    try:
        while time.perf_counter() < until and k < max_requests:
            body = bodies[k % len(bodies)]
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Idempotency-Key: {run}-{k}\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            began = time.perf_counter()
            writer.write(head.encode() + body)
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            payload = await reader.readexactly(length)
            out["latency_ms"].append((time.perf_counter() - began) * 1000)
            status = int(status_line.split()[1]) if status_line else 0
            if status == 201:
                out["ids"].append(json.loads(payload)[0]["service_request_id"])
            else:
                out["errors"].append(f"{status}: {payload[:200]!r}")
            k += step
    finally:
        writer.close()


def load(
    port: int,
    path: str,
    bodies: list[bytes],
    seconds: float,
    concurrency: int,
    max_requests: int,
    run: str,
) -> dict[str, Any]:
    """Run in its own process: keep ``concurrency`` connections busy; what came back."""
    out: dict[str, Any] = {"latency_ms": [], "ids": [], "errors": []}

    async def main() -> float:
        start = time.perf_counter()
        until = start + seconds
        await asyncio.gather(
            *(
                _one_connection(port, path, bodies, c, concurrency, until, max_requests, run, out)
                for c in range(concurrency)
            )
        )
        return time.perf_counter() - start

    out["elapsed_s"] = asyncio.run(main())
    return out


# --- the servers ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextmanager
def server(
    target: str, env: dict[str, str], app_dir: Path | None = None, workers: int = WORKERS
) -> Iterator[Server]:
    """``uvicorn TARGET --factory --workers N`` on a free port of 127.0.0.1, until healthy."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--factory",
        "--workers",
        str(workers),
        "--host",
        HOST,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        # A worker loading the city's street index holds the GIL longer than 5 s.
        "--timeout-worker-healthcheck",
        "120",
    ]
    if app_dir is not None:
        command += ["--app-dir", str(app_dir)]
    process = subprocess.Popen(command, env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{target} did not start") from None
                time.sleep(0.5)
        yield Server(port, process.pid)
    finally:
        process.terminate()
        process.wait(30)


@dataclass(frozen=True)
class Server:
    """A running uvicorn: its port and the pid of its supervisor."""

    port: int
    pid: int

    def cpu_s(self) -> float:
        """User + system CPU seconds of the supervisor and its workers so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        pids = [self.pid]
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
        total = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue  # a worker that ended between the two reads
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        return total / ticks


# --- the rounds ----------------------------------------------------------------------------


@dataclass
class Side:
    """One server of the comparison, what it is sent and where it stores."""

    label: str
    target: str
    env: dict[str, str]
    path: str
    bodies: list[bytes]
    table: str
    database: Callable[[], Any]  # a DB-API connection to the store it writes
    app_dir: Path | None = None
    workers: int = WORKERS
    rounds: list[dict[str, Any]] = field(default_factory=list)


def _max_id(side: Side) -> int:
    with side.database() as conn:
        (value,) = conn.execute(f"SELECT coalesce(max(id), 0) FROM {side.table}").fetchone()
    return int(value)


def _stored_once(side: Side, after: int, ids: list[str]) -> bool:
    """Every acknowledged id stored exactly once, and nothing else stored in the round."""
    with side.database() as conn:
        rows = [int(r[0]) for r in conn.execute(f"SELECT id FROM {side.table} WHERE id > {after}")]
    wanted = [int(i) for i in ids]
    return len(set(wanted)) == len(wanted) and sorted(rows) == sorted(wanted)


def one_round(
    side: Side, running: Server, args: argparse.Namespace, pool: Any, seconds: float, tag: str
) -> dict[str, Any]:
    """Load one server for ``seconds``; its figures (with the load average and CPU)."""
    after = _max_id(side)
    load_avg = os.getloadavg()[0]
    cpu_before = running.cpu_s()
    result: dict[str, Any] = pool.apply(
        load,
        (
            running.port,
            side.path,
            side.bodies,
            seconds,
            args.concurrency,
            args.max_requests,
            f"{tag}-{secrets.token_hex(3)}",
        ),
    )
    cpu = running.cpu_s() - cpu_before
    done = len(result["latency_ms"])
    p50, p99 = np.percentile(result["latency_ms"], [50, 99]) if done else (np.nan, np.nan)
    return {
        "rate": done / result["elapsed_s"],
        "p50": float(p50),
        "p99": float(p99),
        "errors": result["errors"],
        "cpu_ms": 1000 * cpu / done if done else np.nan,
        "load": load_avg,
        "done": done,
        "stored_once": _stored_once(side, after, result["ids"]),
    }


def served_package(side: Side) -> str:
    """The ``voirie`` package a side's workers import: uvicorn puts ``--app-dir`` (its
    working directory by default) first on ``sys.path``, ahead of ``PYTHONPATH``."""
    app_dir = "" if side.app_dir is None else str(side.app_dir)
    code = f"import sys; sys.path.insert(0, {app_dir!r}); import voirie; print(voirie.__file__)"
    found = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **side.env},
        capture_output=True,
        text=True,
        check=True,
    )
    return str(Path(found.stdout.strip()).parent)


def run_rounds(sides: list[Side], args: argparse.Namespace) -> None:
    """Start every side, warm each up, then alternate rounds; print rounds and summary."""
    for side in sides:
        print(f"  {side.label} serves {served_package(side)}")
    ctx = mp.get_context("spawn")
    with ExitStack() as stack, ctx.Pool(1) as pool:
        running = [
            stack.enter_context(server(s.target, s.env, s.app_dir, s.workers)) for s in sides
        ]
        time.sleep(3)  # every worker up: one healthy answer may come from the first alone
        for side, up in zip(sides, running, strict=True):
            one_round(side, up, args, pool, 2.0, "warm")
        print(
            f"  {'round':<6}{'server':<16}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}"
            f"{'CPU ms/req':>12}{'load':>7}{'errors':>8}  stored once"
        )
        for n in range(args.rounds):
            # Alternate which side goes first, so that neither always follows the other.
            order = list(zip(sides, running, strict=True))
            for side, up in order if n % 2 == 0 else order[::-1]:
                figures = one_round(side, up, args, pool, args.seconds, f"r{n}")
                side.rounds.append(figures)
                print(
                    f"  {n + 1:<6}{side.label:<16}{figures['rate']:8.1f}{figures['p50']:9.1f}"
                    f"{figures['p99']:9.1f}{figures['cpu_ms']:12.2f}{figures['load']:7.2f}"
                    f"{len(figures['errors']):8d}  {'yes' if figures['stored_once'] else 'NO'}"
                )
                for error in figures["errors"][:2]:
                    print(f"        error: {error}")
    summarise(sides)


def summarise(sides: list[Side]) -> None:
    """Each side's medians over the rounds, and its median ratio to the first side."""
    reference = sides[0]
    print("  medians over the rounds:")
    for side in sides:
        med = {k: float(np.median([r[k] for r in side.rounds])) for k in ("rate", "p50", "p99")}
        cpu = float(np.median([r["cpu_ms"] for r in side.rounds]))
        errors = sum(len(r["errors"]) for r in side.rounds)
        stored = all(r["stored_once"] for r in side.rounds)
        line = (
            f"  {side.label:<16}{med['rate']:8.1f} req/s  p50 {med['p50']:6.1f} ms  "
            f"p99 {med['p99']:6.1f} ms  CPU {cpu:6.2f} ms/request  errors {errors}  "
            f"every acknowledged id stored once: {'yes' if stored else 'NO'}"
        )
        if side is not reference:
            ratios = [
                r["rate"] / ref["rate"]
                for r, ref in zip(side.rounds, reference.rounds, strict=True)
            ]
            line += (
                f"\n  {'':<16}{side.label} / {reference.label}: median "
                f"{np.median(ratios):.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f}x); "
                f"CPU per request {cpu / np.median([r['cpu_ms'] for r in reference.rounds]):.2f}x"
            )
        print(line)


# --- the data ------------------------------------------------------------------------------


def answers(service: Service) -> dict[str, str]:
    """An answer to each required question of a service, as a citizen would give it."""
    examples = {"number": "1", "datetime": "2024-03-31T12:00:00Z"}
    return {
        f"attribute[{a.code}]": a.values[0].key if a.values else examples.get(a.datatype, "x")
        for a in service.attributes
        if a.required
    }


def load_paris(url: str, city: Any, gis: CityGIS) -> str:
    """Import the bundled Paris reports into the store at ``url``; a client key."""
    store = open_store(StoreSettings(database_url=url, pool_min_size=1, pool_max_size=2))
    try:
        store.upgrade()
        summary = Pipeline(city, store, gis).imports.import_table(read_csv(PARIS_CSV), DANSMARUE)
        key = issue_token(store, city.jurisdiction_id, "load-bench", Role.CLIENT)
    finally:
        store.close()
    print(f"{summary.imported:,} Paris reports loaded into {url.split(':', 1)[0]}")
    return key


@contextmanager
def postgis_database(prefix: str = "voirie_load") -> Iterator[str]:
    """A scratch PostGIS database (``PREFIX_`` and a random suffix), dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield f"postgresql://postgres@{HOST}:5432/{name}"
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def postgis_sides(
    compare: str, url: str, key: str, bodies: list[bytes], before: Path | None = None
) -> list[Side]:
    """The sides of a PostGIS comparison (the ceiling's table created here); with
    ``before``, voirie served from that tree too."""

    def database() -> Any:
        return psycopg.connect(url, autocommit=True)

    signed = [b + b"&api_key=" + key.encode() for b in bodies]
    env = {"VOIRIE_DATABASE_URL": url, "VOIRIE_CITY": "paris"}

    def voirie(label: str, extra: dict[str, str]) -> Side:
        target = "voirie.api.app:app_from_env"
        return Side(label, target, env | extra, VOIRIE_PATH, signed, "reports", database)

    if compare == "rate-limits":
        prefix = {"VOIRIE_RATE_STORAGE_PREFIX": f"bench-{secrets.token_hex(4)}"}
        return [
            voirie("limits off", LIMITS_OFF),
            voirie("limits memory", RATES_CHARGED),
            voirie("limits redis", RATES_CHARGED | prefix | {"VOIRIE_RATE_STORAGE_URL": REDIS_URL}),
        ]
    with database() as conn:
        conn.execute(
            f"CREATE TABLE {CEILING_TABLE} (id bigserial PRIMARY KEY, "
            "external_id text NOT NULL, service_code text NOT NULL, "
            "lon double precision, lat double precision, description text, "
            "received_at timestamptz NOT NULL DEFAULT now())"
        )
    ceiling = Side(
        "ceiling",
        "api_load:ceiling_app",
        {"BENCH_DATABASE_URL": url},
        CEILING_PATH,
        bodies,
        CEILING_TABLE,
        database,
        Path(__file__).resolve().parent,
    )
    sides = [ceiling, voirie("voirie", RATES_CHARGED)]
    if before is not None:
        sides.insert(1, replace(voirie("voirie before", RATES_CHARGED), app_dir=before))
    return sides


def sqlite_sides(
    folder: Path, key: str, bodies: list[bytes], before: Path | None = None
) -> list[Side]:
    """voirie at synchronous NORMAL and FULL, each on its own copy of the loaded file;
    with ``before``, voirie at FULL served from that tree too (on a third copy)."""
    signed = [b + b"&api_key=" + key.encode() for b in bodies]
    runs: list[tuple[str, str, dict[str, str]]] = [
        ("sqlite NORMAL", "api_load:voirie_synchronous_normal", {}),
        ("sqlite FULL", "voirie.api.app:app_from_env", {}),
    ]
    if before is not None:
        runs.insert(1, ("sqlite FULL before", "voirie.api.app:app_from_env", {}))
    sides = []
    for label, target, _ in runs:
        copy = folder / f"{label.split(maxsplit=1)[1].lower().replace(' ', '_')}.gpkg"
        shutil.copy(folder / "loaded.gpkg", copy)
        env = {"VOIRIE_DATABASE_URL": f"sqlite:///{copy}", "VOIRIE_CITY": "paris"}

        def database(path: Path = copy) -> Any:
            return sqlite3.connect(path)

        sides.append(
            Side(
                label,
                target,
                env | RATES_CHARGED,
                VOIRIE_PATH,
                signed,
                "reports",
                database,
                before
                if "before" in label and before is not None
                else Path(__file__).resolve().parent,
            )
        )
    return sides


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--compare",
        choices=("ceiling", "rate-limits", "synchronous", "workers"),
        default="ceiling",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0, help="per round and side")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument(
        "--before",
        type=Path,
        help="a copy of the source tree before a change, served as a third side "
        "(ceiling, workers, synchronous)",
    )
    parser.add_argument(
        "--database-prefix",
        default="voirie_load",
        help="name of the scratch PostGIS database before its random suffix",
    )
    args = parser.parse_args()
    if args.before is not None and not (args.before / "voirie" / "__init__.py").exists():
        parser.error(f"--before: {args.before} holds no voirie source tree")
    city = load_city("paris")
    gis = CityGIS(city)
    bodies = [
        urlencode(
            {
                "service_code": r.service_code,
                "lat": f"{r.lat:.7f}",
                "long": f"{r.lon:.7f}",
                "description": "bench load",
                **answers(city.services[r.service_code]),
            }
        ).encode()
        for r in probe_reports(city, gis, 2_000)
    ]
    print(
        f"--compare {args.compare}: uvicorn workers per server {WORKERS} (1, 2, 4 with workers), "
        f"{args.rounds} rounds "
        f"of {args.seconds:g} s per server, alternating; {args.concurrency} connections from "
        f"a separate process; {os.cpu_count()} CPUs"
    )
    if args.compare == "synchronous":
        with tempfile.TemporaryDirectory(prefix="voirie-load-") as folder:
            key = load_paris(f"sqlite:///{Path(folder) / 'loaded.gpkg'}", city, gis)
            run_rounds(sqlite_sides(Path(folder), key, bodies, args.before), args)
        return 0
    with postgis_database(args.database_prefix) as url:
        key = load_paris(url, city, gis)
        pair = postgis_sides(args.compare, url, key, bodies, args.before)
        if args.compare != "workers":
            run_rounds(pair, args)
            return 0
        for n in (1, 2, 4):  # one pair at a time: 4 workers x 8 connections each already
            print(f"-- {n} worker{'s' if n > 1 else ''} per server")
            run_rounds(
                [replace(side, label=f"{side.label} x{n}", workers=n, rounds=[]) for side in pair],
                args,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
