"""Batch clustering and online attach, measured against the peers, in one run.

(1) Batch clustering throughput at each size (default 100k and 1M reports), with peak
    memory (RSS a forked process adds, running only that method on the loaded reports):
    - voirie: ``voirie.gis.dedupe.cluster``, the rule of imports and ``incidents recluster``
      (time-ordered chunks: candidate pairs from one STRtree query per chunk, then the
      time-ordered pass), with the
      thresholds of cities/paris/city.yaml (radius 20-50 m, windows, group matching);
    - PostGIS ``ST_ClusterDBSCAN(geom, 30, 1) OVER (PARTITION BY service_code)`` on
      Lambert-93 points in a table loaded beforehand (query time only);
    - scikit-learn ``DBSCAN(eps=30 m, min_samples=1, metric="haversine",
      algorithm="ball_tree")`` fitted per service.
    The peers cluster by distance alone (no time window), with one 30 m radius.
(2) Online attach latency per report with ``--latency`` reports imported into a fresh
    PostGIS database (most become open incidents): for 1,000 new reports one at a time, the
    attach step (advisory lock, open-incident query, scoring) on the per-report path
    (``open_incidents_near`` + ``attach_one``) and on the bulk path with a one-row batch
    (``open_incidents`` + ``attach``; both must decide the same), then the whole
    ``Intake.submit``, p50/p99.

Reports are real DansMaRue reports resampled with jitter (seeded): each copy keeps its
source's service, street segment and street name, moves up to 10 m (batch) or 500 m
(latency set), and gets a time spread so that copies do not all fall in one window.
Usage::

    python bench/cluster.py [--sizes 100000 1000000] [--latency 100000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import shapely
import sklearn
from psycopg import sql
from sklearn.cluster import DBSCAN

from voirie.city import City, load_city, service_code_for
from voirie.gis import dedupe
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.model import Report
from voirie.services.pipeline import Pipeline
from voirie.store.postgis import PostgisStore

ROOT = Path(__file__).resolve().parents[1]
PARIS_CSV = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
PEER_EPS_M = 30.0
EARTH_RADIUS_M = 6_371_008.8
SEED = 7
PROBES = 1_000


def real_reports(city: City, gis: CityGIS) -> pd.DataFrame:
    """The bundled DansMaRue reports with service code, metric point, segment and street."""
    source = pd.read_csv(PARIS_CSV, dtype=str, keep_default_na=False)
    lon = pd.to_numeric(source["longitude"]).to_numpy()
    lat = pd.to_numeric(source["latitude"]).to_numpy()
    enriched = gis.enrich(lon, lat, source["adresse"].to_numpy(object))
    codes = [
        service_code_for(t, s) for t, s in zip(source["type"], source["soustype"], strict=True)
    ]
    frame = pd.DataFrame(
        {
            "service_code": codes,
            "x": enriched["x"],
            "y": enriched["y"],
            "segment_id": enriched["segment_id"].astype(object),
            "street_name": enriched["street_name"].astype(object),
            "requested_at": pd.to_datetime(source["datedecl"], utc=True),
        }
    )
    return frame[frame["service_code"].isin(list(city.services))].reset_index(drop=True)


def resample(real: pd.DataFrame, n: int, jitter_m: float, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` reports drawn from the real ones, moved up to ``jitter_m`` and shifted in time
    by whole 9-month periods (copy k of a report lands k periods later)."""
    pick = rng.integers(0, len(real), n)
    out = real.iloc[pick].reset_index(drop=True)
    angle, length = rng.uniform(0, 2 * np.pi, n), jitter_m * np.sqrt(rng.uniform(0, 1, n))
    out["x"] = out["x"].to_numpy() + length * np.cos(angle)
    out["y"] = out["y"].to_numpy() + length * np.sin(angle)
    copy = pd.Series(pick).groupby(pick).cumcount().to_numpy()
    out["requested_at"] = out["requested_at"] + pd.to_timedelta(copy * 270, unit="D")
    return out


