"""Enrichment throughput on the Paris network against the named peers, in one run.

Points are drawn from the real reports' spatial distribution: a bundled report picked at
random (with replacement), moved by a Gaussian jitter (``--jitter-m``, metres, in the
city's metric CRS); each point keeps its report's ``adresse``. At every size, in one run:

* **voirie**: ``CityGIS.enrich`` from WGS84 lon/lat: projection, snap (nearest, or the
  address street within the matching radius), linear reference (position, side, snapped
  point back in WGS84), every zone layer with the distance to the zone's edge, flags; with
  and without addresses;
* **(a) floor**: bare ``STRtree.query_nearest`` of the metric points on the same tree,
  with the same maximum distance (points already projected and built);
* **(b) geopandas**: ``sjoin_nearest`` (max distance, distance column) on the streets, then
  ``sjoin`` (``within``) on every zone layer (points GeoDataFrame already built);
* **(c) PostGIS**: the same streets and zones loaded in a scratch database with GiST
  indexes, points (metric, COPYed beforehand and ANALYZEd); one statement materialises
  KNN ``ORDER BY geom <-> pt LIMIT 1`` in a LATERAL join plus a LATERAL ``ST_Contains``
  per zone layer (``CREATE TEMP TABLE ... AS``). The database is created and dropped here.

Each timing is the best of ``--repeat`` runs (methods interleaved, so a busy machine
slows all of them alike); the in-process methods are compared on CPU time, which other
jobs on a shared machine disturb far less than wall time, PostGIS on wall time. Then the
per-report path (one row, as the API calls it): latency p50/p99 over ``--latency-calls``
calls. At ``--memory-size`` points the voirie enrichment also runs in a fresh subprocess
that reports its peak RSS (``VmHWM``).

Usage::

    python bench/snap.py [--sizes 10000 100000 1000000] [--no-postgis]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import shapely
from psycopg import sql
from psycopg.conninfo import make_conninfo

from voirie.city import load_city
from voirie.gis.enrich import CityGIS
from voirie.ingest.sources import read_csv

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Points:
    """Benchmark points, in WGS84 (voirie's input) and in the metric CRS (the peers')."""

    lon: np.ndarray
    lat: np.ndarray
    x: np.ndarray
    y: np.ndarray
    address: np.ndarray


def draw_points(gis: CityGIS, reports: Path, n: int, jitter_m: float, seed: int) -> Points:
    """``n`` points around real report positions, each with its report's address."""
    raw = read_csv(reports).rows
    lon = pd.to_numeric(raw["longitude"], errors="coerce").to_numpy()
    lat = pd.to_numeric(raw["latitude"], errors="coerce").to_numpy()
    keep = np.isfinite(lon) & np.isfinite(lat)
    address = raw["adresse"].to_numpy(dtype=object)[keep]
    x0, y0 = gis.project(lon[keep], lat[keep])
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(x0), n)
    x = x0[pick] + rng.normal(0.0, jitter_m, n)
    y = y0[pick] + rng.normal(0.0, jitter_m, n)
    wlon, wlat = gis.to_wgs84.transform(x, y)
    return Points(np.asarray(wlon), np.asarray(wlat), x, y, address[pick])


def best_of(repeat: int, runs: dict[str, Callable[[], object]]) -> dict[str, tuple[float, float]]:
    """Best wall and CPU time of each callable, interleaved within each round.

    CPU time counts only this process's work, so it moves far less than wall time when
    other people's jobs share the cores; PostGIS works in its server, so for it only wall
    time means anything.
    """
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {
        name: (min(w for w, _ in values), min(c for _, c in values))
        for name, values in times.items()
    }


