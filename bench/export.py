"""GeoJSON export and vector tiles over a million incidents, against their usual peers.

1. Builds N synthetic incidents (default 1,000,000) from the real Paris distribution: the
   bundled DansMaRue file (23,508 reports) is imported with the real ``voirie import``,
   then its incidents are copied with their services, teams, zones and assignments, each
   copy moved by a random offset (normal, 30 m) and given a status drawn from a fixed mix.
   Both backends get the same data; databases are kept in ``--workdir`` for reruns.
2. GeoJSON export of the whole incident layer, each in a fresh process (peak RSS is that
   process's own; "growth" is the peak minus the RSS before the export starts):
   voirie (``layer_chunks`` + ``geojson_chunks``, what ``/exports/incidents.geojson``
   streams), geopandas ``to_file`` and ``to_json`` of the same layer, and a PostGIS
   ``json_agg`` query streamed out with COPY. voirie also runs on the first 10 % of the
   layer, to show that its memory does not grow with the layer.
3. MVT tiles at z10 (the whole city), z12 (the centre) and z14 (a few streets of the centre):
   voirie's ``Store.incident_tile`` on each backend against a raw PostGIS query; median of 5.
   Below ``tiles.CLUSTER_BELOW_ZOOM`` voirie serves one point per cell, so the peer there is
   the usual hand-written aggregation (``RAW_CELL_MVT``), checked to give the same cells and
   counts as voirie before it is timed; from z14 it is the per-incident ``RAW_MVT``.

Usage::

    python bench/export.py [--incidents 1000000] [--postgres postgresql://...] [--workdir DIR]
                           [--tiles-only]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
VOIRIE = str(Path(sys.executable).parent / "voirie")
JURISDICTION = "paris.fr"
ID_STRIDE = 10_000_000
JITTER_M = 30.0
STATUS_MIX = {
    "new": 0.40,
    "acknowledged": 0.15,
    "scheduled": 0.05,
    "in_progress": 0.15,
    "resolved": 0.20,
    "closed": 0.05,
}
CENTRE = (2.3522, 48.8566)  # Paris, Hôtel de Ville


def _tile(z: int) -> tuple[int, int, int]:
    """The XYZ tile holding the centre of Paris at zoom ``z``."""
    lon, lat = CENTRE
    n = 1 << z
    y = (1 - np.arcsinh(np.tan(np.radians(lat))) / np.pi) / 2 * n
    return z, int((lon + 180) / 360 * n), int(y)


TILES = {"z10": _tile(10), "z12": _tile(12), "z14": _tile(14)}
RUNS = 5
RAW_MVT = """
SELECT ST_AsMVT(q, 'incidents', 4096, 'geom', 'id') FROM (
  SELECT i.id, ST_AsMVTGeom(ST_Transform(i.geom, 3857), ST_TileEnvelope(%(z)s, %(x)s, %(y)s))
         AS geom, i.service_code, i.status, i.team, i.priority, i.report_count
  FROM incidents i
  WHERE i.geom && ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4326)) AS q"""
# The aggregated peer: incidents in the tile and its 64-unit buffer (as voirie's tiles), grouped
# by 64-unit cell of their tile coordinates, one point at each cell's centre. The LEAST keeps
# points on the buffer's far edge (4160) in the last cell, as voirie does, rather than in a
# cell centred outside the buffer. Candidates are fetched half a unit beyond the buffer: a point
# there rounds onto its edge and ST_AsMVTGeom keeps it. Feature ids are left out (voirie
# numbers its cells).
RAW_CELL_MVT = """
SELECT ST_AsMVT(q, 'incidents', 4096, 'geom') FROM (
  SELECT ST_MakePoint(cx * 64 + 32, cy * 64 + 32) AS geom, count(*) AS "count",
         count(*) FILTER (WHERE status = ANY(%(open)s)) AS "open",
         sum(report_count) AS reports
  FROM (
    SELECT LEAST(floor(ST_X(p.geom) / 64), 64) AS cx, LEAST(floor(ST_Y(p.geom) / 64), 64) AS cy,
           p.status, p.report_count
    FROM (
      SELECT ST_AsMVTGeom(ST_Transform(i.geom, 3857), ST_TileEnvelope(%(z)s, %(x)s, %(y)s),
                          4096, 64) AS geom, i.status, i.report_count
      FROM incidents i
      WHERE i.geom && ST_Transform(
              ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => 64.5 / 4096.0), 4326)) AS p
    WHERE p.geom IS NOT NULL) AS c
  GROUP BY cx, cy) AS q"""


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- synthetic data


def _raw(url: str, table: str) -> pd.DataFrame:
    """A whole table as stored (ids, lon/lat, datetimes as the backend returns them)."""
    from voirie.store.schema import COLUMNS

    columns = ", ".join(COLUMNS[table])
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            rows = conn.execute(f"SELECT {columns} FROM {table} ORDER BY id").fetchall()
    else:
        with psycopg.connect(url) as conn:
            rows = conn.execute(f"SELECT {columns} FROM {table} ORDER BY id").fetchall()
    return pd.DataFrame(rows, columns=list(COLUMNS[table]))


def synthesize(url: str, n: int, workdir: Path) -> int:
    """Fill the store at ``url`` with ``n`` incidents (kept when already there)."""
    from voirie.settings import StoreSettings
    from voirie.store import open_store

    store = open_store(StoreSettings(database_url=url))
    try:
        store.upgrade()
        have = store.count("incidents", JURISDICTION)
        if have >= n:
            return have
        if have == 0:
            env = {**os.environ, "VOIRIE_DATABASE_URL": url}
            subprocess.run(
                [VOIRIE, "import", str(REPORTS), "--format", "dansmarue", "--city", "paris"],
                env=env,
                cwd=workdir,
                check=True,
                capture_output=True,
            )
        base = _raw(url, "incidents")
        base = base[base["id"] < ID_STRIDE].reset_index(drop=True)
        assignments = _raw(url, "assignments")
        assignments = assignments[assignments["incident_id"] < ID_STRIDE]
        rng = np.random.default_rng(2154)
        copy = 1
        have = store.count("incidents", JURISDICTION)
        while have < n:
            frame = base.iloc[: n - have].copy()
            frame["id"] = frame["id"] + copy * ID_STRIDE
            lat = frame["lat"].to_numpy(float)
            frame["lat"] = lat + rng.normal(0, JITTER_M / 111_000, len(frame))
            frame["lon"] = frame["lon"].to_numpy(float) + rng.normal(
                0, JITTER_M / (111_000 * np.cos(np.radians(lat))), len(frame)
            )
            frame["status"] = rng.choice(list(STATUS_MIX), len(frame), p=list(STATUS_MIX.values()))
            moved = assignments[assignments["incident_id"].isin(base["id"].iloc[: n - have])]
            moved = moved.assign(
                id=moved["id"] + copy * ID_STRIDE,
                incident_id=moved["incident_id"] + copy * ID_STRIDE,
            )
            with store.transaction(JURISDICTION) as uow:
                uow.tables.insert("incidents", frame)
                uow.tables.insert("assignments", moved)
            have += len(frame)
            copy += 1
            print(f"  {url.split('/')[-1]}: {have:,} incidents", file=sys.stderr)
        if url.startswith("postgres"):
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("ANALYZE")
        return have
    finally:
        store.close()


# ---------------------------------------------------------------- one export per process


def _pipeline(url: str) -> Any:
    from voirie.city import load_city
    from voirie.services.pipeline import Pipeline
    from voirie.settings import StoreSettings
    from voirie.store import open_store

    return Pipeline(load_city("paris"), open_store(StoreSettings(database_url=url)))


def child(kind: str, url: str, out: Path, limit: int | None) -> dict[str, float]:
    """Run one export; seconds, rows, bytes, RSS before and peak RSS."""
    from voirie.store.selection import Selection

    if kind == "json_agg":
        from voirie.store.postgis import DIALECT
        from voirie.store.selection import select_sql

        text, params = select_sql("incidents", JURISDICTION, Selection(), DIALECT)
        query = (
            "COPY (SELECT json_build_object('type', 'FeatureCollection', 'features', "
            "json_agg(ST_AsGeoJSON(t.*, 'geom')::json)) FROM (SELECT q.*, "
            "ST_SetSRID(ST_MakePoint(q.lon, q.lat), 4326) AS geom FROM ("
            + text
            + ") AS q) AS t) TO STDOUT"
        )
        before = _peak_mib()
        start = time.perf_counter()
        with psycopg.connect(url) as conn, out.open("wb") as sink:
            # COPY takes no bound parameters: bind them client-side.
            bound = psycopg.ClientCursor(conn).mogrify(query, params)
            with conn.cursor() as cur, cur.copy(bound) as copy:
                for block in copy:
                    sink.write(block)
        seconds = time.perf_counter() - start
        rows = -1
    else:
        from voirie.maps import export

        pipeline = _pipeline(url)
        selection = Selection(limit=limit)
        before = _peak_mib()
        start = time.perf_counter()
        if kind == "voirie":
            counted = export._Counted(export.layer_chunks(pipeline, "incidents", selection))
            with out.open("wb") as sink:
                for chunk in export.geojson_chunks(counted, "incident_id"):
                    sink.write(chunk)
            rows = counted.rows
        elif kind == "to_file":
            frame = pipeline.reads.incidents(selection)
            frame.to_file(out, driver="GeoJSON", engine="pyogrio")
            rows = len(frame)
        else:
            frame = pipeline.reads.incidents(selection)
            # geopandas' json.dumps cannot encode Timestamps: str() them, as a user would.
            out.write_text(frame.to_json(default=str), encoding="utf-8")
            rows = len(frame)
        seconds = time.perf_counter() - start
        pipeline.store.close()
    return {
        "seconds": seconds,
        "rows": rows,
        "bytes": out.stat().st_size,
        "before_mib": before,
        "peak_mib": _peak_mib(),
    }


def run_child(kind: str, url: str, workdir: Path, limit: int | None = None) -> dict[str, float]:
    out = workdir / f"out-{kind}.geojson"
    done = subprocess.run(
        [sys.executable, __file__, "_child", kind, url, str(out), str(limit or 0)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    out.unlink(missing_ok=True)
    return result


# ---------------------------------------------------------------- tiles


def _median_seconds(work: Callable[[], bytes]) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(RUNS):
        start = time.perf_counter()
        size = len(work())
        times.append(time.perf_counter() - start)
    return statistics.median(times), size


def _raw_tile(conn: psycopg.Connection[Any], z: int, x: int, y: int) -> bytes:
    """The peer's tile: aggregated per cell where voirie aggregates, else per incident."""
    from voirie.codecs import mvt as tiles

    query = RAW_CELL_MVT if z < tiles.CLUSTER_BELOW_ZOOM else RAW_MVT
    row = conn.execute(query, {"z": z, "x": x, "y": y, "open": tiles.OPEN_STATUS_CODES}).fetchone()
    return bytes(row[0]) if row and row[0] is not None else b""


