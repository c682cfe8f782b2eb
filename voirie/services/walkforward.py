"""Walk-forward evaluation of routing: the only judge of a rule-learning choice.

A history is replayed month by month: for every month after the first ``warmup``, rules
are learned on everything declared before that month and measured on that month, next to
the baseline (the plain majority team of each sub-category, learned on the same past).
Nothing of the test month or later is seen while learning. Both are replayed as a city
configured from that past would route: its catalogue holds the sub-categories seen
before the month, so a new one goes to triage (``with_rules``). With ``live_support``,
each fold is also replayed with the rules dispatchers' corrections teach during the month
(``live_replay``; ``live_triage_support``: the answers to triaged reports that make one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import cast

import pandas as pd

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import ColumnMapping
from voirie.ingest.sources import RawTable
from voirie.routing.table import is_conditional, route
from voirie.services.live_learning import LiveRules
from voirie.services.rules_learning import Learned, Learning, learn_rules, month_start
from voirie.services.rules_replay import Replay, compare, history, replay_history, with_rules

BASELINE = Learning(half_life_days=None, validation_months=0)


@dataclass(frozen=True)
class Fold:
    """One test month: what the learned rules and the baseline did on it."""

    month: date  # first day of the test month
    trained_on: int  # reports declared before it
    voirie: Replay
    baseline: Replay
    zone_rules: int  # conditional rules the learner kept
    live: Replay | None = None  # the same rules plus those learned from dispatchers
    baseline_live: Replay | None = None  # the baseline plus those learned from dispatchers


def judge(
    city: City,
    past: pd.DataFrame,
    later: pd.DataFrame,
    end: date,
    layers: list[str],
    policy: Learning,
) -> tuple[Replay, Replay, Learned]:
    """Learn at ``end`` on ``past``, replay ``later``: (learned, baseline, the rules)."""
    seen = set(past["service_code"])
    learned = learn_rules(city, past, end, layers=layers, policy=policy)
    base = learn_rules(city, past, end, policy=BASELINE)
    return (
        replay_history(with_rules(city, learned.rules, seen), later),
        replay_history(with_rules(city, base.rules, seen), later),
        learned,
    )


def walk_forward(
    city: City,
    reports: pd.DataFrame,
    layers: list[str],
    policy: Learning | None = None,
    *,
    warmup: int = 3,
    live_support: int | None = None,
    live_triage_support: int | None = None,
) -> list[Fold]:
    """One ``Fold`` per month of a ``history`` after the first ``warmup`` months."""
    policy = policy or Learning()
    months = reports["day"].map(month_start)
    folds = []
    for start in sorted(set(months))[warmup:]:
        past, month = reports[months < start], reports[months == start]
        ours, base, learned = judge(city, past, month, start, layers, policy)
        live = base_live = None
        if live_support is not None:
            seen = set(past["service_code"])
            static = with_rules(city, learned.rules, seen)
            live = live_replay(static, month, live_support, live_triage_support)
            plain = with_rules(city, learn_rules(city, past, start, policy=BASELINE).rules, seen)
            base_live = live_replay(plain, month, live_support, live_triage_support)
        zone_rules = len(learned.zone_rules)
        folds.append(Fold(start, len(past), ours, base, zone_rules, live, base_live))
    return folds


def live_replay(
    city: City, reports: pd.DataFrame, min_support: int, triage_support: int | None = None
) -> Replay:
    """Replay reports day by day with ``city``'s rules and the rules ``LiveRules`` learns
    from the corrections of the days before: a report the rules sent to the wrong team
    (or to triage) is reassigned by a dispatcher to its true team, and that correction is
    fed back the next day. A learned rule replaces the service's plain rule (or the
    triage a sub-category without one gets); conditional rules still come first. A
    triaged report's answer counts towards ``triage_support`` (``LiveRules``)."""
    routed = route(city, reports)
    conditional = {r.id for r in city.config.routing.rules if is_conditional(r)}
    teams = routed["team"].astype(str).copy()
    rule = routed["rule_id"].astype(object).fillna("(default team)")
    plain = ~routed["rule_id"].isin(conditional)
    live = LiveRules(min_support, triage_support)
    for day, rows in reports.groupby("day", sort=True):
        for i, service in zip(rows.index, rows["service_code"], strict=True):
            learned = live.team(service) if plain[i] else None
            if learned is not None:
                teams[i], rule[i] = learned, f"live-{service}"
        for i, service, truth in zip(rows.index, rows["service_code"], rows["truth"], strict=True):
            live.feed(cast(date, day), service, teams[i], truth)  # after the day's routing
    return compare(reports["truth"], teams, rule)


def split_test(
    city: City,
    gis: CityGIS,
    table: RawTable,
    mapping: ColumnMapping,
    truth_column: str,
    learn_until: date,
    *,
    policy: Learning | None = None,
) -> dict[str, Replay]:
    """Learn on reports up to ``learn_until``, replay the later ones; also the baseline.

    ``baseline``: the majority team of each sub-category seen in training (no location);
    ``learned``: the learner's rules. Both send unseen categories to triage.
    """
    reports, _ = history(city, gis, table, mapping, truth_column)
    later = learn_until + timedelta(days=1)
    past = reports[reports["day"] <= learn_until]
    ours, base, _ = judge(
        city, past, reports[reports["day"] >= later], later, list(gis.zones), policy or Learning()
    )
    return {"baseline": base, "learned": ours}
