"""Learning routing rules from past decisions, judged on later data only.

The input is a frame of labelled, enriched past reports (``truth``: the team that really
handled each one; ``day``: its local declaration date; ``service_code``, ``group`` and the
``zone_<layer>`` columns). Two kinds of rules come out:

* a **service rule** per sub-category: its team with the largest recency-weighted count
  (a report ``half_life_days`` older than the end of the history counts half), so that a
  sub-category moving from one team to another is followed;
* **zone rules** (a service, a group or every service, inside one zone or any zone of a
  layer) whose majority team differs from the service rules. A zone rule is kept only if
  it won **out of time**: for each of the last ``validation_months`` months of the history,
  the rules are learned again on the months before it and each candidate is replayed on
  that month; it is kept when, summed over those months, it routed right more reports
  than the service rules would have (``min_validated_gain``). The kept rules are then
  refitted on the whole history.

Sub-categories with no history get no rule: they go to the triage queue.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import date
from typing import cast

import pandas as pd

from voirie.city import City, slug

ANY_ZONE = "*"
EVERY = "all"  # a zone rule for every service
LEVELS = ("service_code", "group", "every")


@dataclass(frozen=True)
class LearnedRule:
    """A drafted rule with the evidence behind it.

    A service rule (``zone`` None) gives a service its majority team; a zone rule gives
    the reports of a service or a group inside a zone (``(layer, code)``, code ``*`` for
    any zone of the layer) the team most of them went to, where that differs from what
    the service rules would do.
    """

    team: str
    support: int  # training reports the rule applies to
    confidence: float  # (recency-weighted) share of them that went to ``team``
    name: str  # the service's or group's name
    service: str | None = None
    group: str | None = None
    zone: tuple[str, str] | None = None
    zone_name: str | None = None
    gain: float = 0  # weighted training reports it routes right that service rules miss, net
    validated_gain: int | None = None  # the same, counted out of time (None: not checked)

    @property
    def rule_id(self) -> str:
        """The rule's id in city.yaml."""
        if self.zone is None:
            return f"svc-{self.service}"
        code = "any" if self.zone[1] == ANY_ZONE else slug(self.zone[1], 24)
        return f"zone-{self.service or self.group or EVERY}-{self.zone[0]}-{code}"

    def entry(self) -> dict[str, object]:
        """The rule as a ``routing.rules`` entry."""
        entry: dict[str, object] = {"id": self.rule_id, "team": self.team}
        if self.service or self.group:
            entry.update({"service": self.service} if self.service else {"group": self.group})
        if self.zone is not None:
            layer, code = self.zone
            entry["zones"] = {layer: ANY_ZONE if code == ANY_ZONE else [code]}
        return entry


@dataclass
class Learned:
    """Drafted rules (zone rules first, as they must precede nothing else), and the
    services left to triage with why."""

    rules: list[LearnedRule]
    left_out: dict[str, str]  # service code -> reason
    n: int

    @property
    def zone_rules(self) -> list[LearnedRule]:
        """The rules with a zone condition."""
        return [r for r in self.rules if r.zone is not None]


@dataclass(frozen=True)
class Learning:
    """How rules are learned; the defaults were chosen on the walk-forward folds of the
    bundled Paris history (``bench/walkforward.py``), never on a random split.

    A zone rule needs ``min_support`` reports, a ``min_confidence`` weighted majority and
    a weighted ``min_gain`` over the service rules in its training data, then a net
    ``min_validated_gain`` on the last ``validation_months`` months (0: no out-of-time
    check, every candidate is kept). ``half_life_days`` None weighs every past report
    alike.
    """

    min_support: int = 2
    min_confidence: float = 0.6
    min_gain: float = 1.0
    validation_months: int = 2
    min_validated_gain: int = 1
    half_life_days: float | None = 60.0


def weights(days: pd.Series, end: date, half_life_days: float | None) -> pd.Series:
    """Weight of each report declared on ``days`` when learning at ``end``: halved every
    ``half_life_days`` of age (all 1 without a half-life)."""
    if half_life_days is None:
        return pd.Series(1.0, index=days.index)
    age = (pd.Timestamp(end) - pd.to_datetime(days)).dt.days.clip(lower=0)
    weight: pd.Series = 0.5 ** (age / half_life_days)
    return weight


