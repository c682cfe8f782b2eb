"""The public reads under load, against a bare endpoint running the same SQL, in one run.

For each database given (PostGIS or sqlite, at whatever number of incidents it holds) and
each number of workers (1, 2), two servers run side by side on 127.0.0.1:

- voirie: ``uvicorn voirie.api.app:app_from_env --factory --workers N`` (what
  ``voirie serve --workers N`` runs), rate limits off, no access log;
- the floor: a bare FastAPI app (``bare_app`` below, same uvicorn options) whose endpoints
  execute the SQL voirie's read executes (built by the same ``voirie.store.selection``
  functions, values bound) and return its rows as JSON (orjson), or the tile's bytes.

Each public read (nearby, OGC items of a bbox, one OGC item, Open311 GET requests, a
vector tile) runs at concurrency 1 and 16 for ``--seconds`` per round; rounds alternate
between the two servers (voirie, floor, voirie, floor) so that the machine's load hits both
alike. Prints p50, p99 and requests/s of each, and the ratios the issue asks for:
voirie's requests/s over the floor's (goal ≥ 0.5) and voirie's p99 over the floor's
(goal ≤ 2).

Usage::

    python bench/reads.py postgresql://postgres@127.0.0.1:5432/voirie_bench_reads \
        sqlite:////tmp/reads_100k.gpkg [--seconds 3] [--workers 1 2] [--reads Open311] \
        [--baseline /tmp/voirie-before] [--http h11|httptools] [--loop asyncio|uvloop]

``--http``/``--loop`` run every server (voirie, the baseline, the floor) with the same
uvicorn parser and loop; httptools and uvloop must be importable (``uvicorn[standard]``).

The stores are filled by ``bench/export.py``'s ``synthesize`` (the bundled Paris reports
imported, their incidents copied with a 30 m jitter up to the number asked).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request, Response

HOST = "127.0.0.1"
JURISDICTION = "paris.fr"
CITY = "paris"
LAT, LON, RADIUS_M = 48.8735, 2.3631, 500.0
BOX = (2.35, 48.86, 2.37, 48.875)
TILE = (14, 8300, 5634)
VOIRIE_APP = "voirie.api.app:app_from_env"
OPEN = ("acknowledged", "in_progress", "new", "scheduled")
# name: (voirie's path, the floor's path)
READS: dict[str, tuple[str, str]] = {
    "nearby 500 m": (f"/api/v1/nearby?lat={LAT}&lon={LON}&radius_m={RADIUS_M:g}", "/nearby"),
    "OGC items bbox limit=100": (
        "/ogc/collections/incidents/items?bbox={},{},{},{}&limit=100".format(*BOX),
        "/items",
    ),
    "OGC item": ("/ogc/collections/incidents/items/1", "/item/1"),
    "Open311 GET requests": ("/open311/v2/requests.json", "/requests"),
    "tile z14": ("/tiles/incidents/{}/{}/{}.mvt".format(*TILE), "/tile"),
}


# --- the floor (imported by uvicorn's workers) ---------------------------------------------


class _Database:
    """Runs one statement and returns its rows: a psycopg pool or a sqlite connection per
    thread, as voirie's stores."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgis = url.startswith("postgresql")
        if self.postgis:
            from psycopg_pool import ConnectionPool

            # As voirie's store opens its own: no JIT, one statement without BEGIN/COMMIT.
            options = {"options": "-c jit=off", "autocommit": True}
            self.pool = ConnectionPool(url, min_size=1, max_size=8, kwargs=options, open=True)
        self.local = threading.local()

    def rows(self, text: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        if self.postgis:
            with self.pool.connection() as conn:
                return conn.execute(text, tuple(params)).fetchall()  # type: ignore[arg-type]
        conn = getattr(self.local, "conn", None)
        if conn is None:
            from voirie.store import gpkg

            conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), check_same_thread=False)
            gpkg.register_functions(conn)
            self.local.conn = conn
        return conn.execute(text, tuple(params)).fetchall()


def _json(rows: list[tuple[Any, ...]]) -> Response:
    return Response(
        orjson.dumps(rows, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC),
        media_type="application/json",
    )