def _cells(content: bytes, z: int, x: int, y: int, folder: Path) -> pd.DataFrame:
    """An aggregated tile's cells as GDAL decodes them: position, count, open, reports."""
    import pyogrio

    path = folder / f"cells-{z}-{x}-{y}.mvt"
    path.write_bytes(content)
    frame = pyogrio.read_dataframe(path, Z=z, X=x, Y=y, CLIP="NO")
    path.unlink()
    cells = pd.DataFrame({"x": frame.geometry.x.round(3), "y": frame.geometry.y.round(3)})
    for name in ("count", "open", "reports"):
        cells[name] = frame[name].astype("int64")
    return cells.sort_values(["x", "y"]).reset_index(drop=True)


def check_cells(tiles_by_method: dict[str, bytes], z: int, x: int, y: int, folder: Path) -> str:
    """How each voirie tile's cells compare with the peer's, as one line.

    Raises when voirie's PostGIS tile (same database, same candidate window) and the peer's
    differ: the peer would not be doing the same work. A difference of the sqlite tile is
    reported, not raised: it is voirie's backends disagreeing, which the timing must not hide.
    """
    decoded = {
        method: _cells(content, z, x, y, folder) for method, content in tiles_by_method.items()
    }
    (raw_method,) = (method for method in decoded if method.startswith("raw"))
    raw = decoded.pop(raw_method)
    found = [
        f"z{z}/{x}/{y}: the peer gives {len(raw):,} cells of {int(raw['count'].sum()):,} incidents"
    ]
    for method, cells in decoded.items():
        if cells.equals(raw):
            found.append(f"{method} the same cells and counts")
            continue
        merged = cells.merge(raw, how="outer", indicator=True)
        if "postgis" in method:
            raise SystemExit(f"{found[0]}; {method} differs:\n{merged[merged['_merge'] != 'both']}")
        found.append(
            f"{method} {int((merged['_merge'] == 'left_only').sum())} cells that "
            f"differ ({int(cells['count'].sum()):,} incidents)"
        )
    return "; ".join(found)


