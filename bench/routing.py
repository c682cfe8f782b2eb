"""Routing throughput: vectorized rule evaluation against a one-call-per-report loop.

The batch is N reports (default 1,000,000) drawn with replacement from the real Paris
slice, enriched once by the city's GIS (zones, street attributes, flags), with their
declaration times spread over a week so that time windows matter. The rules are the
shipped Paris rules (learned zone rules + one rule per sub-category) plus a night rule on
major roads and a weekend rule near zone boundaries, so every condition kind is exercised.

Compared in one run:

* ``voirie``: ``RoutingTable.route`` over the whole batch (one boolean mask per
  conditional rule, one table lookup for the plain rules), and ``route`` with the SLA due
  dates on the city's working calendar;
* ``loop``: the textbook evaluator, one Python call per report that walks the rules in
  the same order (timed on ``--loop-sample`` reports, its throughput extrapolated).

Both must give the same team for every sampled report. Usage::

    python bench/routing.py [--reports 1000000] [--loop-sample 50000]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from voirie.city import TRIAGE_TEAM, WEEKDAYS, City, Route, load_city
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.ingest.validate import validate
from voirie.routing.table import RoutingTable, is_conditional, route

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
EXTRA_RULES = [
    {
        "id": "bench-night-major",
        "team": "DVD",
        "group": "voirie-et-espace-public",
        "segment": {"roadClass": ["major", "highway"]},
        "hours": "22:00-06:00",
    },
    {
        "id": "bench-weekend-boundary",
        "team": "DPMP-Divisions",
        "group": "proprete",
        "weekdays": ["sat", "sun"],
        "flags": {"near_boundary": True},
    },
]


def batch_of(city: City, n: int, seed: int = 7) -> pd.DataFrame:
    """``n`` enriched reports drawn from the Paris slice, times spread over a week."""
    valid = validate(read_csv(REPORTS), DANSMARUE, city).reports
    enriched = CityGIS(city).enrich(
        valid["lon"].to_numpy(), valid["lat"].to_numpy(), valid["address"].to_numpy()
    )
    pool = pd.concat([valid, enriched], axis=1)
    rng = np.random.default_rng(seed)
    frame = pool.iloc[rng.integers(0, len(pool), n)].reset_index(drop=True)
    frame["requested_at"] = frame["requested_at"] + pd.to_timedelta(
        rng.integers(0, 7 * 24 * 60, n), unit="min"
    )
    return frame


class LoopRouter:
    """The per-report evaluator: rules indexed once, then one Python call per report."""

    def __init__(self, city: City) -> None:
        self.city = city
        rules = city.config.routing.rules
        self.conditional = [r for r in rules if is_conditional(r)]
        plain = [r for r in rules if not is_conditional(r)]
        self.by_group = {r.group: r.team for r in reversed(plain) if r.service is None}
        self.by_service = {r.service: r.team for r in reversed(plain) if r.service}

    def route(self, row: dict[str, Any]) -> str:
        """The team of one report."""
        city = self.city
        service = city.services.get(row["service_code"])
        if service is None:
            return TRIAGE_TEAM
        local = row["requested_at"].tz_convert(city.config.timezone)
        minute, weekday = local.hour * 60 + local.minute, WEEKDAYS[local.weekday()]
        for rule in self.conditional:
            if _holds(rule, row, service.group, minute, weekday):
                return rule.team
        return self.by_service.get(
            service.code, self.by_group.get(service.group, city.config.routing.default_team)
        )


def _holds(rule: Route, row: dict[str, Any], group: str, minute: int, weekday: str) -> bool:
    if rule.service not in (None, row["service_code"]) or rule.group not in (None, group):
        return False
    for layer, codes in rule.zones.items():
        value = row[f"zone_{layer}"]
        if pd.isna(value) or (codes != "*" and str(value) not in {str(c) for c in codes}):
            return False
    for attribute, values in rule.segment.items():
        if str(row[f"segment_{attribute}"]) not in {str(v) for v in values}:
            return False
    if rule.hours:
        start, end = (int(t[:2]) * 60 + int(t[3:]) for t in rule.hours.split("-"))
        inside = start <= minute < end if start <= end else minute >= start or minute < end
        if not inside:
            return False
    if rule.weekdays and weekday not in rule.weekdays:
        return False
    return all(bool(row[flag]) == value for flag, value in rule.flags.items())


def main() -> int:
    """Print the throughputs and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=1_000_000)
    parser.add_argument("--loop-sample", type=int, default=50_000)
    args = parser.parse_args()
    paris = load_city("paris")
    rules = [Route.model_validate(r) for r in EXTRA_RULES] + paris.config.routing.rules
    routing = paris.config.routing.model_copy(update={"rules": rules})
    city = City(paris.folder, paris.config.model_copy(update={"routing": routing}))
    started = time.perf_counter()
    frame = batch_of(city, args.reports)
    print(
        f"{len(frame):,} reports drawn and enriched in {time.perf_counter() - started:.1f} s; "
        f"{len(rules)} rules ({sum(map(is_conditional, rules))} conditional)"
    )

    table = RoutingTable(city)
    started = time.perf_counter()
    routed = table.route(frame)
    vector_s = time.perf_counter() - started
    started = time.perf_counter()
    with_sla = route(city, frame, table)
    sla_s = time.perf_counter() - started

    sample = frame.iloc[: args.loop_sample]
    records = sample.to_dict("records")
    started = time.perf_counter()
    looper = LoopRouter(city)
    looped = [looper.route(row) for row in records]
    loop_s = time.perf_counter() - started
    assert looped == routed["team"].iloc[: len(sample)].tolist(), "loop and vector disagree"
    assert (with_sla["team"] == routed["team"]).all()

    vector_rate, sla_rate, loop_rate = (
        len(frame) / vector_s,
        len(frame) / sla_s,
        len(sample) / loop_s,
    )
    print(f"python {platform.python_version()}, pandas {pd.__version__}, numpy {np.__version__}")
    print(f"voirie vectorized       {vector_s:7.2f} s  {vector_rate:12,.0f} reports/s")
    print(f"voirie + SLA due dates  {sla_s:7.2f} s  {sla_rate:12,.0f} reports/s")
    print(
        f"one call per report     {loop_s:7.2f} s  {loop_rate:12,.0f} reports/s "
        f"(on {len(sample):,}; {len(frame) / loop_rate:,.0f} s extrapolated)"
    )
    print(
        f"ratio vectorized / loop: {vector_rate / loop_rate:,.0f}x "
        f"(with SLA: {sla_rate / loop_rate:,.0f}x); same team on all "
        f"{len(sample):,} sampled reports"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
