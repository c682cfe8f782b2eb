"""Latency of one ``Intake.submit`` (the API's entry point) on both backends, in one run.

Each backend gets a scratch store (a GeoPackage file; a fresh PostGIS database) loaded
with the bundled Paris DansMaRue reports through ``Importer.import_table`` (what
``voirie import`` runs), then ``--n`` reports are submitted one at a time: real positions
and services of the bundled reports moved up to 50 m (seeded), dated at the end of the
data so that many join a stored open incident, with their real address. Prints p50/p99
per backend, and of the per-report validation and GIS enrichment of one report alone
(``validate_report``, ``CityGIS.enrich_one``; issue 3); ``--backends`` with no backend
measures only those two steps. ``--profile`` writes a pyinstrument text profile of the
submits of each backend.

Usage::

    python bench/submit_latency.py [--n 300] [--backends [sqlite] [postgis]] [--profile DIR]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from voirie.city import City, load_city, service_code_for
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.ingest.validate import validate_report
from voirie.model import Report
from voirie.services.pipeline import Pipeline
from voirie.store.base import Store
from voirie.store.postgis import PostgisStore
from voirie.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[1]
PARIS_CSV = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
SEED = 11
JITTER_M = 50.0


def probe_reports(city: City, gis: CityGIS, n: int) -> list[Report]:
    """``n`` reports drawn from the bundled data: service kept, position jittered (those
    the jitter moved out of the city are left out)."""
    source = pd.read_csv(PARIS_CSV, dtype=str, keep_default_na=False)
    rng = np.random.default_rng(SEED)
    drawn = min(len(source), n + n // 10 + 10)
    picked = source.iloc[rng.choice(len(source), drawn, replace=False)].reset_index(drop=True)
    x, y = gis.project(
        pd.to_numeric(picked["longitude"]).to_numpy(), pd.to_numeric(picked["latitude"]).to_numpy()
    )
    angle, dist = rng.uniform(0, 2 * np.pi, drawn), rng.uniform(0, JITTER_M, drawn)
    lon, lat = gis.to_wgs84.transform(x + dist * np.cos(angle), y + dist * np.sin(angle))
    inside = np.flatnonzero(~gis.enrich(np.asarray(lon), np.asarray(lat))["outside_territory"])
    when = pd.to_datetime(source["datedecl"]).max().to_pydatetime().replace(tzinfo=UTC)
    return [
        Report(
            external_id=f"probe-{k}",
            source="bench",
            lon=float(lon[k]),
            lat=float(lat[k]),
            service_code=service_code_for(picked.at[k, "type"], picked.at[k, "soustype"]),
            requested_at=when,
            description="bench probe",
            address=picked.at[k, "adresse"] or None,
        )
        for k in inside[:n]
    ]


@contextmanager
def scratch_store(backend: str, folder: Path) -> Iterator[Store]:
    """An empty, upgraded store of the backend, removed afterwards."""
    if backend == "sqlite":
        store: Store = SqliteStore(folder / "bench.gpkg")
        store.upgrade()
        try:
            yield store
        finally:
            store.close()
        return
    name = f"voirie_bench_{secrets.token_hex(4)}"
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            store = PostgisStore(f"postgresql://postgres@127.0.0.1:5432/{name}", 1, 4)
            try:
                store.upgrade()
                yield store
            finally:
                store.close()
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def measure(pipeline: Pipeline, probes: list[Report], profile: Path | None) -> list[float]:
    """Submit each probe once; the milliseconds each took."""
    profiler = None
    if profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
    took = []
    for report in probes:
        start = time.perf_counter()
        pipeline.intake.submit(report)
        took.append((time.perf_counter() - start) * 1000)
    if profiler is not None and profile is not None:
        profiler.stop()
        profile.write_text(profiler.output_text(show_all=False))
    return took


def enrich_latency(gis: CityGIS, probes: list[Report]) -> np.ndarray:
    """p50/p99 of ``CityGIS.enrich_one`` of one report (the GIS step of a submit), in ms."""
    took = []
    for report in probes:
        start = time.perf_counter()
        gis.enrich_one(report.lon, report.lat, report.address)
        took.append((time.perf_counter() - start) * 1000)
    return np.percentile(took[1:], [50, 99])


def validate_latency(city: City, probes: list[Report]) -> np.ndarray:
    """p50/p99 of ``validate_report`` of one report (the first step of a submit), in ms."""
    took = []
    for report in probes:
        start = time.perf_counter()
        validate_report(report, city)
        took.append((time.perf_counter() - start) * 1000)
    return np.percentile(took[1:], [50, 99])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument(
        "--backends", nargs="*", default=["sqlite", "postgis"], choices=["sqlite", "postgis"]
    )
    parser.add_argument("--profile", type=Path, help="folder for pyinstrument text profiles")
    args = parser.parse_args()
    city = load_city("paris")
    gis = CityGIS(city)
    probes = probe_reports(city, gis, args.n)
    results = {
        "validate only": validate_latency(city, probes),
        "enrich only": enrich_latency(gis, probes),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            with scratch_store(backend, Path(tmp)) as store:
                pipeline = Pipeline(city, store, gis)
                start = time.perf_counter()
                summary = pipeline.imports.import_table(read_csv(PARIS_CSV), DANSMARUE)
                print(
                    f"{backend}: {summary.imported:,} Paris reports imported in "
                    f"{time.perf_counter() - start:.0f} s"
                )
                pipeline.intake.submit(probes[0])  # warm-up (connections, caches)
                profile = args.profile / f"submit_{backend}.txt" if args.profile else None
                took = measure(pipeline, probes[1:], profile)
                results[f"submit {backend}"] = np.percentile(took, [50, 99])
    for step, (p50, p99) in results.items():
        print(
            f"  {step:<14} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  "
            f"({len(probes) - 1} reports, one at a time)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