def tiles(
    sqlite_url: str, pg_url: str, workdir: Path
) -> tuple[list[tuple[str, str, float, int]], list[str]]:
    """(tile, method, median seconds, bytes) for voirie on each backend and the raw peer.

    Aggregated tiles are first compared cell by cell (``check_cells``), one line per tile.
    """
    from voirie.codecs import mvt
    from voirie.settings import StoreSettings
    from voirie.store import open_store

    rows, checks = [], []
    stores = {
        b: open_store(StoreSettings(database_url=u))
        for b, u in (("sqlite", sqlite_url), ("postgis", pg_url))
    }
    try:
        with psycopg.connect(pg_url) as conn:
            for name, (z, x, y) in TILES.items():
                cells = z < mvt.CLUSTER_BELOW_ZOOM
                raw = "raw ST_AsMVT per cell (PostGIS)" if cells else "raw ST_AsMVT (PostGIS)"
                work = {
                    f"voirie ({backend})": partial(store.incident_tile, JURISDICTION, z, x, y)
                    for backend, store in stores.items()
                }
                work[raw] = partial(_raw_tile, conn, z, x, y)
                if cells:
                    checks.append(
                        check_cells({m: run() for m, run in work.items()}, z, x, y, workdir)
                    )
                for method, run in work.items():
                    seconds, size = _median_seconds(run)
                    rows.append((name, method, seconds, size))
    finally:
        for store in stores.values():
            store.close()
    return rows, checks


