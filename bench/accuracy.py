"""Enrichment accuracy on a DansMaRue file, against the file's own address and zone columns.

Enriches every report twice with the city's GIS, once from the coordinates alone
(``nearest``) and once with the ``adresse`` column (``address_match``), and prints:

* street agreement: the snapped segment's normalized street name equals the street read
  from ``adresse``, over the reports whose address names a street;
* the share of those address streets that the street network holds at all (an upper bound
  for street agreement);
* arrondissement agreement: ``zone_arrondissement`` against the ``arrondissement`` column;
* quartier agreement, through the quartier's arrondissement (below).

The file has no quartier code (``conseilquartier`` names one of about 120 conseils de
quartier, not one of the 80 quartiers administratifs), so quartiers are checked through
their parent: the arrondissement the quartier layer gives for the assigned quartier
(``--parent quartier=c_ar``, an attribute of the layer's file) against the report's
``arrondissement`` column. Usage::

    python bench/accuracy.py [REPORTS] [--city paris] [--parent LAYER=FIELD ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from voirie.city import load_city
from voirie.gis.enrich import CityGIS
from voirie.gis.layers import read_source
from voirie.gis.streetnames import address_keys, normalize_keys
from voirie.ingest.sources import read_csv

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"


def _share(mask: pd.Series | np.ndarray, of: pd.Series | np.ndarray) -> str:
    mask, of = np.asarray(mask, dtype=bool), np.asarray(of, dtype=bool)
    hits, total = int((mask & of).sum()), int(of.sum())
    return f"{hits / total:6.1%}  ({hits:,} / {total:,})" if total else "n/a"


def main() -> int:
    """Print the agreement figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("reports", nargs="?", type=Path, default=REPORTS)
    parser.add_argument("--city", default="paris")
    parser.add_argument(
        "--parent",
        action="append",
        default=None,
        help="LAYER=FIELD: the zone layer's FIELD names its arrondissement",
    )
    args = parser.parse_args()
    parents = dict(item.split("=", 1) for item in (args.parent or ["quartier=c_ar"]))
    raw = read_csv(args.reports).rows
    lon = pd.to_numeric(raw["longitude"], errors="coerce").to_numpy()
    lat = pd.to_numeric(raw["latitude"], errors="coerce").to_numpy()
    address = raw["adresse"].to_numpy(dtype=object)
    start = time.perf_counter()
    city = load_city(args.city)
    gis = CityGIS(city)
    built = time.perf_counter() - start

    start = time.perf_counter()
    nearest = gis.enrich(lon, lat)
    t_nearest = time.perf_counter() - start
    start = time.perf_counter()
    matched = gis.enrich(lon, lat, address)
    t_matched = time.perf_counter() - start

    wanted = address_keys(address)
    has_street = pd.notna(wanted)
    network = set(gis.street_keys[pd.notna(gis.street_keys)])
    in_network = np.array([key in network for key in wanted], dtype=bool)

    def agree(out: pd.DataFrame) -> np.ndarray:
        snapped = normalize_keys(out["street_name"])
        return np.asarray(has_street & (snapped == wanted), dtype=bool)

    source_arr = pd.to_numeric(raw["arrondissement"], errors="coerce")
    zone_arr = pd.to_numeric(matched["zone_arrondissement"], errors="coerce")
    has_arr = source_arr.notna().to_numpy()
    method = matched["snap_method"].fillna("off network").value_counts()

    print(f"file: {args.reports}  ({len(raw):,} reports)")
    print(
        f"GIS built in {built:.1f} s; enrich {t_nearest:.2f} s nearest-only, "
        f"{t_matched:.2f} s with addresses"
    )
    print(f"reports whose adresse names a street:  {_share(has_street, np.ones(len(raw)))}")
    print(f"address street present in the network: {_share(in_network, has_street)}")
    print("street agreement (snapped street == address street), over reports with a street:")
    print(f"  nearest only:        {_share(agree(nearest), has_street)}")
    print(f"  with address match:  {_share(agree(matched), has_street)}")
    print("  over reports whose address street is in the network:")
    print(f"  nearest only:        {_share(agree(nearest), in_network)}")
    print(f"  with address match:  {_share(agree(matched), in_network)}")
    changed = (nearest["segment_id"] != matched["segment_id"]).fillna(False).to_numpy()
    print(f"segment changed by address match:      {_share(changed, np.ones(len(raw)))}")
    print("snap_method with addresses: " + ", ".join(f"{k} {v:,}" for k, v in method.items()))
    print(
        f"arrondissement agreement (zone vs source column): "
        f"{_share((zone_arr == source_arr).to_numpy(), has_arr)}"
    )
    for layer_name, field in parents.items():
        layer = gis.zones[layer_name].layer
        source = read_source(city.path(layer.path))
        parent = dict(zip(source[layer.code_field].astype(str), source[field], strict=True))
        zone_parent = pd.to_numeric(matched[f"zone_{layer_name}"].map(parent), errors="coerce")
        print(
            f"{layer_name} agreement (its {field} vs source arrondissement): "
            f"{_share((zone_parent == source_arr).to_numpy(), has_arr)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
