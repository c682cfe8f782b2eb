"""Walk-forward routing evaluation on the bundled Paris history (issue 18).

For every month after the first three: rules are learned on everything declared before
it and measured on it, next to the majority team per sub-category learned on the same
past (``voirie.services.walkforward``). Learners compared:

* ``unvalidated``: every zone rule the training data suggests, all months weighed alike
  (the learner the shipped rules came from before issue 18);
* ``voirie``: the default ``Learning`` (zone rules kept only if they won out of time on
  the last months of the past, recency weighting), and ``live``: the same rules plus the
  service rules learned during the month from dispatchers' corrections (each wrong
  routing corrected and fed back the next day; ``--live-support`` corrections needed,
  ``--live-triage-support`` dispatchers' answers for a sub-category left to triage). The
  supports are chosen on months 2 and 3 of the history, before every fold (``--live-grid``
  prints that choice: every setting on every month after the first).

``--places`` judges place memory the same way: a sub-category's past team at the same
address, street segment or 100 m cell, or the majority of its k nearest past reports
within r metres, in place of the rules' team; each alone and kept only if it won out of
time on the last two months of the past (``place_table``).

``--explain`` adds what is left: the reports the ``voirie`` rules miss on each fold, by
kind, and what a hierarchical fallback would do with the sub-categories new in the test
month (routed to their group's majority team of the past when that majority holds at
least a share of the group's reports; kept, like a zone rule, only if it won out of time
on the new sub-categories of the last months of the past).

Usage::

    python bench/walkforward.py [--reports FILE] [--half-life DAYS ...] [--live-support N]
                                [--live-triage-support N] [--live-grid] [--places]
                                [--explain]
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

from voirie.city import TRIAGE_TEAM, City, load_city
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.routing.table import route
from voirie.services.rules_learning import Learning, learn_rules, month_start
from voirie.services.rules_replay import Replay, history, with_rules
from voirie.services.walkforward import BASELINE, Fold, walk_forward

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
UNVALIDATED = Learning(min_support=5, min_gain=2, validation_months=0, half_life_days=None)
SHARES = (0.0, 0.7, 0.8, 0.85, 0.9)  # group-majority shares tried by the fallback
WARMUP = 3  # the folds of ``walk_forward``
LIVE_GRID = ((3, None), (3, 1), (3, 2), (2, None), (2, 1), (4, 1))  # (support, triage support)


def _cells(result: Replay) -> str:
    return f"{result.accuracy:.2%} | {result.wrong_team} | {result.triaged}"


def live_table(folds: list[Fold]) -> str:
    """The markdown table of the live replay against the static rules, per fold."""
    lines = [
        "| month | static right | wrong | triage | live right | wrong | triage | Δ points "
        "| Δ vs static baseline | baseline live right | wrong | triage | Δ vs baseline live |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fold in folds:
        assert fold.live is not None
        assert fold.baseline_live is not None
        delta = (fold.live.accuracy - fold.voirie.accuracy) * 100
        versus = (fold.live.accuracy - fold.baseline.accuracy) * 100
        fair = (fold.live.accuracy - fold.baseline_live.accuracy) * 100
        lines.append(
            f"| {fold.month:%Y-%m} | {_cells(fold.voirie)} | {_cells(fold.live)} | {delta:+.2f} "
            f"| {versus:+.2f} | {_cells(fold.baseline_live)} | {fair:+.2f} |"
        )
    return "\n".join(lines)


def live_grid(city: City, reports: pd.DataFrame, layers: list[str]) -> str:
    """Right / wrong team of each live-learning setting against the static rules, on
    every month after the first (the first two of them: where the setting is chosen)."""
    runs = {
        setting: walk_forward(
            city,
            reports,
            layers,
            warmup=1,
            live_support=setting[0],
            live_triage_support=setting[1],
        )
        for setting in LIVE_GRID
    }
    names = [f"{a}, triage {b or a}" for a, b in LIVE_GRID]
    lines = [
        "| month | static right / wrong / triage | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for i, fold in enumerate(runs[LIVE_GRID[0]]):
        cells = []
        for setting in LIVE_GRID:
            live = runs[setting][i].live
            assert live is not None
            right, wrong = (
                live.correct - fold.voirie.correct,
                live.wrong_team - fold.voirie.wrong_team,
            )
            cells.append(f"{right:+d} / {wrong:+d} ({right / fold.voirie.n * 100:+.2f})")
        lines.append(
            f"| {fold.month:%Y-%m} | {fold.voirie.correct} / {fold.voirie.wrong_team} / "
            f"{fold.voirie.triaged} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


Place = Callable[[pd.DataFrame, pd.DataFrame], pd.Series]


def same_place(column: str, support: int, share: float) -> Place:
    """The team of the sub-category's past reports at the same ``column`` value (address,
    segment, cell), where ``support`` of them and ``share`` went to it."""

    def teams(past: pd.DataFrame, month: pd.DataFrame) -> pd.Series:
        keys = ["service_code", column, "truth"]
        counts: pd.DataFrame = past.groupby(keys).size().rename("n").reset_index()
        total = counts.groupby(["service_code", column])["n"].transform("sum")
        best = counts[(counts["n"] >= support) & (counts["n"] >= share * total)]
        found = best.set_index(["service_code", column])["truth"]
        cells = pd.MultiIndex.from_arrays([month["service_code"], month[column]])
        return pd.Series(found.reindex(cells).to_numpy(), index=month.index, dtype=object)

    return teams


def nearest(k: int, radius: float, support: int, share: float) -> Place:
    """The majority team of the sub-category's ``k`` nearest past reports within
    ``radius`` metres, where ``support`` of them and ``share`` went to it."""

    def teams(past: pd.DataFrame, month: pd.DataFrame) -> pd.Series:
        found = pd.Series(None, index=month.index, dtype=object)
        for service, rows in month.groupby("service_code"):
            same = past[past["service_code"] == service]
            xy, truth = same[["x", "y"]].to_numpy(), same["truth"].to_numpy()
            for i, x, y in zip(rows.index, rows["x"], rows["y"], strict=True):
                distance = np.hypot(xy[:, 0] - x, xy[:, 1] - y)
                close = np.argsort(distance)[:k]
                close = close[distance[close] <= radius]
                if len(close) < support:
                    continue
                values, counts = np.unique(truth[close], return_counts=True)
                best = counts.argmax()
                if counts[best] >= support and counts[best] >= share * len(close):
                    found[i] = values[best]
        return found

    return teams


PLACES: dict[str, Place] = {
    "same address, 2 reports, 60 %": same_place("address", 2, 0.6),
    "same address, 1 report": same_place("address", 1, 1.0),
    "same segment, 2 reports, 60 %": same_place("segment_id", 2, 0.6),
    "same 100 m cell, 2 reports, 60 %": same_place("cell", 2, 0.6),
    "5 nearest within 50 m, 3 agree, 60 %": nearest(5, 50.0, 3, 0.6),
    "5 nearest within 100 m, 3 agree, 60 %": nearest(5, 100.0, 3, 0.6),
    "3 nearest within 30 m, 2 agree, all": nearest(3, 30.0, 2, 1.0),
}


def place_table(city: City, reports: pd.DataFrame, layers: list[str]) -> str:
    """Per place idea and fold: right reports against the baseline (points), wrong team
    (the baseline's) and the reports whose team it changed, unvalidated and validated
    (used on a fold only if, summed over the last two months of its past, each learned on
    the months before, it routed more reports right than the rules alone)."""
    reports = reports.assign(
        cell=(reports["x"] // 100).astype(int).astype(str)
        + "_"
        + (reports["y"] // 100).astype(int).astype(str),
        truth=reports["truth"].astype(str),
    )
    months = reports["day"].map(month_start)
    starts = sorted(set(months))
    ours: dict[date, pd.Series] = {}
    base: dict[date, pd.Series] = {}
    for start in starts[1:]:
        past, month = reports[months < start], reports[months == start]
        seen = set(past["service_code"])
        for policy, zones, found in ((Learning(), layers, ours), (BASELINE, [], base)):
            learned = learn_rules(city, past, start, layers=zones, policy=policy)
            found[start] = route(with_rules(city, learned.rules, seen), month)["team"].astype(str)

    def placed(idea: Place, start: date) -> pd.Series:
        past, month = reports[months < start], reports[months == start]
        teams = idea(past, month)
        use = teams.notna() & month["service_code"].isin(set(past["service_code"]))
        return ours[start].where(~use, teams)

    def right(teams: pd.Series, start: date) -> int:
        return int((teams == reports.loc[teams.index, "truth"]).sum())

    def wrong(teams: pd.Series, start: date) -> int:
        truth = reports.loc[teams.index, "truth"]
        return int(((teams != truth) & (teams != TRIAGE_TEAM)).sum())

    folds = starts[WARMUP:]
    lines = [
        "| place memory | validated | " + " | ".join(f"{s:%Y-%m}" for s in folds) + " |",
        "|---|---|" + "---|" * len(folds),
    ]
    for name, idea in PLACES.items():
        runs = {start: placed(idea, start) for start in starts[1:]}
        for validated in (False, True):
            cells = []
            for start in folds:
                teams = runs[start]
                if validated:
                    checks = [s for s in starts[1:] if s < start][-2:]
                    gain = sum(right(runs[s], s) - right(ours[s], s) for s in checks)
                    teams = teams if gain >= 1 else ours[start]
                delta = right(teams, start) - right(base[start], start)
                changed = int((teams != ours[start]).sum())
                cells.append(
                    f"{delta:+d} ({delta / len(teams) * 100:+.2f}), wrong "
                    f"{wrong(teams, start)}/{wrong(base[start], start)}, {changed} changed"
                )
            lines.append(f"| {name} | {'yes' if validated else 'no'} | " + " | ".join(cells) + " |")
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
    parser.add_argument("--live-triage-support", type=int, default=1)
    parser.add_argument(
        "--live-grid", action="store_true", help="Also every live setting on every month."
    )
    parser.add_argument(
        "--places", action="store_true", help="Also place memory and nearest neighbours."
    )
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
        triage = args.live_triage_support
        folds = walk_forward(
            city, reports, list(gis.zones), policy, live_support=live, live_triage_support=triage
        )
        print(table(f"{label}: {policy}", folds))
        print(f"\n({time.perf_counter() - start:.1f} s)\n")
        if live is not None:
            print(
                f"**live learning, {live} agreeing corrections, {triage} answer(s) to triage**"
                f"\n\n{live_table(folds)}\n"
            )
    if args.live_grid:
        grid = live_grid(city, reports, list(gis.zones))
        print(f"**live settings, right / wrong team against the static rules**\n\n{grid}\n")
    if args.places:
        places = place_table(city, reports, list(gis.zones))
        print(f"**place memory: right against the baseline, wrong team**\n\n{places}\n")
    if args.explain:
        misses = misses_table(city, reports, list(gis.zones))
        print(f"**misses of the voirie rules, by kind**\n\n{misses}\n")
        fallback = fallback_table(reports)
        print(f"**group fallback for new sub-categories (right / wrong team)**\n\n{fallback}\n")


if __name__ == "__main__":
    main()