def bare_app() -> FastAPI:
    """The floor: each endpoint runs the SQL of one public read and returns its rows."""
    from pyproj import Transformer

    from voirie.city import load_city
    from voirie.codecs import mvt
    from voirie.gis.metric import bbox_around
    from voirie.store import postgis, sqlite
    from voirie.store.knn import LocalMetric, knn_sql
    from voirie.store.selection import Selection, count_sql, select_sql

    lambert = Transformer.from_crs(4326, 2154, always_xy=True)

    def project(x: Any, y: Any) -> Any:
        return lambert.transform(x, y)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = _Database(os.environ["BENCH_DATABASE_URL"])
        # The city's zone layers: a page of features reads its zone code in each.
        app.state.zones = [zone.name for zone in load_city(CITY).config.zones]
        # Tiles: the store's own statement (PostGIS's ST_AsMVT; sqlite encodes in Python),
        # through the store, whatever shape its SQL takes.
        url = app.state.db.url
        app.state.tiles = (
            postgis.PostgisStore(url)
            if app.state.db.postgis
            else sqlite.SqliteStore(url.removeprefix("sqlite:///"))
        )
        yield
        app.state.tiles.close()

    app = FastAPI(lifespan=lifespan)

    def db(request: Request) -> _Database:
        found: _Database = request.app.state.db
        return found

    def dialect(database: _Database) -> Any:
        return postgis.DIALECT if database.postgis else sqlite.DIALECT

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/nearby")
    def nearby(request: Request) -> Response:
        database = db(request)
        box = bbox_around(LON, LAT, RADIUS_M)
        selection = Selection(statuses=OPEN, bbox=box, limit=100)
        if database.postgis:  # voirie's statement: the page and the total
            local = LocalMetric.around((LON, LAT), RADIUS_M, project)
            text, params = knn_sql(
                "incidents", JURISDICTION, selection, dialect(database), local, RADIUS_M, 2154
            )
        else:  # sqlite measures in Python: the floor reads the rows of the box
            text, params = select_sql("incidents", JURISDICTION, selection, dialect(database))
        return _json(database.rows(text, params))

    @app.get("/items")
    def items(request: Request) -> Response:
        database = db(request)
        selection = Selection(bbox=BOX, limit=100)
        zones = request.app.state.zones
        text, params = select_sql("incidents", JURISDICTION, selection, dialect(database), zones)
        rows = database.rows(text, params)
        text, params = count_sql("incidents", JURISDICTION, selection, dialect(database))
        matched = database.rows(text, params)[0][0]
        return _json([matched, rows])

    @app.get("/item/{incident_id}")
    def item(incident_id: int, request: Request) -> Response:
        database = db(request)
        selection = Selection(ids=(incident_id,), limit=1)
        zones = request.app.state.zones
        text, params = select_sql("incidents", JURISDICTION, selection, dialect(database), zones)
        return _json(database.rows(text, params))

    @app.get("/requests")
    def requests(request: Request) -> Response:
        database = db(request)
        mark = dialect(database).placeholder
        newest = database.rows(
            f"SELECT max(requested_at) FROM reports WHERE jurisdiction_id = {mark}",
            (JURISDICTION,),
        )[0][0]
        end = _instant(newest) or datetime.now(UTC)
        selection = Selection(start=end - timedelta(days=90), end=end, limit=100)
        text, params = select_sql("reports", JURISDICTION, selection, dialect(database))
        return _json(database.rows(text, params))

    @app.get("/tile")
    def tile(request: Request) -> Response:
        z, x, y = TILE
        content = request.app.state.tiles.incident_tile(JURISDICTION, z, x, y)
        return Response(content, media_type=mvt.MEDIA_TYPE)

    return app


