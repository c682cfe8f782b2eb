"""OGC API Features paging with GDAL's defaults, against the download and raw PostGIS.

1. Imports the bundled Paris DansMaRue file (23,508 reports, 22.6k incidents) into a fresh
   PostGIS database with the real ``voirie import`` (kept for reruns with ``--reuse``), and
   starts ``voirie serve`` on it.
2. The README's command, with GDAL's defaults (no open option):
   ``ogr2ogr -f GPKG out.gpkg OAPIF:http://…/ogc incidents -t_srs EPSG:2154``, by the
   system GDAL (Debian 12: 3.6, which always asks for pages of 10 and then follows the
   server's ``next`` links as they are), by the same told ``-oo PAGE_SIZE=1000`` (the
   README's advice for GDAL before 3.8), and by a recent GDAL (the one bundled in the
   pyogrio wheel, driven through ``GDALVectorTranslate``, the function behind
   ``ogr2ogr``; from 3.8 GDAL takes its page size from the API definition) — against the
   peer: download ``/exports/incidents.geojson``, then the same ``ogr2ogr`` of that file.
   The sides are interleaved in each of ``--rounds`` rounds; medians are compared.
   Ratio = the peer's time / OAPIF's time (throughput ratio).
3. Items per second of ``GET /ogc/collections/incidents/items?limit=1000`` pages followed
   through their ``next`` links, against a raw PostGIS keyset query building the same
   GeoJSON (the incident's columns, its latest assignment, the zones of its first report)
   page by page over one connection.

Usage::

    python bench/ogc_paging.py [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
                               [--reuse] [--workdir DIR] [--rounds N]
"""

from __future__ import annotations

import argparse
import ctypes
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
VOIRIE = str(Path(sys.executable).parent / "voirie")
DATABASE = "voirie_bench_ogc_paging"
JURISDICTION = "paris.fr"
PAGE = 1000
OGR2OGR_ARGS = ["-f", "GPKG", "-t_srs", "EPSG:2154"]
SYSTEM_SIDES = {"oapif_system_gdal": [], "oapif_system_gdal_page_1000": ["-oo", "PAGE_SIZE=1000"]}
"""Debian's ogr2ogr with no open option (pages of 10), and told to ask for 1,000."""

