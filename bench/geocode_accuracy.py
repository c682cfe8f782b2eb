"""Address search accuracy on the bundled DansMaRue history (issue 17 item 7).

For each month of the history after the first (a walk-forward fold), every report's
``adresse`` is geocoded and the share whose point lies within 50 m of the report's own
coordinates is counted. Geocoders compared:

* ``before``: the street search before issue 17 (exact street keys or containment, the
  point mid-street), copied below as it was;
* ``streets``: the new search without house numbers (typos, prefixes; mid-street);
* ``numbers``: the new search with house-number positions learned **only from the
  reports declared before the fold's month** (``HouseNumbers.learn``): a fold never
  learns from the reports it is measured on.

Usage::

    python bench/geocode_accuracy.py [--reports FILE] [--radius-m 50]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from voirie.city import load_city
from voirie.gis.enrich import CityGIS
from voirie.gis.housenumbers import HouseNumbers
from voirie.gis.streetnames import normalize_street, street_from_address
from voirie.gis.streetsearch import geocode_street
from voirie.ingest.sources import read_csv

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"

Point = tuple[float, float] | None


def before(gis: CityGIS, query: str) -> Point:
    """The first answer of the street search as it was before issue 17 (WGS84)."""
    assert gis.streets is not None
    key = street_from_address(query) or normalize_street(query)
    if not key:
        return None
    keys = pd.Series(gis.street_keys, dtype=object)
    exact = (keys == key).to_numpy()
    words = key.split()
    partial = (
        keys.map(lambda k: isinstance(k, str) and all(w in k.split() for w in words)).to_numpy(bool)
        & ~exact
    )
    for mask in (exact, partial):
        if not mask.any():
            continue
        found = pd.DataFrame(
            {"key": keys[mask].to_numpy(), "length": shapely.length(gis.streets_geometry[mask])}
        )
        best = found.groupby("key")["length"].sum().sort_values(ascending=False, kind="stable")
        rows = np.flatnonzero(mask)[found["key"].to_numpy() == best.index[0]]
        lines = shapely.union_all(gis.streets_geometry[rows])
        _, point = shapely.shortest_line(shapely.centroid(lines), lines).coords
        lon, lat = gis.to_wgs84.transform(point[0], point[1])
        return float(lon), float(lat)
    return None


def after(gis: CityGIS, numbers: HouseNumbers | None) -> Callable[[CityGIS, str], Point]:
    """The first answer of today's search (with learned house numbers or without)."""

    def geocode(gis: CityGIS, query: str) -> Point:
        matches = geocode_street(gis, query, limit=1, numbers=numbers)
        return (matches[0].lon, matches[0].lat) if matches else None

    return geocode


def within(
    gis: CityGIS,
    geocode: Callable[[CityGIS, str], Point],
    cache_key: Callable[[str], object],
    cache: dict[object, Point],
    test: pd.DataFrame,
    radius_m: float,
) -> float:
    """Share of ``test``'s addresses geocoded within ``radius_m`` of their report."""
    points = []
    for address in test["adresse"]:
        key = cache_key(address)
        if key not in cache:
            cache[key] = geocode(gis, address)
        points.append(cache[key])
    found = np.array([p is not None for p in points])
    lon = np.array([p[0] if p else np.nan for p in points])
    lat = np.array([p[1] if p else np.nan for p in points])
    gx, gy = gis.project(lon, lat)
    rx, ry = gis.project(test["lon"].to_numpy(), test["lat"].to_numpy())
    distance = np.hypot(gx - rx, gy - ry)
    return float((found & (distance <= radius_m)).mean())


def main() -> None:
    """Print the per-fold table (markdown) and the totals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=Path, default=REPORTS)
    parser.add_argument("--radius-m", type=float, default=50.0)
    args = parser.parse_args()
    gis = CityGIS(load_city(ROOT / "cities/paris"))
    raw = read_csv(args.reports).rows
    reports = pd.DataFrame(
        {
            "adresse": raw["adresse"].astype(str),
            "lon": raw["longitude"].astype(float),
            "lat": raw["latitude"].astype(float),
            "month": pd.to_datetime(raw["datedecl"]).dt.to_period("M"),
        }
    ).dropna()
    months = sorted(reports["month"].unique())[1:]
    print(f"load average {os.getloadavg()[0]:.2f}; {len(reports)} reports with an address")
    print("| month | addresses | learned numbers | before | streets | numbers |")
    print("|---|---|---|---|---|---|")
    # The street-level answers depend on the street only: computed once per street.
    by_street: Callable[[str], object] = street_from_address
    before_cache: dict[object, Point] = {}
    streets_cache: dict[object, Point] = {}
    totals = np.zeros(3)
    started = time.perf_counter()
    for month in months:
        past = reports[reports["month"] < month]
        test = reports[reports["month"] == month]
        numbers = HouseNumbers.learn(
            gis, past["adresse"].to_numpy(dtype=object), past["lon"], past["lat"]
        )
        shares = [
            within(gis, before, by_street, before_cache, test, args.radius_m),
            within(gis, after(gis, None), by_street, streets_cache, test, args.radius_m),
            within(gis, after(gis, numbers), str, {}, test, args.radius_m),
        ]
        totals += np.array(shares) * len(test)
        cells = " | ".join(f"{s:.1%}" for s in shares)
        print(f"| {month} | {len(test)} | {len(numbers)} | {cells} |")
    tested = len(reports[reports["month"].isin(months)])
    cells = " | ".join(f"{s:.1%}" for s in totals / tested)
    print(f"| all | {tested} | | {cells} |")
    elapsed = time.perf_counter() - started
    print(f"{elapsed:.0f} s; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