class Postgis:
    """A scratch PostGIS database holding the city's streets and zones with GiST indexes."""

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]], gis: CityGIS) -> None:
        self.conn = conn
        self.srid = int(gis.city.config.metric_crs.split(":")[1])
        self.zones = list(gis.zones)
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        assert gis.streets is not None
        self._load(
            "streets",
            "segment_id text, street_name text",
            "LineString",
            gis.streets[["segment_id", "street_name"]],
            gis.streets_geometry,
        )
        for name, index in gis.zones.items():
            self._load(
                f"zone_{name}",
                "code text, name text",
                "Geometry",
                index.zones[["code", "name"]],
                index.polygons,
            )
        conn.execute(
            sql.SQL("CREATE TABLE pts (id integer PRIMARY KEY, geom geometry(Point, {}))").format(
                sql.Literal(self.srid)
            )
        )

    def _load(
        self, table: str, columns: str, kind: str, frame: pd.DataFrame, geometry: np.ndarray
    ) -> None:
        self.conn.execute(
            sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, {}, geom geometry({}, {}))").format(
                sql.Identifier(table), sql.SQL(columns), sql.SQL(kind), sql.Literal(self.srid)
            )
        )
        data = frame.copy()
        data.insert(0, "id", np.arange(len(frame)))
        data["geom"] = shapely.to_wkb(
            shapely.set_srid(geometry, self.srid), hex=True, include_srid=True
        )
        self._copy(table, data)
        self.conn.execute(
            sql.SQL("CREATE INDEX ON {} USING gist (geom)").format(sql.Identifier(table))
        )
        self.conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))

    def _copy(self, table: str, data: pd.DataFrame) -> None:
        buffer = io.StringIO()
        data.to_csv(buffer, index=False, header=False)
        with (
            self.conn.cursor() as cur,
            cur.copy(
                sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(sql.Identifier(table))
            ) as copy,
        ):
            copy.write(buffer.getvalue())

    def load_points(self, points: Points) -> float:
        """Replace the point table (COPY, GiST index, ANALYZE); returns the seconds taken."""
        start = time.perf_counter()
        self.conn.execute("DROP INDEX IF EXISTS pts_geom")
        self.conn.execute("TRUNCATE pts")
        geom = shapely.to_wkb(
            shapely.set_srid(shapely.points(points.x, points.y), self.srid),
            hex=True,
            include_srid=True,
        )
        self._copy("pts", pd.DataFrame({"id": np.arange(len(points.x)), "geom": geom}))
        self.conn.execute("CREATE INDEX pts_geom ON pts USING gist (geom)")
        self.conn.execute("ANALYZE pts")
        return time.perf_counter() - start

    def enrich(self, max_distance_m: float) -> int:
        """KNN snap + point-in-polygon for every zone layer, materialised in a temp table."""
        zone_joins = sql.SQL(" ").join(
            sql.SQL(
                "LEFT JOIN LATERAL (SELECT z.code FROM {} z WHERE ST_Contains(z.geom, p.geom) "
                "LIMIT 1) {} ON true"
            ).format(sql.Identifier(f"zone_{name}"), sql.Identifier(f"z_{name}"))
            for name in self.zones
        )
        zone_columns = sql.SQL(", ").join(
            sql.SQL("{}.code AS {}").format(
                sql.Identifier(f"z_{name}"), sql.Identifier(f"zone_{name}")
            )
            for name in self.zones
        )
        query = sql.SQL(
            "CREATE TEMP TABLE enriched AS "
            "SELECT p.id, s.segment_id, s.street_name, s.distance, {zone_columns} "
            "FROM pts p "
            "LEFT JOIN LATERAL (SELECT segment_id, street_name, "
            "ST_Distance(st.geom, p.geom) AS distance FROM streets st "
            "ORDER BY st.geom <-> p.geom LIMIT 1) s ON s.distance <= {max_distance} "
            "{zone_joins}"
        ).format(
            zone_columns=zone_columns,
            zone_joins=zone_joins,
            max_distance=sql.Literal(max_distance_m),
        )
        self.conn.execute("DROP TABLE IF EXISTS enriched")
        self.conn.execute(query)
        row = self.conn.execute("SELECT count(*) FROM enriched").fetchone()
        return int(row[0]) if row else 0


