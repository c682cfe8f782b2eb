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

``--explain`` adds what is left: the reports the ``voirie`` rules miss on each fold, by
kind, and what a hierarchical fallback would do with the sub-categories new in the test
month (routed to their group's majority team of the past when that majority holds at
least a share of the group's reports; kept, like a zone rule, only if it won out of time
on the new sub-categories of the last months of the past).

Usage::

    python bench/walkforward.py [--reports FILE] [--half-life DAYS ...] [--live-support N]
                                [--explain]
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import replace
from datetime import date
from importlib.metadata import version
from pathlib import Path

import pandas as pd

from voirie.city import City, load_city
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.routing.table import route
from voirie.services.rules_learning import Learning, learn_rules, month_start
from voirie.services.rules_replay import Replay, history, with_rules
from voirie.services.walkforward import Fold, walk_forward

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
UNVALIDATED = Learning(min_support=5, min_gain=2, validation_months=0, half_life_days=None)
SHARES = (0.0, 0.7, 0.8, 0.85, 0.9)  # group-majority shares tried by the fallback
WARMUP = 3  # the folds of ``walk_forward``


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


def _group_teams(past: pd.DataFrame, share: float) -> dict[str, str]:
    """Each group's majority team in ``past``, for groups where it holds ``share`` or more
    of the group's reports."""
    counts = past.groupby(["group", "truth"]).size().rename("n").reset_index()
    counts = counts.sort_values(["group", "n", "truth"], ascending=[True, False, True])
    best = counts.drop_duplicates("group").set_index("group")
    best["share"] = best["n"] / past.groupby("group").size()
    return best.loc[best["share"] >= share, "truth"].astype(str).to_dict()


def _new_in(past: pd.DataFrame, month: pd.DataFrame) -> pd.DataFrame:
    """The reports of ``month`` whose sub-category ``past`` never saw (triage today)."""
    return month[~month["service_code"].isin(set(past["service_code"]))]


def _score(teams: dict[str, str], new: pd.DataFrame) -> tuple[int, int]:
    """(right, wrong team) of routing ``new`` reports by their group's team, where
    ``teams`` names one (the others stay in triage)."""
    given = new["group"].map(teams)
    routed = given.notna()
    right = int((given[routed] == new.loc[routed, "truth"]).sum())
    return right, int(routed.sum()) - right


def group_fallback(
    reports: pd.DataFrame, share: float, validation_months: int = 2
) -> list[tuple[date, int, tuple[int, int], tuple[int, int]]]:
    """Per fold: the new sub-categories' reports, and (right, wrong) of the group fallback
    unvalidated and validated. A group's fallback is validated when, summed over the last
    ``validation_months`` months of the past (each against the months before it), it
    routed more new sub-categories' reports right than wrong."""
    months = reports["day"].map(month_start)
    starts = sorted(set(months))
    rows = []
    for start in starts[WARMUP:]:
        past, month = reports[months < start], reports[months == start]
        teams = _group_teams(past, share)
        gains: dict[str, int] = {}
        for check in [s for s in starts if s < start][1:][-validation_months:]:
            before, during = past[months[past.index] < check], past[months[past.index] == check]
            new = _new_in(before, during)
            for group, team in _group_teams(before, share).items():
                right, wrong = _score({group: team}, new)
                gains[group] = gains.get(group, 0) + right - wrong
        validated = {g: t for g, t in teams.items() if gains.get(g, 0) >= 1}
        new = _new_in(past, month)
        rows.append((start, len(new), _score(teams, new), _score(validated, new)))
    return rows


def fallback_table(reports: pd.DataFrame) -> str:
    """The markdown table of the group fallback per share threshold and fold."""
    per_share = {share: group_fallback(reports, share) for share in SHARES}
    folds = per_share[SHARES[0]]
    head = " | ".join(f"{month:%Y-%m} ({n} new)" for month, n, _, _ in folds)
    lines = [
        f"| group share ≥ | fallback | {head} |",
        "|---|---|" + "---|" * len(folds),
    ]
    for share, rows in per_share.items():
        unvalidated = " | ".join(f"+{r[2][0]} / −{r[2][1]}" for r in rows)
        validated = " | ".join(f"+{r[3][0]} / −{r[3][1]}" for r in rows)
        lines.append(f"| {share:.0%} | unvalidated | {unvalidated} |")
        lines.append(f"| {share:.0%} | validated | {validated} |")
    return "\n".join(lines)


def _miss_kind(services: set[str], teams: set[str], row: pd.Series) -> str:
    """Why a report the rules missed was out of their reach, in a few words (``services``
    and ``teams``: those of the past)."""
    if row["service_code"] not in services:
        return "new sub-category (triage)"
    if row["truth"] not in teams:
        return "team unseen before"
    if row["truth"] == "DEVE":
        inside = pd.notna(row["zone_espace_vert"])
        return "DEVE inside a green space" if inside else "DEVE outside green spaces"
    return "another team of the sub-category's past"


def misses_table(city: City, reports: pd.DataFrame, layers: list[str]) -> str:
    """The reports the default learner's rules miss on each fold, by kind."""
    months = reports["day"].map(month_start)
    kinds: dict[date, dict[str, int]] = {}
    for start in sorted(set(months))[WARMUP:]:
        past, month = reports[months < start], reports[months == start]
        learned = learn_rules(city, past, start, layers=layers)
        teams = route(with_rules(city, learned.rules, set(past["service_code"])), month)["team"]
        missed = month[teams.astype(str) != month["truth"].astype(str)]
        seen = set(past["service_code"]), set(past["truth"])
        found = [_miss_kind(*seen, row) for _, row in missed.iterrows()]
        kinds[start] = pd.Series(found, dtype=object).value_counts().to_dict()
    names = sorted({k for found in kinds.values() for k in found})
    lines = ["| month | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for start, found in kinds.items():
        lines.append(f"| {start:%Y-%m} | " + " | ".join(str(found.get(k, 0)) for k in names) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", type=Path, default=REPORTS)
    parser.add_argument(
        "--half-life", type=float, nargs="*", default=[], help="Also try these half-lives."
    )
    parser.add_argument("--live-support", type=int, default=3)
    parser.add_argument(
        "--explain", action="store_true", help="Also the misses by kind and the group fallback."
    )
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
    if args.explain:
        misses = misses_table(city, reports, list(gis.zones))
        print(f"**misses of the voirie rules, by kind**\n\n{misses}\n")
        fallback = fallback_table(reports)
        print(f"**group fallback for new sub-categories (right / wrong team)**\n\n{fallback}\n")


if __name__ == "__main__":
    main()
