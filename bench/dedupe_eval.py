"""Duplicate detection, measured: the real pipeline against a FixMyStreet-like baseline.

(a) Chicago, real labels. The whole 2021-01-01 day of Chicago 311 requests (development
    data in ``../shared/data/chicago``) is converted in memory to Open311 JSON and imported
    through the real pipeline into a temporary sqlite store. Over the rows marked
    ``duplicate`` whose ``parent_sr_number`` is in the same file, recall is the share of
    (child, parent) pairs that ended in the same incident. Staff do not mark every repeat,
    so merges no label supports are counted, not called wrong.

(b) Paris, semi-synthetic. 2,000 real DansMaRue reports (fixed seed) are the true
    incidents; about 30 % of them get 1-3 generated duplicates: a location offset whose
    length is drawn from the real reports' distances to their nearest street (computed
    with CityGIS; p50 11 m, p90 35 m, p95 51 m: wider than the offsets between real
    same-address repeats of one sub-category, p90 17 m) in a random direction, the address
    of the real report nearest to the moved point (what a reverse geocoder would give),
    a time gap drawn from an exponential of mean one day (not clipped: the generator reads
    none of the parameters under test), and with probability 0.2 a sibling sub-category
    of the same type; new external ids. Scored with B-cubed precision, recall and F1, and
    the missed duplicates counted by the rule that keeps them apart.

The baseline mimics FixMyStreet's "is this the same problem?" prompt: a report joins the
nearest earlier report of the same service within 250 m, whatever their time apart.
city.yaml thresholds are not tuned on these figures. Usage::

    python bench/dedupe_eval.py
    python bench/dedupe_eval.py --folds   # Chicago street scale on out-of-time folds
                                          # (bench/dedupe_folds.py)
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from voirie.city import City, load_city
from voirie.cli.dedupe_calibration import label_components
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE, OPEN311
from voirie.ingest.sources import read_csv, read_open311_json
from voirie.services.imports import ImportSummary
from voirie.services.pipeline import Pipeline
from voirie.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from chicago_to_open311 import to_open311  # noqa: E402

CHICAGO_CSV = ROOT.parent / "shared/data/chicago/chicago311_2021-01-01.csv.gz"
PARIS_CSV = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
BASELINE_RADIUS_M = 250.0
SEED = 20240601
N_TRUE = 2_000
DUP_SHARE = 0.30
SIBLING_SHARE = 0.20
GAP_MEAN_DAYS = 1.0


def baseline_clusters(
    x: np.ndarray,
    y: np.ndarray,
    service: np.ndarray,
    t: np.ndarray,
    radius: float = BASELINE_RADIUS_M,
) -> np.ndarray:
    """FixMyStreet-like: each report joins the nearest earlier report of its service within
    ``radius`` metres (no time window). Returns a cluster label per report."""
    n = len(x)
    order = np.lexsort((np.arange(n), t))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    tree = shapely.STRtree(shapely.points(x, y))
    i, j = tree.query(shapely.points(x, y), predicate="dwithin", distance=radius)
    keep = (service[i] == service[j]) & (rank[j] < rank[i])
    i, j = i[keep], j[keep]
    dist = np.hypot(x[i] - x[j], y[i] - y[j])
    # Nearest earlier report per report (ties: the earliest).
    pick = np.lexsort((rank[j], dist, i))
    i, j = i[pick], j[pick]
    i, first = np.unique(i, return_index=True)
    parent = np.arange(n)
    parent[i] = j[first]
    # Parents are earlier, so resolving in time order gives every report its root.
    label = np.arange(n)
    for k in order:
        label[k] = label[parent[k]] if parent[k] != k else k
    return label


def _import(
    city: City, gis: CityGIS, table_path: Path, fmt: str, folder: Path
) -> tuple[ImportSummary, pd.DataFrame]:
    store = SqliteStore(folder / f"{city.jurisdiction_id}.gpkg")
    store.upgrade()
    try:
        pipeline = Pipeline(city, store, gis)
        if fmt == "open311":
            summary = pipeline.imports.import_table(read_open311_json(table_path), OPEN311)
        else:
            summary = pipeline.imports.import_table(read_csv(table_path), DANSMARUE)
        layer = pd.DataFrame(pipeline.reads.reports().drop(columns="geometry"))
    finally:
        store.close()
    return summary, layer


def _label_scores(
    ids: pd.Series, cluster: np.ndarray, pairs: list[tuple[str, str]]
) -> tuple[int, int, int, int]:
    """(pairs scored, pairs in one cluster, merges, merges no label supports)."""
    of = dict(zip(ids, cluster, strict=True))
    scored = [(c, p) for c, p in pairs if c in of and p in of]
    same = sum(of[c] == of[p] for c, p in scored)
    edges = {frozenset(pair) for pair in scored}
    merges = unsupported = 0
    for _, members in pd.Series(list(ids)).groupby(cluster):
        if len(members) < 2:
            continue
        merges += len(members) - 1
        unsupported += label_components(list(members), edges) - 1
    return len(scored), same, merges, unsupported


def chicago(folder: Path) -> None:
    """Part (a): recall on the labelled pairs and unsupported merges, pipeline and baseline."""
    raw = pd.read_csv(CHICAGO_CSV, dtype=str)
    path = folder / "chicago.json"
    path.write_text(json.dumps(to_open311(raw)), encoding="utf-8")
    city = load_city(ROOT / "cities/chicago")
    gis = CityGIS(city)
    start = time.perf_counter()
    summary, layer = _import(city, gis, path, "open311", folder)
    elapsed = time.perf_counter() - start
    in_file = set(raw["sr_number"])
    dup = raw[(raw["duplicate"] == "True") & raw["parent_sr_number"].isin(in_file)]
    pairs = list(zip(dup["sr_number"], dup["parent_sr_number"], strict=True))
    print(
        f"(a) Chicago 2021-01-01: read {summary.read:,}, imported {summary.imported:,}, "
        f"quarantined {summary.quarantined} ({', '.join(summary.reasons().index)}), "
        f"{elapsed:.1f} s"
    )
    print(f"    labelled (child, parent) pairs with the parent in the file: {len(pairs)}")
    x, y = gis.project(layer["lon"].to_numpy(float), layer["lat"].to_numpy(float))
    t = layer["requested_at"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    base = baseline_clusters(x, y, layer["service_code"].to_numpy(object), t)
    ioc = (layer["service_code"] == "311IOC").to_numpy()
    print(
        "    method                 pairs  recall        merges  unsupported  "
        "(without 311IOC: merges, unsupported)"
    )
    for name, cluster in (
        ("voirie (city.yaml)", layer["incident_id"].to_numpy()),
        ("baseline 250 m", base),
    ):
        n, same, merges, unsup = _label_scores(layer["external_id"], cluster, pairs)
        _, _, m2, u2 = _label_scores(layer["external_id"][~ioc], cluster[~ioc], pairs)
        print(
            f"    {name:<20} {n:>6}  {same / n:6.1%} ({same:>2}/{n})  {merges:>6}  "
            f"{unsup:>11}  ({m2}, {u2})"
        )
    incident = layer["incident_id"].to_numpy()
    print(
        "    voirie merges by service (top 6): service, reports, merges, unsupported, "
        "distinct points"
    )
    rows = []
    for code, part in layer.groupby("service_code"):
        keep = (layer["service_code"] == code).to_numpy()
        _, _, merges, unsup = _label_scores(part["external_id"], incident[keep], pairs)
        points = len(part[["lon", "lat"]].round(6).drop_duplicates())
        rows.append((merges, code, len(part), unsup, points))
    for merges, code, n_rows, unsup, points in sorted(rows, reverse=True)[:6]:
        print(f"      {code:<9} {n_rows:>5} {merges:>6} {unsup:>6} {points:>6}")


def _paris_synthetic(
    paris: City, gis: CityGIS, rng: np.random.Generator
) -> tuple[pd.DataFrame, int]:
    """The true incidents and their generated duplicates, in DansMaRue CSV form, with a
    ``truth`` column (the id_dmr of the true incident); and the number of duplicates.

    Nothing here reads the deduplication parameters under test: offsets come from the
    observed snap distances, gaps from a fixed exponential (a few land beyond a group's
    window and count as misses), the address of a moved copy is the one a reverse geocoder
    would give (that of the nearest real report), not the original's.
    """
    source = pd.read_csv(PARIS_CSV, dtype=str, keep_default_na=False)
    lon = pd.to_numeric(source["longitude"]).to_numpy()
    lat = pd.to_numeric(source["latitude"]).to_numpy()
    snap = gis.enrich(lon, lat)["snap_distance_m"].dropna().to_numpy()
    sx, sy = gis.project(lon, lat)
    siblings = source.groupby("type")["soustype"].agg(lambda s: sorted(set(s))).to_dict()
    truth = source.iloc[rng.choice(len(source), N_TRUE, replace=False)].copy()
    truth["datedecl"] = pd.to_datetime(truth["datedecl"]).dt.strftime("%Y-%m-%dT%H:%M:%S")
    truth["truth"] = truth["id_dmr"]
    parents = truth.iloc[rng.choice(N_TRUE, int(N_TRUE * DUP_SHARE), replace=False)]
    copies = parents.loc[parents.index.repeat(rng.integers(1, 4, len(parents)))].copy()
    n = len(copies)
    px, py = gis.project(
        pd.to_numeric(copies["longitude"]).to_numpy(), pd.to_numeric(copies["latitude"]).to_numpy()
    )
    distance = rng.choice(snap, n)
    bearing = rng.uniform(0, 2 * np.pi, n)
    nx, ny = px + distance * np.cos(bearing), py + distance * np.sin(bearing)
    dlon, dlat = gis.to_wgs84.transform(nx, ny)
    copies["longitude"], copies["latitude"] = np.asarray(dlon), np.asarray(dlat)
    nearest = shapely.STRtree(shapely.points(sx, sy)).query_nearest(
        shapely.points(nx, ny), all_matches=False
    )[1]
    copies["adresse"] = source["adresse"].to_numpy()[nearest]
    gap = rng.exponential(GAP_MEAN_DAYS, n)
    copies["datedecl"] = (
        pd.to_datetime(copies["datedecl"]) + pd.to_timedelta(gap, unit="D")
    ).dt.strftime("%Y-%m-%dT%H:%M:%S")
    switch = rng.random(n) < SIBLING_SHARE
    for k in np.flatnonzero(switch):
        row = copies.iloc[k]
        others = [s for s in siblings[row["type"]] if s != row["soustype"]]
        if others:
            copies.iat[k, copies.columns.get_loc("soustype")] = others[rng.integers(len(others))]
    copies["id_dmr"] = [f"SYN{k:06d}" for k in range(n)]
    out = pd.concat([truth, copies], ignore_index=True)
    return out.drop(columns=["geo_point_2d"]), n


def bcubed(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float, float]:
    """B-cubed precision, recall and F1 of a predicted clustering against the true one."""
    frame = pd.DataFrame({"t": truth, "p": predicted})
    both = frame.groupby(["t", "p"])["t"].transform("size").to_numpy(float)
    p = (both / frame.groupby("p")["p"].transform("size").to_numpy(float)).mean()
    r = (both / frame.groupby("t")["t"].transform("size").to_numpy(float)).mean()
    return float(p), float(r), float(2 * p * r / (p + r))


def paris(folder: Path) -> None:
    """Part (b): B-cubed scores on the semi-synthetic Paris set."""
    rng = np.random.default_rng(SEED)
    city = load_city(ROOT / "cities/paris")
    gis = CityGIS(city)
    data, n_dup = _paris_synthetic(city, gis, rng)
    path = folder / "paris_synthetic.csv"
    data.drop(columns=["truth"]).to_csv(path, index=False)
    start = time.perf_counter()
    summary, layer = _import(city, gis, path, "dansmarue", folder)
    elapsed = time.perf_counter() - start
    truth_of = data.set_index("id_dmr")["truth"]
    truth = layer["external_id"].map(truth_of).to_numpy()
    print(
        f"\n(b) Paris semi-synthetic (seed {SEED}): {N_TRUE:,} true incidents + {n_dup:,} "
        f"generated duplicates = {len(data):,} reports; imported {summary.imported:,}, "
        f"quarantined {summary.quarantined}, {elapsed:.1f} s"
    )
    x, y = gis.project(layer["lon"].to_numpy(float), layer["lat"].to_numpy(float))
    t = layer["requested_at"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    base = baseline_clusters(x, y, layer["service_code"].to_numpy(object), t)
    print("    method                 B3 precision  B3 recall  B3 F1   clusters")
    print(f"    {'truth':<20} {'':>12}  {'':>9}  {'':>5}   {len(set(truth)):>8,}")
    for name, cluster in (
        ("voirie (city.yaml)", layer["incident_id"].to_numpy()),
        ("baseline 250 m", base),
        ("no dedupe", np.arange(len(layer))),
    ):
        p, r, f = bcubed(truth, cluster)
        print(f"    {name:<20} {p:12.3f}  {r:9.3f}  {f:5.3f}   {len(set(cluster)):>8,}")
    _misses(city, layer.assign(x=x, y=y, truth=truth))


def _misses(city: City, layer: pd.DataFrame) -> None:
    """Why generated duplicates did not join their true incident's first report, by the
    first rule of city.yaml they break (what the parameters knowingly leave apart)."""
    origin = layer[layer["external_id"] == layer["truth"]].set_index("truth")
    copies = layer[layer["external_id"] != layer["truth"]]
    first = origin.loc[copies["truth"]]
    missed = copies["incident_id"].to_numpy() != first["incident_id"].to_numpy()
    rules = [city.dedupe(code) for code in copies["service_code"]]
    factor = city.config.dedupe.same_street_factor
    same_street = copies["street_name"].to_numpy() == first["street_name"].to_numpy()
    along = np.array([max(r.radius_m * factor, r.street_radius_m or 0.0) for r in rules])
    reach = np.where(same_street, along, np.array([r.radius_m for r in rules]))
    dist = np.hypot(
        copies["x"].to_numpy() - first["x"].to_numpy(),
        copies["y"].to_numpy() - first["y"].to_numpy(),
    )
    gap = (
        copies["requested_at"].reset_index(drop=True) - first["requested_at"].reset_index(drop=True)
    ).dt.total_seconds().to_numpy() / 86_400
    sibling = (copies["service_code"].to_numpy() != first["service_code"].to_numpy()) & np.array(
        [r.match != "group" for r in rules]
    )
    why = np.select(
        [sibling, gap > np.array([r.window_days for r in rules]), dist > reach],
        [
            "sibling sub-category in a 'service' group",
            "later than the window",
            "farther than the reach",
        ],
        "other (chained through another report)",
    )
    counts = pd.Series(why[missed]).value_counts()
    print(
        f"    duplicates not with their true incident's first report: {int(missed.sum())} of "
        f"{len(copies)}: " + "; ".join(f"{k} {v}" for k, v in counts.items())
    )


def main() -> int:
    """Run both parts in a temporary folder (or, with ``--folds``, the folds)."""
    if "--folds" in sys.argv[1:]:
        from dedupe_folds import folds

        folds()
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        chicago(Path(tmp))
        paris(Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
