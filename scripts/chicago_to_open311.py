"""Convert Chicago 311 CSV rows (Data Portal dataset ``v6vf-nfxy``) to Open311 GeoReport v2.

The output is a JSON array of service request objects, the shape ``voirie import
--format open311-json`` reads, so Chicago history goes through the public import format
rather than through a Chicago-specific reader. Rows are converted as they are: a row
without coordinates keeps ``lat``/``long`` null and is quarantined by the import.

Usage::

    python scripts/chicago_to_open311.py CSV OUT.json [--rows N --seed S]

``--rows N`` keeps a reproducible sample of N rows (every row without coordinates, then
a random sample of the others), used to make the test fixture
``tests/data/chicago_100.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd

TIMEZONE = "America/Chicago"
CLOSED = {"completed", "canceled", "cancelled", "closed"}


def _clean(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def to_open311(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One GeoReport v2 request object per CSV row, in the rows' order."""
    created = pd.to_datetime(frame["created_date"], format="ISO8601")
    local = created.dt.tz_localize(TIMEZONE, ambiguous="NaT", nonexistent="shift_forward")
    requested = [t.isoformat() if not pd.isna(t) else None for t in local]
    lat = pd.to_numeric(frame["latitude"], errors="coerce")
    lon = pd.to_numeric(frame["longitude"], errors="coerce")
    status = frame["status"].fillna("").str.strip().str.casefold()
    out = []
    for i in range(len(frame)):
        row = frame.iloc[i]
        out.append(
            {
                "service_request_id": _clean(row["sr_number"]),
                "service_code": _clean(row["sr_short_code"]),
                "service_name": _clean(row["sr_type"]),
                "description": "",
                "requested_datetime": requested[i],
                "lat": _clean(float(lat.iloc[i])),
                "long": _clean(float(lon.iloc[i])),
                "address": _clean(row["street_address"]),
                "status": "closed" if status.iloc[i] in CLOSED else "open",
            }
        )
    return out


def sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """Every row without coordinates plus a seeded random sample, in the file's order."""
    no_xy = frame["latitude"].isna() | frame["longitude"].isna()
    rest = frame[~no_xy].sample(n=max(rows - int(no_xy.sum()), 0), random_state=seed)
    return pd.concat([frame[no_xy], rest]).sort_index()


def main() -> int:
    """Write the JSON array."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("csv", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    frame = pd.read_csv(args.csv, dtype=str)
    if args.rows is not None:
        frame = sample(frame, args.rows, args.seed)
    requests = to_open311(frame)
    args.out.write_text(json.dumps(requests, indent=1, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {args.out}: {len(requests)} service requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