def with_thresholds(city: City, reports: pd.DataFrame) -> pd.DataFrame:
    """The columns ``dedupe.attach`` reads, from city.yaml."""
    rules = {code: city.dedupe(code) for code in reports["service_code"].unique()}
    reports["group"] = reports["service_code"].map(lambda c: city.services[c].group)
    reports["match"] = reports["service_code"].map(lambda c: rules[c].match)
    reports["radius_m"] = reports["service_code"].map(lambda c: rules[c].radius_m)
    reports["window_days"] = reports["service_code"].map(lambda c: rules[c].window_days)
    return reports


def run_voirie(city: City, reports: pd.DataFrame) -> int:
    """Cluster with voirie's rule; return the number of incidents."""
    links = dedupe.cluster(reports, city.config.dedupe)
    return int((links["leader"].to_numpy() == np.arange(len(reports))).sum())


def run_sklearn(city: City, reports: pd.DataFrame) -> int:
    """DBSCAN per service on radians (haversine, ball tree); return the number of clusters."""
    del city
    points = np.radians(reports[["lat", "lon"]].to_numpy(float))
    clusters = 0
    for rows in reports.groupby("service_code").indices.values():
        labels = (
            DBSCAN(
                eps=PEER_EPS_M / EARTH_RADIUS_M,
                min_samples=1,
                metric="haversine",
                algorithm="ball_tree",
            )
            .fit(points[rows])
            .labels_
        )
        clusters += len(np.unique(labels))
    return clusters


def _child(
    method: Callable[[City, pd.DataFrame], int],
    city: City,
    reports: pd.DataFrame,
    pipe: Connection,
) -> None:
    baseline = _rss_mib()
    # Timed on a second run: the first pays for copying the forked pages it touches (each
    # Python object's reference count is a write), as PostGIS is timed on a table already
    # in its buffers.
    method(city, reports)
    start = time.perf_counter()
    result = method(city, reports)
    elapsed = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pipe.send((elapsed, result, peak_mib - baseline))


def _rss_mib() -> float:
    """Resident memory of this process now (MiB): what a forked child starts with."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measured(
    method: Callable[[City, pd.DataFrame], int], city: City, reports: pd.DataFrame
) -> tuple[float, int, float]:
    """(seconds, clusters, peak RSS added, MiB) of a method run alone in a forked process
    (the seconds of its second run there, see ``_child``)."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_child, args=(method, city, reports, child))
    process.start()
    elapsed, result, peak = parent.recv()
    process.join()
    return float(elapsed), int(result), float(peak)


def _scratch_db(admin: psycopg.Connection[tuple[object, ...]], name: str) -> str:
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return SERVER.rsplit("/", 1)[0] + "/" + name


def run_postgis(reports: pd.DataFrame) -> tuple[float, int, str]:
    """ST_ClusterDBSCAN partitioned by service on a loaded table; (seconds, clusters)."""
    name = f"voirie_bench_{secrets.token_hex(4)}"
    with psycopg.connect(SERVER, autocommit=True) as admin:
        url = _scratch_db(admin, name)
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION postgis")
                version = str(conn.execute("SELECT postgis_lib_version()").fetchone()[0])  # type: ignore[index]
                conn.execute("CREATE TABLE r (service_code text, x float8, y float8)")
                with conn.cursor() as cur, cur.copy("COPY r FROM STDIN") as copy:
                    for row in zip(
                        reports["service_code"], reports["x"], reports["y"], strict=True
                    ):
                        copy.write_row(row)
                conn.execute("ALTER TABLE r ADD COLUMN geom geometry(Point, 2154)")
                conn.execute("UPDATE r SET geom = ST_SetSRID(ST_MakePoint(x, y), 2154)")
                conn.execute("VACUUM ANALYZE r")
                start = time.perf_counter()
                row = conn.execute(
                    "SELECT count(DISTINCT (service_code, cid)) FROM (SELECT service_code, "
                    "ST_ClusterDBSCAN(geom, %s, 1) OVER (PARTITION BY service_code) AS cid "
                    "FROM r) s",
                    (PEER_EPS_M,),
                ).fetchone()
                elapsed = time.perf_counter() - start
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    assert row is not None
    return elapsed, int(str(row[0])), version