def _majority(decisions: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per ``keys`` cell: its weighted-majority ``truth`` (ties: the first team by name),
    that team's weight ``n``, the cell's report count ``support`` and weight ``total``."""
    counts = (
        decisions.groupby([*keys, "truth"])["w"]
        .sum()
        .rename("n")
        .reset_index()
        .sort_values([*keys, "n", "truth"], ascending=[True] * len(keys) + [False, True])
    )
    totals = decisions.groupby(keys).agg(support=("truth", "size"), total=("w", "sum"))
    return counts.drop_duplicates(keys).set_index(keys).join(totals)


def service_rules(
    city: City, decisions: pd.DataFrame, min_support: int
) -> tuple[list[LearnedRule], dict[str, str]]:
    """The weighted-majority team of each catalogue service with enough reports
    (``decisions``: ``service_code``, ``truth`` and the weight ``w``)."""
    best = _majority(decisions, ["service_code"])
    rules: list[LearnedRule] = []
    left_out: dict[str, str] = {}
    for code, row in best.iterrows():  # one row per service, not per report
        service, support = city.services.get(str(code)), int(row["support"])
        if service is None:
            left_out[str(code)] = "not in the city's catalogue"
        elif support < min_support:
            left_out[str(code)] = f"{support} reports < min support {min_support}"
        elif row["truth"] not in city.teams:
            left_out[str(code)] = f"team {row['truth']!r} is not in city.yaml"
        else:
            rules.append(
                LearnedRule(
                    team=str(row["truth"]),
                    support=support,
                    confidence=float(row["n"] / row["total"]),
                    name=service.name,
                    service=service.code,
                )
            )
    rules.sort(key=lambda r: (-r.support, str(r.service)))
    return rules, left_out


def zone_candidates(
    city: City,
    reports: pd.DataFrame,
    teams: dict[str | None, str],
    layers: list[str],
    policy: Learning,
) -> list[LearnedRule]:
    """Zone cells (of a service, a group or every service) whose weighted majority team
    beats the service rules ``teams`` in ``reports`` (which carry their weight ``w``).

    For each cell (a service or group, and a zone or ``*`` = any zone of the layer), the
    gain is the weight of its reports that went to the cell's majority team minus the
    weight of those the service rules already route right. Cells are counted with one
    ``groupby`` per layer and level, never report by report. Narrow cells come first
    (service, then group, then every service; one zone before any zone).
    """
    base = (reports["service_code"].map(teams) == reports["truth"]) * reports["w"]
    names = {
        **{s.code: s.name for s in city.config.services},
        **{g.code: g.name for g in city.config.groups},
    }
    found: list[tuple[tuple[int, int, float], LearnedRule]] = []
    for layer in layers:
        column = f"zone_{layer}"
        inside = reports[reports[column].notna()].assign(
            base=base, zone=reports[column].astype(str), every=EVERY
        )
        labels = inside.groupby("zone")[f"{column}_name"].first()
        for level_rank, level in enumerate(LEVELS):
            for any_rank, cells in enumerate((inside, inside.assign(zone=ANY_ZONE))):
                best = _majority(cells, [level, "zone"])
                best = best.join(cells.groupby([level, "zone"])["base"].sum())
                best["gain"] = best["n"] - best["base"]
                keep = best[
                    (best["support"] >= policy.min_support)
                    & (best["n"] >= policy.min_confidence * best["total"])
                    & (best["gain"] >= policy.min_gain)
                    & best["truth"].isin(list(city.teams))
                ]
                for cell, row in keep.iterrows():  # one row per accepted cell
                    key, zone = cast(tuple[str, str], cell)
                    rule = LearnedRule(
                        team=str(row["truth"]),
                        support=int(row["support"]),
                        confidence=float(row["n"] / row["total"]),
                        name=names.get(str(key), "every service"),
                        service=str(key) if level == "service_code" else None,
                        group=str(key) if level == "group" else None,
                        zone=(layer, str(zone)),
                        zone_name=None if zone == ANY_ZONE else str(labels.get(zone)),
                        gain=float(row["gain"]),
                    )
                    found.append(((level_rank, any_rank, -rule.gain), rule))
    found.sort(key=lambda item: (item[0], item[1].rule_id))
    return [rule for _, rule in found]


def _applies(rule: LearnedRule, reports: pd.DataFrame) -> pd.Series:
    """Reports a zone rule's conditions hold for (its service or group, and its zone)."""
    assert rule.zone is not None
    layer, code = rule.zone
    zones = reports[f"zone_{layer}"]
    mask = zones.notna() if code == ANY_ZONE else zones.astype(str) == code
    if rule.service is not None:
        mask &= reports["service_code"] == rule.service
    elif rule.group is not None:
        mask &= reports["group"] == rule.group
    return mask


def month_start(day: date) -> date:
    """The first day of ``day``'s month."""
    return day.replace(day=1)


def _fit(
    city: City,
    reports: pd.DataFrame,
    end: date,
    layers: list[str],
    policy: Learning,
    extra: pd.DataFrame | None = None,
) -> tuple[list[LearnedRule], dict[str, str], list[LearnedRule]]:
    """Service rules, left-out services and zone candidates learned at ``end``; ``extra``
    decisions (``service_code``, ``truth``) count once each for the service rules."""
    weighted = reports.assign(w=weights(reports["day"], end, policy.half_life_days))
    decisions = weighted[["service_code", "truth", "w"]]
    if extra is not None:
        decisions = pd.concat([decisions, extra.assign(w=1.0)], ignore_index=True)
    services, left_out = service_rules(city, decisions, 1)
    teams: dict[str | None, str] = {r.service: r.team for r in services}
    return services, left_out, zone_candidates(city, weighted, teams, layers, policy)


def _out_of_time_gains(
    city: City, reports: pd.DataFrame, layers: list[str], policy: Learning
) -> Counter[tuple[str, str]]:
    """Net reports each candidate zone rule (by id and team) routed right beyond the
    service rules on each of the last ``validation_months`` months, learned each time on
    the months before."""
    starts = sorted({month_start(d) for d in reports["day"]})
    gains: Counter[tuple[str, str]] = Counter()
    for start in starts[1:][-policy.validation_months :]:
        past, month = reports[reports["day"] < start], reports[reports["day"] >= start]
        month = month[month["day"].map(month_start) == start]
        services, _, candidates = _fit(city, past, start, layers, policy)
        teams = month["service_code"].map({r.service: r.team for r in services})
        for rule in candidates:
            # Sub-categories new that month go to triage before any rule (``with_rules``).
            applies = _applies(rule, month) & teams.notna()
            truth = month.loc[applies, "truth"]
            net = int((truth == rule.team).sum() - (teams[applies] == truth).sum())
            gains[(rule.rule_id, rule.team)] += net
    return gains


def learn_rules(
    city: City,
    reports: pd.DataFrame,
    end: date,
    *,
    layers: list[str] | None = None,
    min_support: int = 1,
    policy: Learning | None = None,
    extra: pd.DataFrame | None = None,
) -> Learned:
    """Rules learned at ``end`` (the day after the history) from labelled reports (see
    the module docstring): zone rules over ``layers`` that won out of time, first, then
    the service rules of services with ``min_support`` decisions or more. ``extra``
    decisions (``service_code``, ``truth``: dispatchers' reassignments) count once each
    for the service rules."""
    policy = policy or Learning()
    services, left_out, candidates = _fit(city, reports, end, layers or [], policy, extra)
    for rule in [r for r in services if r.support < min_support]:
        left_out[str(rule.service)] = f"{rule.support} reports < min support {min_support}"
    services = [r for r in services if r.support >= min_support]
    zone_rules = candidates
    if policy.validation_months and candidates:
        gains = _out_of_time_gains(city, reports, layers or [], policy)
        zone_rules = [
            replace(r, validated_gain=gains[(r.rule_id, r.team)])
            for r in candidates
            if gains[(r.rule_id, r.team)] >= policy.min_validated_gain
        ]
    return Learned([*zone_rules, *services], left_out, len(reports))