RAW_PAGE = """
SELECT i.id, json_build_object(
  'type', 'Feature', 'id', i.id, 'geometry', ST_AsGeoJSON(i.geom)::json,
  'properties', (to_jsonb(i) - 'geom' - 'jurisdiction_id' - 'id')
    || jsonb_build_object('incident_id', i.id, 'rule_id', a.rule_id,
                          'rule_version', a.rule_version, 'routing_reason', a.reason)
    || coalesce(z.zones, '{}'::jsonb))::text
FROM incidents i
LEFT JOIN LATERAL (
  SELECT rule_id, rule_version, reason FROM assignments a2
  WHERE a2.incident_id = i.id ORDER BY a2.id DESC LIMIT 1) a ON true
LEFT JOIN LATERAL (
  SELECT jsonb_object_agg('zone_' || iz.layer, iz.code) AS zones FROM incident_zones iz
  WHERE iz.jurisdiction_id = i.jurisdiction_id AND iz.incident_id = i.id) z ON true
WHERE i.jurisdiction_id = %s AND i.id > %s
ORDER BY i.id LIMIT %s
"""
"""One page of incidents as GeoJSON features, seeking past the last id (keyset)."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def prepare(server_url: str, reuse: bool) -> str:
    """A PostGIS database holding the Paris demo, imported by ``voirie import``."""
    url = urlsplit(server_url)._replace(path=f"/{DATABASE}").geturl()
    with psycopg.connect(server_url, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
        if reuse and exists.fetchone():
            return url
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    env = {**os.environ, "VOIRIE_DATABASE_URL": url}
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [VOIRIE, "import", str(REPORTS), "--format", "dansmarue", "--city", "paris"],
            cwd=folder,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return url


@contextmanager
def serving(database_url: str, folder: Path) -> Iterator[str]:
    """``voirie serve`` (no outbox worker) on a free port; its base URL."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOIRIE_")}
    env |= {"VOIRIE_DATABASE_URL": database_url, "VOIRIE_CITY": "paris"}
    # Paging speed, not the abuse limits: GDAL 3.6's 2,264 requests exceed the default
    # budget of GET requests per client address (1,200 a minute) and get 429 answers.
    env["VOIRIE_RATE_LIMITS_ENABLED"] = "false"
    with (folder / "server.log").open("w") as log:
        process = subprocess.Popen(
            [VOIRIE, "serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=5).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("voirie serve did not start") from None
                time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def _count(path: Path) -> int:
    """Features of the incidents layer of a GeoPackage (system ogrinfo)."""
    out = subprocess.run(
        ["ogrinfo", "-ro", "-so", "-al", str(path)], check=True, capture_output=True, text=True
    ).stdout
    return int(out.split("Feature Count: ")[1].split()[0])


class BundledGdal:
    """The GDAL of the pyogrio wheel, through the C API behind ``ogr2ogr``."""

    def __init__(self) -> None:
        import pyogrio  # configures its GDAL's data and PROJ paths

        pyogrio.list_drivers()
        self.version = pyogrio.__gdal_version_string__
        folder = Path(pyogrio.__file__).parent.parent / "pyogrio.libs"
        self.lib = ctypes.CDLL(str(next(folder.glob("libgdal-*.so*"))))
        self.lib.GDALOpenEx.restype = ctypes.c_void_p
        self.lib.GDALOpenEx.argtypes = [ctypes.c_char_p, ctypes.c_uint, *[ctypes.c_void_p] * 3]
        self.lib.GDALVectorTranslateOptionsNew.restype = ctypes.c_void_p
        self.lib.GDALVectorTranslateOptionsNew.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.lib.GDALVectorTranslate.restype = ctypes.c_void_p
        self.lib.GDALVectorTranslate.argtypes = [
            ctypes.c_char_p,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_int),
        ]
        self.lib.GDALClose.argtypes = [ctypes.c_void_p]
        self.lib.GDALVectorTranslateOptionsFree.argtypes = [ctypes.c_void_p]

    def ogr2ogr(self, dest: Path, source: str, layer: str) -> float:
        """``ogr2ogr -f GPKG -t_srs EPSG:2154 dest source layer``; seconds."""
        start = time.perf_counter()
        src = self.lib.GDALOpenEx(source.encode(), 0x04, None, None, None)  # GDAL_OF_VECTOR
        if not src:
            raise RuntimeError(f"GDAL cannot open {source}")
        args = [a.encode() for a in [*OGR2OGR_ARGS, layer]]
        argv = (ctypes.c_char_p * (len(args) + 1))(*args, None)
        options = self.lib.GDALVectorTranslateOptionsNew(argv, None)
        sources = (ctypes.c_void_p * 1)(src)
        usage_error = ctypes.c_int(0)
        out = self.lib.GDALVectorTranslate(
            str(dest).encode(), None, 1, sources, options, ctypes.byref(usage_error)
        )
        if not out:
            raise RuntimeError("GDALVectorTranslate failed")
        self.lib.GDALClose(out)
        self.lib.GDALVectorTranslateOptionsFree(options)
        self.lib.GDALClose(src)
        return time.perf_counter() - start


def _copy_once(base: str, folder: Path, bundled: BundledGdal | None) -> dict[str, Any]:
    """One copy by each side: the download, Debian's GDAL with its defaults and with
    ``-oo PAGE_SIZE=1000`` (what the README tells a GDAL 3.6 user), the recent GDAL."""
    results: dict[str, Any] = {}
    download = folder / "incidents.geojson"
    out = folder / "download.gpkg"
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    with urllib.request.urlopen(f"{base}/exports/incidents.geojson", timeout=600) as response:
        download.write_bytes(response.read())
    fetched = time.perf_counter() - start
    converted = _timed(["ogr2ogr", *OGR2OGR_ARGS, str(out), str(download)])
    results["download"] = (fetched + converted, _count(out), (fetched, converted))
    source = [f"OAPIF:{base}/ogc", "incidents"]
    for name, options in SYSTEM_SIDES.items():
        out = folder / f"{name}.gpkg"
        out.unlink(missing_ok=True)
        seconds = _timed(["ogr2ogr", *OGR2OGR_ARGS, *options, str(out), *source])
        results[name] = (seconds, _count(out), None)
    if bundled is not None:
        out = folder / "oapif-bundled.gpkg"
        out.unlink(missing_ok=True)
        seconds = bundled.ogr2ogr(out, f"OAPIF:{base}/ogc", "incidents")
        results["oapif_bundled_gdal"] = (seconds, _count(out), None)
    return results


def ogr2ogr_comparison(
    base: str, folder: Path, bundled: BundledGdal | None, rounds: int
) -> list[dict[str, Any]]:
    """The README's ogr2ogr through OAPIF against ogr2ogr of the GeoJSON download, the
    sides interleaved in each of ``rounds`` rounds (the machine is shared)."""
    return [_copy_once(base, folder, bundled) for _ in range(rounds)]


def api_pages(base: str) -> tuple[float, int, int]:
    """Seconds, features and requests to walk every incident by ``limit=1000`` pages."""
    target = urlsplit(base)
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
    path: str | None = f"/ogc/collections/incidents/items?limit={PAGE}"
    features = requests = 0
    start = time.perf_counter()
    while path:
        conn.request("GET", path)
        body = json.loads(conn.getresponse().read())
        features += len(body["features"])
        requests += 1
        following = [link["href"] for link in body["links"] if link["rel"] == "next"]
        path = following[0].removeprefix(base) if following else None
    seconds = time.perf_counter() - start
    conn.close()
    return seconds, features, requests


def raw_pages(url: str) -> tuple[float, int]:
    """Seconds and features to walk every incident by raw keyset pages of GeoJSON text."""
    features = 0
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        last = 0
        while True:
            rows = conn.execute(RAW_PAGE, (JURISDICTION, last, PAGE)).fetchall()
            if not rows:
                break
            text = '{"type":"FeatureCollection","features":[' + ",".join(r[1] for r in rows)
            json.loads(text + "]}")  # parsed like the API's pages are
            features += len(rows)
            last = int(rows[-1][0])
        seconds = time.perf_counter() - start
    return seconds, features


def versions(url: str, bundled: BundledGdal | None) -> str:
    system_gdal = subprocess.run(
        ["ogr2ogr", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    with psycopg.connect(url) as conn:
        server = conn.execute("SHOW server_version").fetchone()
        postgis = conn.execute("SELECT postgis_lib_version()").fetchone()
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}; system {system_gdal}; bundled GDAL "
        f"{bundled.version if bundled else '-'}; PostgreSQL {server[0] if server else '?'}, "
        f"PostGIS {postgis[0] if postgis else '?'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--reuse", action="store_true", help="keep an imported database")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of copies")
    args = parser.parse_args()
    url = prepare(args.postgres, args.reuse)
    try:
        bundled: BundledGdal | None = BundledGdal()
    except (ImportError, OSError, StopIteration) as exc:
        print(f"no bundled GDAL ({exc}); system GDAL only")
        bundled = None
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.workdir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        with serving(url, folder) as base:
            print(versions(url, bundled))
            print(f"load average before: {os.getloadavg()[0]:.2f}")
            rounds = ogr2ogr_comparison(base, folder, bundled, args.rounds)
            api = api_pages(base)
            raw = raw_pages(url)
            print(f"load average after: {os.getloadavg()[0]:.2f}")
    report(rounds, api, raw)
    return 0


def report(
    rounds: list[dict[str, Any]], api: tuple[float, int, int], raw: tuple[float, int]
) -> None:
    """Each copy's median over the rounds (every round's seconds in brackets), its
    throughput against the download's, then the API's pages against raw PostGIS."""

    def seconds(name: str) -> list[float]:
        return [one[name][0] for one in rounds]

    peer = statistics.median(seconds("download"))
    count = rounds[0]["download"][1]
    parts = [one["download"][2] for one in rounds]
    print(f"\nogr2ogr -f GPKG -t_srs EPSG:2154, all incidents ({count:,}), {len(rounds)} rounds:")
    fetched = statistics.median(p[0] for p in parts)
    converted = statistics.median(p[1] for p in parts)
    print(f"  peer: GeoJSON download {fetched:.2f} s + ogr2ogr of it {converted:.2f} s", end="")
    print(f" = {peer:.2f} s {[round(s, 2) for s in seconds('download')]}")
    for name in (*SYSTEM_SIDES, "oapif_bundled_gdal"):
        if name in rounds[0]:
            median = statistics.median(seconds(name))
            counts = {one[name][1] for one in rounds}
            print(
                f"  {name}: {median:.2f} s {[round(s, 2) for s in seconds(name)]}, "
                f"{'/'.join(f'{c:,}' for c in counts)} features, "
                f"{peer / median:.2f}x the download's throughput"
            )
    api_s, api_n, api_requests = api
    raw_s, raw_n = raw
    print(f"\nlimit={PAGE} pages of incidents, following next links:")
    print(f"  API: {api_n:,} features in {api_requests} requests, {api_s:.2f} s", end="")
    print(f", {api_n / api_s:,.0f} items/s")
    print(f"  raw PostGIS keyset: {raw_n:,} features, {raw_s:.2f} s, {raw_n / raw_s:,.0f} items/s")
    print(f"  ratio API / raw: {(api_n / api_s) / (raw_n / raw_s):.2f}x")


if __name__ == "__main__":
    sys.exit(main())