def batch(city: City, gis: CityGIS, real: pd.DataFrame, sizes: list[int]) -> None:
    """Part (1)."""
    print(
        "(1) batch clustering: seconds, reports/s, clusters, peak memory added to the\n"
        "    process holding the reports (RSS, forked process per method)"
    )
    for n in sizes:
        reports = with_thresholds(city, resample(real, n, 10.0, np.random.default_rng(SEED)))
        lon, lat = gis.to_wgs84.transform(reports["x"].to_numpy(), reports["y"].to_numpy())
        reports["lon"], reports["lat"] = np.asarray(lon), np.asarray(lat)
        ours, ours_n, ours_mem = measured(run_voirie, city, reports)
        learn, learn_n, learn_mem = measured(run_sklearn, city, reports)
        pg, pg_n, version = run_postgis(reports)
        print(f"  n = {n:,}")
        for label, secs, clusters, mem in (
            ("voirie attach (city.yaml)", ours, ours_n, f"{ours_mem:,.0f} MiB"),
            (f"PostGIS {version} ST_ClusterDBSCAN", pg, pg_n, "server side"),
            (f"scikit-learn {sklearn.__version__} DBSCAN", learn, learn_n, f"{learn_mem:,.0f} MiB"),
        ):
            print(
                f"    {label:<36} {secs:8.2f} s {n / secs:>11,.0f}/s {clusters:>9,} clusters  {mem}"
            )
        print(
            f"    ratios: PostGIS / voirie = {pg / ours:.2f}x, "
            f"scikit-learn / voirie = {learn / ours:.2f}x (higher = voirie faster)"
        )


def latency(city: City, gis: CityGIS, real: pd.DataFrame, n: int, folder: Path) -> None:
    """Part (2)."""
    rng = np.random.default_rng(SEED + 1)
    now = datetime(2025, 6, 1, tzinfo=UTC)
    stored = resample(real, n + PROBES, 500.0, rng)
    age = rng.uniform(0.1, 20, len(stored))
    stored["requested_at"] = pd.Timestamp(now) - pd.to_timedelta(age, unit="D")
    lon, lat = gis.to_wgs84.transform(stored["x"].to_numpy(), stored["y"].to_numpy())
    stored["lon"], stored["lat"] = np.asarray(lon), np.asarray(lat)
    probes, stored = stored.iloc[n:].reset_index(drop=True), stored.iloc[:n]
    names = {s.code: s for s in city.config.services}
    csv = pd.DataFrame(
        {
            "id_dmr": [f"B{k}" for k in range(n)],
            "type": [city.groups[names[c].group].name for c in stored["service_code"]],
            "soustype": [names[c].name for c in stored["service_code"]],
            "adresse": "",
            "prefixe": "bench",
            "datedecl": pd.Series(stored["requested_at"]).dt.strftime("%Y-%m-%dT%H:%M:%S"),
            "longitude": stored["lon"],
            "latitude": stored["lat"],
        }
    )
    path = folder / "latency.csv"
    csv.to_csv(path, index=False)
    name = f"voirie_bench_{secrets.token_hex(4)}"
    with psycopg.connect(SERVER, autocommit=True) as admin:
        url = _scratch_db(admin, name)
        try:
            store = PostgisStore(url, min_size=1, max_size=4)
            try:
                store.upgrade()
                pipeline = Pipeline(city, store, gis)
                start = time.perf_counter()
                summary = pipeline.imports.import_table(read_csv(path), DANSMARUE)
                took = time.perf_counter() - start
                store.analyze()
                open_incidents = store.count("incidents", city.jurisdiction_id)
                print(
                    f"\n(2) online attach on PostGIS: {summary.imported:,} reports imported in "
                    f"{took:.0f} s -> {open_incidents:,} open incidents stored"
                )
                frame = _probe_frame(pipeline, probes, now)
                one_ms, batch_ms, differ = _attach_steps(pipeline, frame)
                _print_latency(
                    [
                        ("attach step, per report (near + attach_one)", one_ms),
                        ("attach step, one-row batch (old path)", batch_ms),
                    ]
                )
                print(f"    decisions that differ between the two paths: {differ}")
                _print_latency(
                    [("whole submit (enrich, route, write)", _submits(pipeline, frame, now))]
                )
            finally:
                store.close()
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _print_latency(rows: list[tuple[str, list[float]]]) -> None:
    for label, values in rows:
        p50, p99 = np.percentile(values, [50, 99])
        print(
            f"    {label:<44} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  ({len(values)} reports)",
            flush=True,
        )


