"""Build ``cities/chicago`` from the open data in ``../shared/data/chicago``.

Run once by a maintainer when the source data changes; the output is committed so that
voirie never reads ``../shared`` at run time. The community areas layer is copied
gzipped into ``layers/``; services come from the 311 ``sr_short_code``/``sr_type`` pairs
(code as given, name = type), teams from ``owner_department``, and the first routing table
from the majority ``owner_department`` of each service over the 2021-01-01 file. There is
no street layer: reports keep their zones and get no segment.

Services are grouped by the nature of the problem (keywords of ``sr_type``), not by
department: a department owns very different problems (Streets and Sanitation collects
garbage, removes graffiti and tows cars), and the deduplication thresholds follow the
problem. History is imported through the public ``open311-json`` format, see
``scripts/chicago_to_open311.py``.
"""

from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from citygen import DEDUPE_SCORING, write_city_yaml

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "chicago"
OUT = Path(__file__).resolve().parents[1] / "cities" / "chicago"
REPORTS = "chicago311_2021-01-01.csv.gz"
# What public layers say of a staff reassignment (who and why stay staff-only): the city's
# own words, in its one language (English), not built from the data.
PUBLICATION = {"reassigned": {"en": "reassigned by the city dispatch service"}}

# Groups by nature: (code, name, sr_type keywords, radius m, window days). The first group
# with a keyword starting a word of the type (case-insensitive) wins, so order matters.
# Thresholds are chosen from what the problem is and how it is located, not fitted to the
# duplicate labels of the file:
GROUPS: list[tuple[str, str, list[str], float, float]] = [
    # Information calls are not problems in a place (often geocoded to a default address):
    # only the same caller calling back within the hour at the very same point is a repeat.
    (
        "information",
        "Information calls and requests",
        ["information only", "information request"],
        1,
        0.05,
    ),
    # Noise is heard, not seen at a place: each complaint is a household's experience of
    # an event; only the same address on the same day is the same complaint.
    ("noise", "Noise", ["noise"], 10, 1),
    # Snow and ice are cleared within a day or two; an uncleared sidewalk is a stretch of
    # a block, reported from anywhere along it.
    ("snow-ice", "Snow and ice", ["snow", "ice and"], 50, 3),
    # Graffiti is precise in place and stays for weeks (as for Paris).
    ("graffiti", "Graffiti", ["graffiti"], 20, 14),
    # A tree is a fixed object, its problems last weeks; reported from the house it faces.
    ("trees", "Trees", ["tree"], 30, 30),
    # Lights, signals and signs are fixed equipment seen from across the street or from
    # another corner of the intersection, and stay broken until repaired.
    (
        "lights-signals",
        "Street lights, traffic signals and signs",
        ["light", "signal", "sign repair"],
        60,
        30,
    ),
    # A vehicle stays parked for days at one kerb.
    ("vehicles", "Vehicles", ["vehicle", "cab "], 30, 7),
    # Garbage, carts, dumping, dead animals: an address's pick-up, done within a week.
    (
        "waste",
        "Garbage, recycling and sanitation",
        [
            "garbage",
            "recycling",
            "dumping",
            "sanitation",
            "yard waste",
            "vacant lot",
            "dead animal",
            "street cleaning",
        ],
        30,
        7,
    ),
    # Animals move; a stray or rats are around one place for some days.
    ("animals", "Animals and rodents", ["animal", "coyote", "rodent", "rat ", "pet "], 50, 7),
    # Water and sewer problems are at one service connection or inlet.
    ("water", "Water and sewers", ["water", "sewer", "leak"], 30, 7),
    # The public way: potholes, sidewalks, bike lanes; they stay until repaired.
    (
        "public-way",
        "Streets, sidewalks and public way",
        ["pothole", "sidewalk", "public way", "bike lane", "debris"],
        30,
        30,
    ),
    # A building or business is one property; inspections take weeks.
    (
        "buildings-business",
        "Buildings and businesses",
        [
            "building",
            "plumbing",
            "permit",
            "business",
            "restaurant",
            "consumer",
            "rental",
            "bungalow",
        ],
        15,
        30,
    ),
]
OTHER = ("other", "Other requests", [], 25, 7)

# Groups whose calls never share an incident (every other group: the same service only;
# the sr_types of a group name different problems). Each call is its own case; merging
# them chains hundreds of calls geocoded to one default point into one incident.
NEVER = {
    "information": "an information call is not a problem in a place; each is its own case",
    "noise": "noise is heard, not seen: each complaint is one household's own experience",
}

