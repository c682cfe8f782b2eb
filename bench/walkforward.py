"""Walk-forward routing evaluation on the bundled Paris history (issue 18).

For every month after the first three: rules are learned on everything declared before
it and measured on it, next to the majority team per sub-category learned on the same
past (``voirie.services.walkforward``). Learners compared:

* ``unvalidated``: every zone rule the training data suggests, all months weighed alike
  (the learner the shipped rules came from before issue 18);
* ``voirie``: the default ``Learning`` (zone rules kept only if they won out of time on
  the last months of the past, recency weighting), and ``live``: the same rules plus the
  service rules learned during the month from dispatchers' corrections (each wrong
  routing corrected and fed back the next day; ``--live-support`` corrections needed).

Usage::

    python bench/walkforward.py [--reports FILE] [--half-life DAYS ...] [--live-support N]
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path

from voirie.city import load_city
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.services.rules_learning import Learning
from voirie.services.rules_replay import Replay, history
from voirie.services.walkforward import Fold, walk_forward

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
UNVALIDATED = Learning(min_support=5, min_gain=2, validation_months=0, half_life_days=None)


def _cells(result: Replay) -> str:
    return f"{result.accuracy:.2%} | {result.wrong_team} | {result.triaged}"


def live_table(folds: list[Fold]) -> str:
    """The markdown table of the live replay against the static rules, per fold."""
    lines = [
        "| month | static right | wrong | triage | live right | wrong | triage | Δ points |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fold in folds:
        assert fold.live is not None
        delta = (fold.live.accuracy - fold.voirie.accuracy) * 100
        lines.append(
            f"| {fold.month:%Y-%m} | {_cells(fold.voirie)} | {_cells(fold.live)} | {delta:+.2f} |"
        )
    return "\n".join(lines)


def table(label: str, folds: list[Fold]) -> str:
    """The markdown table of one learner's folds, with the total."""
    lines = [
        f"**{label}**",
        "",
        "| month | reports | learned on | zone rules | voirie right | wrong | triage "
        "| baseline right | wrong | triage | Δ points |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fold in folds:
        delta = (fold.voirie.accuracy - fold.baseline.accuracy) * 100
        lines.append(
            f"| {fold.month:%Y-%m} | {fold.voirie.n} | {fold.trained_on} | {fold.zone_rules} "
            f"| {_cells(fold.voirie)} | {_cells(fold.baseline)} | {delta:+.2f} |"
        )
    n = sum(f.voirie.n for f in folds)
    ours = sum(f.voirie.correct for f in folds), sum(f.voirie.wrong_team for f in folds)
    base = sum(f.baseline.correct for f in folds), sum(f.baseline.wrong_team for f in folds)
    tri = sum(f.voirie.triaged for f in folds), sum(f.baseline.triaged for f in folds)
    lines.append(
        f"| all | {n} | | | {ours[0] / n:.2%} | {ours[1]} | {tri[0]} "
        f"| {base[0] / n:.2%} | {base[1]} | {tri[1]} | {(ours[0] - base[0]) / n * 100:+.2f} |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", type=Path, default=REPORTS)
    parser.add_argument(
        "--half-life", type=float, nargs="*", default=[], help="Also try these half-lives."
    )
    parser.add_argument("--live-support", type=int, default=3)
    args = parser.parse_args()
    city = load_city(ROOT / "cities/paris")
    gis = CityGIS(city)
    reports, skipped = history(city, gis, read_csv(args.reports), DANSMARUE, "intervenant")
    print(
        f"Machine: {platform.machine()}, {platform.system()}, Python {platform.python_version()}"
        f"; pandas {version('pandas')}, numpy {version('numpy')}, shapely {version('shapely')}"
    )
    print(f"{len(reports)} reports ({args.reports.name}); left out: {skipped}\n")
    learners = [("unvalidated (before issue 18)", UNVALIDATED), ("voirie", Learning())]
    learners += [
        (f"half-life {h:g} days", replace(Learning(), half_life_days=h)) for h in args.half_life
    ]
    for label, policy in learners:
        start = time.perf_counter()
        live = args.live_support if policy == Learning() else None
        folds = walk_forward(city, reports, list(gis.zones), policy, live_support=live)
        print(table(f"{label}: {policy}", folds))
        print(f"\n({time.perf_counter() - start:.1f} s)\n")
        if live is not None:
            print(f"**live learning, {live} agreeing corrections**\n\n{live_table(folds)}\n")


if __name__ == "__main__":
    main()