def _instant(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


# --- the load process ----------------------------------------------------------------------


async def _one_connection(port: int, path: str, until: float, out: dict[str, Any]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    try:
        while time.perf_counter() < until:
            began = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            out["latency_ms"].append((time.perf_counter() - began) * 1000)
            status = int(status_line.split()[1]) if status_line else 0
            if status != 200:
                out["errors"].append(status)
    finally:
        writer.close()


def load(port: int, path: str, seconds: float, concurrency: int) -> dict[str, Any]:
    """Run in its own process: keep ``concurrency`` keep-alive connections busy."""
    out: dict[str, Any] = {"latency_ms": [], "errors": []}

    async def main() -> float:
        start = time.perf_counter()
        until = start + seconds
        await asyncio.gather(*(_one_connection(port, path, until, out) for _ in range(concurrency)))
        return time.perf_counter() - start

    out["elapsed_s"] = asyncio.run(main())
    return out


# --- the run -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextmanager
def server(
    target: str, workers: int, env: dict[str, str], options: Sequence[str] = ()
) -> Iterator[int]:
    """``uvicorn TARGET --factory --workers N [OPTIONS]`` on a free port, until every
    worker answers."""
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
        "--app-dir",
        os.path.dirname(os.path.abspath(__file__)),
        *options,
    ]
    # From the bench's folder: ``python -m`` puts its working directory first on sys.path,
    # ahead of PYTHONPATH, so started from a checkout every server would import that
    # checkout's voirie and ``--baseline`` would measure the same code twice.
    process = subprocess.Popen(
        command, env={**os.environ, **env}, cwd=os.path.dirname(os.path.abspath(__file__))
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{target} did not start") from None
                time.sleep(0.5)
        time.sleep(2.0 * workers)  # every worker up, not just the first
        yield port
    finally:
        process.terminate()
        process.wait(30)


def _figures(runs: list[dict[str, Any]]) -> tuple[float, float, float, str]:
    """Requests/s, p50 and p99 (ms), and the answers other than 200 with their statuses
    ("0", "4 (503×4)")."""
    latencies = [v for run in runs for v in run["latency_ms"]]
    elapsed = sum(run["elapsed_s"] for run in runs)
    statuses = Counter(status for run in runs for status in run["errors"])
    errors = str(statuses.total())
    if statuses:
        errors += " (" + ", ".join(f"{s}×{n}" for s, n in sorted(statuses.items())) + ")"
    if not latencies:
        return 0.0, float("nan"), float("nan"), errors
    p50, p99 = np.percentile(latencies, [50, 99])
    return len(latencies) / elapsed, float(p50), float(p99), errors


def _warm_up(pool: Any, port: int, path: str, concurrency: int) -> None:
    """Rounds of 0.5 s until one answers every request within a second (at most 10): a
    worker's first public read fills its caches (11-16 s at 1M incidents), and with two
    workers the second one's first read would otherwise land in a measured round."""
    for _ in range(10):
        run = pool.apply(load, (port, path, 0.5, concurrency))
        if max(run["latency_ms"], default=0.0) < 1000:
            return


def _wanted(name: str, wanted: Sequence[str]) -> bool:
    """Whether ``--reads`` asks for the read ``name``: named exactly, or by the start of
    its name when no read has that exact name ("OGC item" is one read, "OGC" both)."""
    return any(name == w or (w not in READS and name.startswith(w)) for w in wanted)


def bench(url: str, workers: int, args: argparse.Namespace) -> None:
    """Every read at each concurrency on both servers (three with ``--baseline``), rounds
    interleaved; one table row per server against the same floor."""
    common = {"VOIRIE_RATE_LIMITS_ENABLED": "false", "PYTHONWARNINGS": "ignore"}
    voirie_env = {**common, "VOIRIE_DATABASE_URL": url, "VOIRIE_CITY": CITY}
    bare_env = {**common, "BENCH_DATABASE_URL": url}
    ctx = mp.get_context("spawn")
    options = _server_options(args)  # the same for every server: no advantage to either
    with ExitStack() as stack:
        ports = {"voirie": stack.enter_context(server(VOIRIE_APP, workers, voirie_env, options))}
        if args.baseline:  # the same app from another source tree, e.g. before a change
            path = [os.path.abspath(args.baseline), *filter(None, [os.environ.get("PYTHONPATH")])]
            before_env = {**voirie_env, "PYTHONPATH": os.pathsep.join(path)}
            ports["before"] = stack.enter_context(server(VOIRIE_APP, workers, before_env, options))
        ports["floor"] = stack.enter_context(server("reads:bare_app", workers, bare_env, options))
        pool = stack.enter_context(ctx.Pool(1))
        for name, (voirie_path, bare_path) in READS.items():
            if args.reads and not _wanted(name, args.reads):
                continue
            paths = dict.fromkeys(ports, voirie_path) | {"floor": bare_path}
            for concurrency in args.concurrency:
                runs: dict[str, list[dict[str, Any]]] = {label: [] for label in ports}
                for label, port in ports.items():
                    _warm_up(pool, port, paths[label], concurrency)
                for _ in range(args.rounds):
                    for label, port in ports.items():
                        runs[label].append(
                            pool.apply(load, (port, paths[label], args.seconds, concurrency))
                        )
                f_rate, f50, f99, f_err = _figures(runs["floor"])
                for label in [label for label in ports if label != "floor"]:
                    v_rate, v50, v99, v_err = _figures(runs[label])
                    shown = name if label == "voirie" else f"{name} ({label}: {args.baseline})"
                    print(
                        f"| {shown} | {concurrency} | {workers} | {v50:.1f} / {v99:.1f} | "
                        f"{v_rate:,.0f} | {f50:.1f} / {f99:.1f} | {f_rate:,.0f} | "
                        f"**{v_rate / f_rate:.2f}×** | **{v99 / f99:.2f}×** | "
                        f"{v_err} / {f_err} |",
                        flush=True,
                    )


def _server_options(args: argparse.Namespace) -> list[str]:
    """uvicorn's HTTP parser and event loop as asked (``auto``: uvicorn's own choice,
    httptools and uvloop when importable, else h11 and asyncio)."""
    return ["--http", args.http, "--loop", args.loop]


def main() -> int:
    """Print one Markdown table per database."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("databases", nargs="+", help="VOIRIE_DATABASE_URL of each store")
    parser.add_argument("--seconds", type=float, default=3.0, help="per round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per server")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--baseline",
        help="a source tree of voirie (e.g. a copy from before a change) served too, in the "
        "same interleaved rounds, its rows labelled 'before'",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument(
        "--http",
        choices=["auto", "h11", "httptools"],
        default="auto",
        help="uvicorn's HTTP parser on every server (httptools: uvicorn[standard])",
    )
    parser.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="uvicorn's event loop on every server (uvloop: uvicorn[standard])",
    )
    parser.add_argument(
        "--reads",
        nargs="+",
        default=[],
        help="only these reads: a full name, or the start of names (e.g. Open311)",
    )
    args = parser.parse_args()
    for url in args.databases:
        print(
            f"\n{url.rsplit('/', 1)[-1]} ({url.split(':', 1)[0]}), load {os.getloadavg()}, "
            f"uvicorn {' '.join(_server_options(args))}\n"
        )
        print(
            "| read | concurrency | workers | voirie p50 / p99 ms | voirie req/s | "
            "floor p50 / p99 ms | floor req/s | req/s ratio | p99 ratio | errors v / f |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for workers in args.workers:
            bench(url, workers, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