@contextmanager
def scratch_database(url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A database created for this run and dropped afterwards, whatever happens."""
    name = f"voirie_bench_snap_{int(time.time())}_{np.random.default_rng().integers(1e9)}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        scratch = make_conninfo(url, dbname=name)
        with psycopg.connect(scratch, autocommit=True) as conn:
            yield conn
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def geopandas_peer(gis: CityGIS, frame: gpd.GeoDataFrame) -> Callable[[], object]:
    """(b): sjoin_nearest on the streets, then sjoin (within) on every zone layer."""
    assert gis.streets is not None
    streets = gis.streets[["segment_id", "street_name", "geometry"]]
    zones = {name: index.zones[["code", "geometry"]] for name, index in gis.zones.items()}

    def run() -> gpd.GeoDataFrame:
        out = gpd.sjoin_nearest(
            frame,
            streets,
            how="left",
            max_distance=gis.max_snap_distance_m,
            distance_col="snap_distance_m",
        ).drop(columns="index_right")
        for name, zone in zones.items():
            out = gpd.sjoin(
                out, zone.rename(columns={"code": f"zone_{name}"}), how="left", predicate="within"
            ).drop(columns="index_right")
        return out

    return run


def latency(gis: CityGIS, points: Points, calls: int, with_address: bool) -> np.ndarray:
    """Seconds of ``calls`` one-row enrichments (after a warm-up), as the API makes them."""
    for i in range(50):
        gis.enrich(points.lon[i : i + 1], points.lat[i : i + 1], points.address[i : i + 1])
    out = np.empty(calls)
    for i in range(calls):
        lon, lat = points.lon[i : i + 1], points.lat[i : i + 1]
        address = points.address[i : i + 1] if with_address else None
        start = time.perf_counter()
        gis.enrich(lon, lat, address)
        out[i] = time.perf_counter() - start
    return out


def peak_rss_mib() -> float:
    """This process's peak resident memory. ``VmHWM`` rather than ``ru_maxrss``, which
    Linux carries over from the parent's size at fork through exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_run(args: argparse.Namespace) -> int:
    """Subprocess mode: enrich ``--memory-only`` points once; print peak RSS as JSON."""
    gis = CityGIS(load_city(args.city))
    points = draw_points(gis, args.reports, args.memory_only, args.jitter_m, args.seed)
    before = peak_rss_mib()
    start = time.perf_counter()
    out = gis.enrich(points.lon, points.lat, points.address)
    seconds = time.perf_counter() - start
    peak = peak_rss_mib()
    print(
        json.dumps(
            {"points": len(out), "seconds": seconds, "rss_before_mib": before, "peak_rss_mib": peak}
        )
    )
    return 0


def versions() -> str:
    """Library and machine versions, printed with the figures."""
    names = ["shapely", "geopandas", "pandas", "numpy", "pyproj", "psycopg"]
    found = ", ".join(f"{n} {metadata.version(n)}" for n in names)
    return (
        f"Python {platform.python_version()}, GEOS {shapely.geos_version_string}; {found}; "
        f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores"
    )


def main() -> int:
    """Run the comparison and print throughput, ratios, latency and memory."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--city", default="paris")
    parser.add_argument("--reports", type=Path, default=REPORTS)
    parser.add_argument("--jitter-m", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--repeat",
        type=int,
        default=0,
        help="rounds per size (default: 5 below 100k points, 3 below 1M, 1)",
    )
    parser.add_argument("--latency-calls", type=int, default=2000)
    parser.add_argument("--memory-size", type=int, default=1_000_000)
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--no-postgis", action="store_true")
    parser.add_argument("--memory-only", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_only:
        return memory_run(args)

    print(versions())
    start = time.perf_counter()
    gis = CityGIS(load_city(args.city))
    assert gis.street_tree is not None
    print(
        f"city {args.city}: {len(gis.streets_geometry):,} segments, zone layers "
        f"{', '.join(f'{k} ({len(v.zones):,})' for k, v in gis.zones.items())}; "
        f"indexes built in {time.perf_counter() - start:.1f} s"
    )
    with scratch_database(args.postgres_url) if not args.no_postgis else _nothing() as conn:
        pg = Postgis(conn, gis) if conn is not None else None
        for n in args.sizes:
            _one_size(args, gis, pg, n)
    calls = min(args.latency_calls, max(args.sizes))
    points = draw_points(gis, args.reports, calls, args.jitter_m, args.seed + 1)
    print(f"\nper-report path (one row, {calls:,} calls, after 50 warm-up calls):")
    for label, with_address in (("with address", True), ("without address", False)):
        ms = latency(gis, points, calls, with_address) * 1e3
        print(
            f"  {label:16s} p50 {np.percentile(ms, 50):.3f} ms  p99 "
            f"{np.percentile(ms, 99):.3f} ms  max {ms.max():.3f} ms"
        )
    if args.memory_size:
        cmd = [
            sys.executable,
            __file__,
            "--memory-only",
            str(args.memory_size),
            "--city",
            args.city,
            "--reports",
            str(args.reports),
            "--jitter-m",
            str(args.jitter_m),
            "--seed",
            str(args.seed),
        ]
        result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        print(
            f"\npeak memory, voirie enrichment of {result['points']:,} points with addresses "
            f"in a fresh process: {result['peak_rss_mib']:.0f} MiB "
            f"(city loaded and points drawn: {result['rss_before_mib']:.0f} MiB; "
            f"enrich {result['seconds']:.1f} s)"
        )
    return 0


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def _one_size(args: argparse.Namespace, gis: CityGIS, pg: Postgis | None, n: int) -> None:
    assert gis.street_tree is not None
    tree = gis.street_tree
    points = draw_points(gis, args.reports, n, args.jitter_m, args.seed)
    metric = shapely.points(points.x, points.y)
    frame = gpd.GeoDataFrame(geometry=metric, crs=gis.city.metric_crs)
    repeat = args.repeat or (5 if n < 100_000 else 3 if n < 1_000_000 else 1)
    runs: dict[str, Callable[[], object]] = {
        "(a) STRtree.query_nearest (floor)": lambda: tree.query_nearest(
            metric, max_distance=gis.max_snap_distance_m, return_distance=True
        ),
        "voirie enrich, with addresses": lambda: gis.enrich(points.lon, points.lat, points.address),
        "voirie enrich, coordinates only": lambda: gis.enrich(points.lon, points.lat),
        "(b) geopandas sjoin_nearest + sjoin": geopandas_peer(gis, frame),
    }
    if pg is not None:
        load = pg.load_points(points)
        runs["(c) PostGIS KNN LATERAL + ST_Contains"] = lambda: pg.enrich(gis.max_snap_distance_m)
    times = best_of(repeat, runs)
    # In-process methods compare on CPU time; PostGIS (a server) on wall time.
    cost = {name: wall if name.startswith("(c)") else cpu for name, (wall, cpu) in times.items()}
    floor = cost["(a) STRtree.query_nearest (floor)"]
    peer_b = cost["(b) geopandas sjoin_nearest + sjoin"]
    peer_c = cost.get("(c) PostGIS KNN LATERAL + ST_Contains")
    print(f"\n{n:,} points (best of {repeat}; ratios on CPU time, PostGIS on wall time):")
    print(
        f"  {'method':40s} {'wall s':>8s} {'CPU s':>8s} {'points/s':>11s} {'vs floor':>9s} "
        f"{'vs (b)':>7s} {'vs (c)':>7s}"
    )
    for name, (wall, cpu) in times.items():
        seconds = cost[name]
        ratio_c = f"{peer_c / seconds:6.2f}x" if peer_c else "      -"
        print(
            f"  {name:40s} {wall:8.3f} {cpu:8.3f} {n / seconds:11,.0f} "
            f"{floor / seconds:8.2f}x {peer_b / seconds:6.2f}x {ratio_c}"
        )
    if pg is not None:
        print(f"  (PostGIS point load, not timed above: COPY + GiST + ANALYZE {load:.1f} s)")
    if n == min(args.sizes):
        _agreement(gis, points, metric, frame, runs)


def _agreement(
    gis: CityGIS,
    points: Points,
    metric: np.ndarray,
    frame: gpd.GeoDataFrame,
    runs: dict[str, Callable[[], object]],
) -> None:
    """Sanity check that the methods compute the same thing (on the smallest size)."""
    assert gis.street_tree is not None
    ours = gis.enrich(points.lon, points.lat)
    (idx, _), dist = gis.street_tree.query_nearest(
        metric, max_distance=gis.max_snap_distance_m, return_distance=True
    )
    floor = pd.Series(dist, index=idx).groupby(level=0).min().reindex(range(len(metric)))
    same = np.isclose(ours["snap_distance_m"], floor, equal_nan=True, atol=1e-6)
    peer = runs["(b) geopandas sjoin_nearest + sjoin"]()
    assert isinstance(peer, gpd.GeoDataFrame)
    peer = peer[~peer.index.duplicated()]
    zones = [f"zone_{name}" for name in gis.zones]
    zone_same = {
        z: float((ours[z].fillna("") == peer[z].fillna("").astype(str).to_numpy()).mean())
        for z in zones
    }
    print(
        f"  agreement (coordinates only): snap distance = floor's for {same.mean():.2%}; "
        + ", ".join(f"{z} = sjoin's for {v:.2%}" for z, v in zone_same.items())
    )


if __name__ == "__main__":
    raise SystemExit(main())
