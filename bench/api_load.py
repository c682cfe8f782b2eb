"""Sustained POST /open311/v2/requests.json on PostGIS, against a bare-insert ceiling, in one run.

Two servers, one after the other, each ``uvicorn --workers 2`` on 127.0.0.1 over the same
scratch PostGIS database (loaded with the bundled Paris DansMaRue reports):

- voirie: ``voirie.api.app:app_from_env`` (what ``voirie serve`` runs, without the outbox
  worker), the request read, checked, enriched, deduplicated, routed and written in one
  transaction before the answer;
- the ceiling: a bare FastAPI app with one endpoint that reads the same form and inserts one
  row into one table of that database (a pool of 8 connections per worker, as voirie's).

A separate load process keeps ``--concurrency`` keep-alive connections busy for
``--seconds`` (bodies: real positions and services of the bundled reports moved up to 50 m,
each request with its own Idempotency-Key), and counts requests/s, p50/p99 and errors.
Afterwards every acknowledged id must be in the store exactly once, and the store must hold
no other row of the run. Prints the ratio voirie / ceiling.

Usage::

    python bench/api_load.py [--seconds 20] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
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
from voirie.store.postgis import PostgisStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from submit_latency import PARIS_CSV, SERVER, probe_reports

HOST = "127.0.0.1"
WORKERS = 2
VOIRIE_PATH = "/open311/v2/requests.json"
CEILING_PATH = "/requests"
CEILING_TABLE = "bench_ceiling"


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


# --- the run -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextmanager
def server(target: str, env: dict[str, str], app_dir: Path | None = None) -> Iterator[int]:
    """``uvicorn TARGET --factory --workers 2`` on a free port of 127.0.0.1, until healthy."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--factory",
        "--workers",
        str(WORKERS),
        "--host",
        HOST,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    if app_dir is not None:
        command += ["--app-dir", str(app_dir)]
    process = subprocess.Popen(command, env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{target} did not start") from None
                time.sleep(0.5)
        # Both workers up: one healthy answer may come from the first alone.
        time.sleep(3)
        yield port
    finally:
        process.terminate()
        process.wait(30)


def measure(
    label: str,
    port: int,
    path: str,
    bodies: list[bytes],
    args: argparse.Namespace,
    conn: psycopg.Connection[Any],
    table: str,
) -> dict[str, Any]:
    """Warm up, then the load process against one server; print and return its figures,
    with ``after``: the table's largest id before the measured run."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        pool.apply(
            load,
            (
                port,
                path,
                bodies,
                2.0,
                args.concurrency,
                10 * args.concurrency,
                f"warm-{secrets.token_hex(3)}",
            ),
        )
        last = conn.execute(
            sql.SQL("SELECT coalesce(max(id), 0) FROM {}").format(sql.Identifier(table))
        ).fetchone()
        assert last is not None
        result: dict[str, Any] = pool.apply(
            load,
            (
                port,
                path,
                bodies,
                args.seconds,
                args.concurrency,
                args.max_requests,
                f"run-{secrets.token_hex(3)}",
            ),
        )
    done = len(result["latency_ms"])
    rate = done / result["elapsed_s"]
    p50, p99 = np.percentile(result["latency_ms"], [50, 99]) if done else (np.nan, np.nan)
    result["rate"], result["after"] = rate, int(last[0])
    print(
        f"  {label:<8} {rate:8.1f} requests/s  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  "
        f"errors {len(result['errors'])}  ({done} requests in {result['elapsed_s']:.1f} s)"
    )
    for error in result["errors"][:3]:
        print(f"           error: {error}")
    return result


def check_stored(conn: psycopg.Connection[Any], table: str, result: dict[str, Any]) -> str:
    """Whether each acknowledged id is stored exactly once and the run stored nothing else."""
    wanted = [int(i) for i in result["ids"]]
    found = conn.execute(
        sql.SQL("SELECT count(*), count(DISTINCT id) FROM {} WHERE id = ANY(%s)").format(
            sql.Identifier(table)
        ),
        (wanted,),
    ).fetchone()
    total = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE id > %s").format(sql.Identifier(table)),
        (result["after"],),
    ).fetchone()
    assert found is not None
    assert total is not None
    ok = (len(set(wanted)) == len(wanted) == found[0] == found[1]) and total[0] == len(wanted)
    return (
        f"{'OK' if ok else 'FAILED'}: {len(wanted)} acknowledged, {found[1]} of them stored "
        f"({found[0]} rows), {total[0]} rows of the run in {table}"
    )


def answers(service: Service) -> dict[str, str]:
    """An answer to each required question of a service, as a citizen would give it."""
    examples = {"number": "1", "datetime": "2024-03-31T12:00:00Z"}
    return {
        f"attribute[{a.code}]": a.values[0].key if a.values else examples.get(a.datatype, "x")
        for a in service.attributes
        if a.required
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-requests", type=int, default=200_000)
    args = parser.parse_args()
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
    name = f"voirie_load_{secrets.token_hex(4)}"
    url = f"postgresql://postgres@{HOST}:5432/{name}"
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            store = PostgisStore(url, 1, 2)
            try:
                store.upgrade()
                summary = Pipeline(city, store, gis).imports.import_table(
                    read_csv(PARIS_CSV), DANSMARUE
                )
                key = issue_token(store, city.jurisdiction_id, "load-bench", Role.CLIENT)
            finally:
                store.close()
            print(
                f"PostGIS database with {summary.imported:,} Paris reports; "
                f"{WORKERS} uvicorn workers each; {args.concurrency} connections for "
                f"{args.seconds:g} s from a separate process"
            )
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    f"CREATE TABLE {CEILING_TABLE} (id bigserial PRIMARY KEY, "
                    "external_id text NOT NULL, service_code text NOT NULL, "
                    "lon double precision, lat double precision, description text, "
                    "received_at timestamptz NOT NULL DEFAULT now())"
                )
                env = {"VOIRIE_DATABASE_URL": url, "VOIRIE_CITY": "paris"}
                voirie_bodies = [b + b"&api_key=" + key.encode() for b in bodies]
                with server("voirie.api.app:app_from_env", env) as port:
                    voirie = measure(
                        "voirie", port, VOIRIE_PATH, voirie_bodies, args, conn, "reports"
                    )
                with server(
                    "api_load:ceiling_app",
                    {"BENCH_DATABASE_URL": url},
                    Path(__file__).resolve().parent,
                ) as port:
                    ceiling = measure(
                        "ceiling", port, CEILING_PATH, bodies, args, conn, CEILING_TABLE
                    )
                print(f"  voirie / ceiling: {voirie['rate'] / ceiling['rate']:.2f}x (goal >= 0.5x)")
                print("  voirie store:  " + check_stored(conn, "reports", voirie))
                print("  ceiling table: " + check_stored(conn, CEILING_TABLE, ceiling))
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