def _probe_frame(pipeline: Pipeline, probes: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """The probes inside the city, enriched, with their thresholds, reported ``now``."""
    enriched = pipeline.gis.enrich(probes["lon"].to_numpy(), probes["lat"].to_numpy())
    frame = pd.concat([probes[["service_code", "lon", "lat"]], enriched], axis=1)
    frame = frame[~enriched["outside_territory"].to_numpy()].reset_index(drop=True)
    frame["requested_at"] = pd.Timestamp(now)
    pipeline.policy.set_thresholds(frame)
    return frame


def _attach_steps(pipeline: Pipeline, frame: pd.DataFrame) -> tuple[list[float], list[float], int]:
    """Per report, the attach step alone (transactions that write nothing) on both paths,
    alternating which runs first; (per-report ms, one-row batch ms, decisions that differ).

    The per-report step starts from the report's fields as Python scalars (what the
    per-report path holds after enrichment)."""
    scoring, jurisdiction = pipeline.city.config.dedupe, pipeline.city.jurisdiction_id
    keys = [
        "service_code",
        "lon",
        "lat",
        "x",
        "y",
        "group",
        "match",
        "radius_m",
        "window_days",
        "segment_id",
        "street_name",
    ]
    one_ms, batch_ms, differ = [], [], 0
    for k in range(len(frame)):
        one = frame.iloc[[k]].reset_index(drop=True)
        fields: dict[str, object] = {
            key: None
            if pd.isna(value)
            else value.item()
            if isinstance(value, np.generic)
            else value
            for key, value in zip(keys, one.loc[0, keys], strict=True)
        }
        fields["requested_at"] = one.at[0, "requested_at"].to_pydatetime()
        chosen = {}
        for path in (0, 1) if k % 2 else (1, 0):
            start = time.perf_counter()
            with pipeline.store.transaction(jurisdiction) as uow:
                if path:
                    code = str(fields["service_code"])
                    uow.lock(pipeline.policy.lock_keys([code]))
                    candidates = pipeline.attacher.candidates(
                        uow,
                        float(one.at[0, "lon"]),
                        float(one.at[0, "lat"]),
                        code,
                        fields["requested_at"],
                    )
                    arrival = {k: v for k, v in fields.items() if k not in ("lon", "lat")}
                    link = dedupe.attach_one(dedupe.NewReport(**arrival), candidates, scoring)
                    chosen[path] = link.incident_id
                else:
                    uow.lock(pipeline.policy.lock_keys(one["service_code"]))
                    links = pipeline.attacher.attach(uow, one)
                    chosen[path] = int(links.at[0, "incident_id"])
            (one_ms if path else batch_ms).append((time.perf_counter() - start) * 1000)
        differ += chosen[0] != chosen[1]
    return one_ms, batch_ms, differ


def _submits(pipeline: Pipeline, frame: pd.DataFrame, now: datetime) -> list[float]:
    """The whole ``Intake.submit`` of each probe, in milliseconds."""
    submit_ms = []
    for k in range(len(frame)):
        report = Report(
            external_id=f"P{k}",
            source="bench",
            service_code=str(frame.at[k, "service_code"]),
            lon=float(frame.at[k, "lon"]),
            lat=float(frame.at[k, "lat"]),
            requested_at=now,
        )
        start = time.perf_counter()
        pipeline.intake.submit(report)
        submit_ms.append((time.perf_counter() - start) * 1000)
    return submit_ms


def main() -> int:
    """Run both parts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="*",
        default=[100_000, 1_000_000],
        help="batch sizes to cluster (none: skip part 1)",
    )
    parser.add_argument(
        "--latency",
        type=int,
        default=100_000,
        help="reports stored before measuring the online attach (0: skip)",
    )
    args = parser.parse_args()
    city = load_city(ROOT / "cities/paris")
    gis = CityGIS(city)
    real = real_reports(city, gis)
    print(
        f"machine: {mp.cpu_count()} cores; python {sys.version.split()[0]}, "
        f"shapely {shapely.__version__}, numpy {np.__version__}, pandas {pd.__version__}"
    )
    batch(city, gis, real, args.sizes)
    if args.latency:
        with tempfile.TemporaryDirectory() as tmp:
            latency(city, gis, real, args.latency, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