# ---------------------------------------------------------------- main


def _postgres_database(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(server.rsplit("/", 1)[0] + f"/{name}", autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    return server.rsplit("/", 1)[0] + f"/{name}"


def exports(n: int, pg_url: str, sqlite_url: str, workdir: Path) -> None:
    """Print the GeoJSON export table."""
    print(f"GeoJSON export of {n:,} incidents (PostGIS store unless said)\n")
    print(
        "| method | s | incidents/s | MB written | RSS before (MiB) | peak RSS (MiB) | "
        "growth (MiB) | vs json_agg |"
    )
    print("|---|---|---|---|---|---|---|---|")
    runs = [
        ("json_agg", "PostGIS json_agg streamed (COPY)", pg_url, None),
        ("voirie", "voirie streamed export", pg_url, None),
        ("voirie", f"voirie streamed export, first {n // 10:,}", pg_url, n // 10),
        ("voirie", "voirie streamed export (sqlite store)", sqlite_url, None),
        ("to_file", "geopandas to_file (GeoJSON)", pg_url, None),
        ("to_json", "geopandas to_json", pg_url, None),
    ]
    reference = None
    for kind, label, url, limit in runs:
        result = run_child(kind, url, workdir, limit)
        rows = limit or n
        rate = rows / result["seconds"]
        reference = reference or rate
        print(
            f"| {label} | {result['seconds']:.1f} | {rate:,.0f} | "
            f"{result['bytes'] / 1e6:,.0f} | {result['before_mib']:,.0f} | "
            f"{result['peak_mib']:,.0f} | {result['peak_mib'] - result['before_mib']:,.0f} | "
            f"{rate / reference:.2f}× |",
            flush=True,
        )


def main() -> int:
    """Print Markdown tables of the measurements."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/voirie-bench-export"))
    parser.add_argument("--tiles-only", action="store_true", help="skip the GeoJSON exports")
    args = parser.parse_args()
    n = args.incidents
    args.workdir.mkdir(parents=True, exist_ok=True)
    pg_url = _postgres_database(args.postgres, f"voirie_bench_export_{n}")
    sqlite_url = f"sqlite:///{args.workdir / f'export_{n}.gpkg'}"
    for url in (pg_url, sqlite_url):
        synthesize(url, n, args.workdir)

    import geopandas
    import pyogrio
    import shapely

    with psycopg.connect(pg_url) as conn:
        versions = conn.execute("SELECT version(), postgis_lib_version()").fetchone()
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"geopandas {geopandas.__version__}, shapely {shapely.__version__}, pyogrio "
        f"{pyogrio.__version__}, pandas {pd.__version__}; "
        f"{str(versions[0]).split(',')[0]}, PostGIS {versions[1]}\n"
    )

    if not args.tiles_only:
        exports(n, pg_url, sqlite_url, args.workdir)
    print(f"\nMVT tiles over {n:,} incidents (median of {RUNS})\n")
    print("| tile | method | ms | KiB | vs raw peer |")
    print("|---|---|---|---|---|")
    measured, checks = tiles(sqlite_url, pg_url, args.workdir)
    raw = {name: s for name, method, s, _ in measured if method.startswith("raw")}
    for name, method, seconds, size in measured:
        print(
            f"| {name} | {method} | {seconds * 1000:,.0f} | {size / 1024:,.0f} | "
            f"{raw[name] / seconds:.2f}× |"
        )
    print("\nCells checked before timing:\n" + "".join(f"\n- {line}" for line in checks))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        _, _, kind, url, out, limit = sys.argv
        print(json.dumps(child(kind, url, Path(out), int(limit) or None)))
        sys.exit(0)
    sys.exit(main())
