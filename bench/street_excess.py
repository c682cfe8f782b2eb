"""Which Paris groups look street-scale in the data: an excess of same-street pairs.

Paris has no duplicate labels, so street scale cannot be fitted there; this checks whether
the data even hints at it, per DansMaRue ``type`` (a city.yaml group). Pairs of reports of
one sub-category 60-250 m apart (beyond every radius) are compared: declared within a day
of each other (what street scale would merge) against 20-60 days apart (the same places,
no shared problem: the share of pairs that one street holds by geometry alone). A ratio
well above 1 on both periods, the first three months and the six after (walk-forward), is
the hint; it is not proof: distinct problems placed along one street on one day (a
tagger's run, one person reporting each pile on their way) raise it as well. Usage::

    python bench/street_excess.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from voirie.city import load_city
from voirie.gis.enrich import CityGIS

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
NEAR_M, FAR_M = 60.0, 250.0
MIN_PAIRS = 20


def main() -> None:
    """Print, per period and type, the same-street shares and their ratio."""
    city = load_city(ROOT / "cities/paris")
    gis = CityGIS(city)
    src = pd.read_csv(REPORTS, dtype=str, keep_default_na=False)
    lon, lat = pd.to_numeric(src["longitude"]).to_numpy(), pd.to_numeric(src["latitude"]).to_numpy()
    enriched = gis.enrich(lon, lat, src["adresse"].to_numpy(object))
    x, y = enriched["x"].to_numpy(float), enriched["y"].to_numpy(float)
    street = enriched["street_name"].fillna("").to_numpy(object)
    declared = pd.to_datetime(src["datedecl"])
    day = declared.to_numpy("datetime64[D]").astype(np.int64)
    month = declared.dt.to_period("M")
    period = np.where(month.isin(sorted(month.unique())[:3]), "months 1-3", "months 4-9")
    sub, kind = src["soustype"].to_numpy(object), src["type"].to_numpy(object)
    points = shapely.points(x, y)
    i, j = shapely.STRtree(points).query(points, predicate="dwithin", distance=FAR_M)
    keep = (i < j) & (sub[i] == sub[j]) & (period[i] == period[j])
    i, j = i[keep], j[keep]
    apart = np.hypot(x[i] - x[j], y[i] - y[j]) > NEAR_M
    gap = np.abs(day[i] - day[j])
    known = (street[i] != "") & (street[j] != "") & apart
    same = street[i] == street[j]
    print("period | type | same-day pairs | same street | 20-60 days pairs | same street | ratio")
    print("|".join(["---"] * 7))
    for name in ("months 1-3", "months 4-9"):
        for group in sorted(set(kind)):
            pairs = known & (kind[i] == group) & (period[i] == name)
            near, far = pairs & (gap <= 1), pairs & (gap >= 20) & (gap <= 60)
            if near.sum() < MIN_PAIRS or far.sum() < MIN_PAIRS:
                continue
            a, b = same[near].mean(), same[far].mean()
            print(
                f"{name} | {group} | {near.sum()} | {a:.1%} | {far.sum()} | {b:.1%} | {a / b:.2f}"
            )


if __name__ == "__main__":
    main()