# Street-scale problems (issue 18): snow on a street or a sidewalk, a dirty street span a
# stretch of a block and are reported from anywhere along it, so reports on the same street
# (named by their address: Chicago has no street layer) join up to STREET_RADIUS_M apart.
# The radius, and the same_street_factor of every other service, were chosen on the
# morning of 2021-01-01 and measured on its afternoon (``python bench/dedupe_eval.py
# --folds``, bench/RESULTS.md).
STREET_RADIUS_M = 200
STREET_SCALE_GROUPS = {"snow-ice"}
# Street-scale services of groups that are not: (code, radius m, window days).
STREET_SCALE_SERVICES = {"SDP": (30, 7)}
SAME_STREET_FACTOR = 1.0


def group_of(sr_type: str) -> tuple[str, str, list[str], float, float]:
    """The group of a service type: the first with a keyword starting a word of the type."""
    text = f"{sr_type.casefold()} "
    for group in GROUPS:
        if any(re.search(rf"\b{re.escape(keyword)}", text) for keyword in group[2]):
            return group
    return OTHER


def build(out: Path = OUT) -> dict[str, Any]:
    """Return the city.yaml document and copy the zone layer into ``out/layers`` (the
    calibration is kept from the committed ``cities/chicago/city.yaml`` either way)."""
    reports = pd.read_csv(SHARED / REPORTS, dtype=str)
    layers = out / "layers"
    layers.mkdir(parents=True, exist_ok=True)
    data = (SHARED / "community_areas.geojson").read_bytes()
    (layers / "community_areas.geojson.gz").write_bytes(gzip.compress(data, mtime=0))

    pairs = reports.groupby(["sr_short_code", "sr_type"]).size().reset_index()
    if pairs["sr_short_code"].duplicated().any():
        raise SystemExit("an sr_short_code has several sr_type names; pick one by hand")
    services, used = [], set()
    for row in pairs.sort_values("sr_short_code").itertuples():
        group = group_of(str(row.sr_type))
        used.add(group[0])
        service = {"code": row.sr_short_code, "name": row.sr_type, "group": group[0]}
        if row.sr_short_code in STREET_SCALE_SERVICES:
            radius, window = STREET_SCALE_SERVICES[row.sr_short_code]
            service["dedupe"] = {
                "match": "service",
                "radius_m": radius,
                "window_days": window,
                "street_scale": True,
                "street_radius_m": STREET_RADIUS_M,
            }
        services.append(service)
    groups = [
        {
            "code": code,
            "name": name,
            "dedupe": {
                "match": "never" if code in NEVER else "service",
                "radius_m": radius,
                "window_days": window,
                **({"why": NEVER[code]} if code in NEVER else {}),
                **(
                    {"street_scale": True, "street_radius_m": STREET_RADIUS_M}
                    if code in STREET_SCALE_GROUPS
                    else {}
                ),
            },
        }
        for code, name, _, radius, window in [*GROUPS, OTHER]
        if code in used
    ]
    teams = [{"code": t, "name": t} for t in sorted(reports["owner_department"].unique())]
    majority = reports.groupby("sr_short_code")["owner_department"].agg(
        lambda s: s.value_counts().index[0]
    )
    rules = [
        {"id": f"svc-{code}", "team": team, "service": code}
        for code, team in sorted(majority.items())
    ]
    return {
        "name": "Chicago",
        "jurisdiction_id": "chicago.gov",
        "metric_crs": "EPSG:26971",
        "timezone": "America/Chicago",
        "locale": "en",
        "territory": {"layer": "community_area"},
        "near_boundary_m": 10,
        "zones": [
            {
                "name": "community_area",
                "path": "layers/community_areas.geojson.gz",
                "code_field": "AREA_NUMBE",
                "name_field": "COMMUNITY",
                "label": "Community area",
            },
        ],
        "groups": groups,
        "services": services,
        "teams": teams,
        "routing": {"default_team": "triage", "rules": rules},
        "dedupe": {
            **DEDUPE_SCORING,
            "same_street_factor": SAME_STREET_FACTOR,
            **_calibration(),
        },
        "publication": PUBLICATION,
    }


def _calibration() -> dict[str, object]:
    """The score calibration of the city.yaml being replaced: it is learned on labelled
    history by ``bench/dedupe_calibration.py``, not built, so a rebuild keeps it."""
    path = OUT / "city.yaml"
    if not path.exists():
        return {}
    dedupe = yaml.safe_load(path.read_text(encoding="utf-8")).get("dedupe") or {}
    return {"calibration": dedupe["calibration"]} if "calibration" in dedupe else {}


def main() -> int:
    """Write cities/chicago/city.yaml."""
    write_city_yaml(
        OUT,
        build(),
        "Chicago — built by scripts/build_chicago_city.py from City of Chicago open data.",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
