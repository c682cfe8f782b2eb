"""Testing a routing table against the decisions people really made, and drafting one.

``replay`` runs past reports through validation, enrichment and ``route`` (one decision per
distinct service), then compares each team with the source's ground-truth column (for
DansMaRue, ``intervenant``). ``learn`` drafts service rules from the same kind of file: the
team most reports of a service went to, with its support and confidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import cast

import pandas as pd
import yaml

from voirie.city import TRIAGE_TEAM, City, Route, slug
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import ColumnMapping
from voirie.ingest.sources import ROW, RawTable
from voirie.ingest.validate import validate
from voirie.model import SYSTEM_ACTOR, EventKind
from voirie.notify.escalation import ESCALATION_ACTOR
from voirie.routing.table import route
from voirie.store.base import Store

DEFAULT_RULE_LABEL = "(default team)"
UNKNOWN_SERVICE_LABEL = "(service not in catalogue)"
ANY_ZONE = "*"
EVERY = "all"  # a zone rule for every service


@dataclass
class Replay:
    """How a routing table would have routed past reports, against where they really went.

    ``n`` counts the reports compared: valid, inside the territory, with a truth value and
    within the date range. Every one of them is exactly one of correct, wrong team (routed
    to another real team) or triaged (sent to the triage queue when the truth is a team).
    """

    n: int
    correct: int
    wrong_team: int
    triaged: int
    confusion: pd.DataFrame  # truth, predicted, count; most frequent pair first
    rules: pd.DataFrame  # rule, team, count, correct; most used rule first
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        """Share of reports routed to the team that really handled them."""
        return self.correct / self.n if self.n else 0.0

    @property
    def wrong_team_rate(self) -> float:
        """Share of reports sent to another team (the costly error: a re-dispatch)."""
        return self.wrong_team / self.n if self.n else 0.0

    @property
    def triage_rate(self) -> float:
        """Share of reports left to the triage queue (a person decides)."""
        return self.triaged / self.n if self.n else 0.0

    def top_pairs(self, k: int = 10, *, errors_only: bool = False) -> pd.DataFrame:
        """The ``k`` most frequent (truth, predicted) pairs, mistakes only if asked."""
        pairs = self.confusion
        if errors_only:
            pairs = pairs[pairs["truth"] != pairs["predicted"]]
        return pairs.head(k).reset_index(drop=True)


def _local_dates(requested_at: pd.Series, timezone: str) -> pd.Series:
    days: pd.Series = requested_at.dt.tz_convert(timezone).dt.date
    return days


def _in_range(
    reports: pd.DataFrame, timezone: str, since: date | None, until: date | None
) -> pd.Series:
    """Rows whose local declaration date lies in [since, until] (bounds included)."""
    keep = pd.Series(True, index=reports.index)
    if since is None and until is None:
        return keep
    days = _local_dates(reports["requested_at"], timezone)
    if since is not None:
        keep &= days >= since
    if until is not None:
        keep &= days <= until
    return keep


def _truth(table: RawTable, reports: pd.DataFrame, truth_column: str) -> pd.Series:
    """The ground-truth value of each validated row (joined on the source row number)."""
    if truth_column not in table.rows:
        raise KeyError(truth_column)
    raw = table.rows.set_index(ROW)[truth_column].astype(object)
    raw = raw.map(lambda v: v.strip() if isinstance(v, str) else v)
    raw = raw.where(raw.notna() & (raw != ""), None)
    return reports["row"].map(raw)


def _labelled(
    city: City,
    table: RawTable,
    mapping: ColumnMapping,
    truth_column: str,
    since: date | None,
    until: date | None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Validated rows in the date range with their truth value, and what was left out."""
    valid = validate(table, mapping, city)
    reports = valid.reports
    reports["truth"] = _truth(table, reports, truth_column)
    skipped = {"quarantined": len(valid.quarantine)}
    in_range = _in_range(reports, city.config.timezone, since, until)
    skipped["outside date range"] = int((~in_range).sum())
    reports = reports[in_range]
    has_truth = reports["truth"].notna()
    skipped[f"no {truth_column}"] = int((~has_truth).sum())
    return reports[has_truth].reset_index(drop=True), skipped


def replay(
    city: City,
    gis: CityGIS,
    table: RawTable,
    mapping: ColumnMapping,
    truth_column: str,
    *,
    since: date | None = None,
    until: date | None = None,
) -> Replay:
    """Route past reports with the city's table and compare with ``truth_column``."""
    reports, skipped = _labelled(city, table, mapping, truth_column, since, until)
    before = len(reports)
    reports = _enriched(gis, reports)
    skipped["outside territory"] = before - len(reports)
    routed = route(city, reports)
    truth, predicted = reports["truth"].astype(str), routed["team"].astype(str)
    correct = truth == predicted
    triaged = ~correct & (predicted == TRIAGE_TEAM)
    confusion = (
        pd.DataFrame({"truth": truth, "predicted": predicted})
        .value_counts()
        .rename("count")
        .reset_index()
        .sort_values(
            ["count", "truth", "predicted"], ascending=[False, True, True], ignore_index=True
        )
    )
    known = reports["service_code"].map(lambda c: c in city.services)
    rule = (
        routed["rule_id"]
        .astype(object)
        .where(
            routed["rule_id"].notna(),
            known.map({True: DEFAULT_RULE_LABEL, False: UNKNOWN_SERVICE_LABEL}),
        )
    )
    rules = (
        pd.DataFrame({"rule": rule, "team": predicted, "correct": correct})
        .groupby(["rule", "team"], as_index=False)
        .agg(count=("correct", "size"), correct=("correct", "sum"))
        .sort_values(["count", "rule"], ascending=[False, True], ignore_index=True)
    )
    return Replay(
        n=len(reports),
        correct=int(correct.sum()),
        wrong_team=int((~correct & ~triaged).sum()),
        triaged=int(triaged.sum()),
        confusion=confusion,
        rules=rules,
        skipped=skipped,
    )


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
    confidence: float  # share of them that went to ``team``
    name: str  # the service's or group's name
    service: str | None = None
    group: str | None = None
    zone: tuple[str, str] | None = None
    zone_name: str | None = None
    gain: int = 0  # training reports it routes right that the service rules routed wrong, net

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
class ZoneLearning:
    """Thresholds for drafting a zone rule: enough reports, a clear majority, a real gain."""

    min_support: int = 5
    min_confidence: float = 0.6
    min_gain: int = 2


def _service_rules(
    city: City, reports: pd.DataFrame, min_support: int
) -> tuple[list[LearnedRule], dict[str, str]]:
    """The majority team of each catalogue service, for services with enough reports."""
    counts = (
        reports.groupby(["service_code", "truth"])
        .size()
        .rename("count")
        .reset_index()
        .sort_values(["service_code", "count", "truth"], ascending=[True, False, True])
    )
    totals = counts.groupby("service_code")["count"].sum()
    best = counts.drop_duplicates("service_code").set_index("service_code")
    rules: list[LearnedRule] = []
    left_out: dict[str, str] = {}
    for code, row in best.iterrows():  # one row per service, not per report
        service, support = city.services.get(str(code)), int(totals[str(code)])
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
                    confidence=int(row["count"]) / support,
                    name=service.name,
                    service=service.code,
                )
            )
    rules.sort(key=lambda r: (-r.support, str(r.service)))
    return rules, left_out


def _zone_rules(
    city: City,
    reports: pd.DataFrame,
    service_rules: list[LearnedRule],
    layers: list[str],
    thresholds: ZoneLearning,
) -> list[LearnedRule]:
    """Zone cells (of a service, a group or every service) whose majority team beats the
    service rules.

    For each cell (a service or group, and a zone or ``*`` = any zone of the layer), the
    gain is the number of its training reports that went to the cell's majority team,
    minus those the service rules already route right. Cells are counted with one
    ``groupby`` per layer and level, never report by report.
    """
    by_service = {r.service: r.team for r in service_rules}
    base_right = reports["service_code"].map(by_service) == reports["truth"]
    names = {
        **{s.code: s.name for s in city.config.services},
        **{g.code: g.name for g in city.config.groups},
    }
    found: list[tuple[tuple[int, int, int], LearnedRule]] = []
    for layer in layers:
        column = f"zone_{layer}"
        inside = reports[reports[column].notna()].assign(
            base_right=base_right, zone=reports[column].astype(str), every=EVERY
        )
        labels = inside.groupby("zone")[f"{column}_name"].first()
        for level_rank, level in enumerate(("service_code", "group", "every")):
            for any_rank, cells in enumerate((inside, inside.assign(zone=ANY_ZONE))):
                counts = cells.groupby([level, "zone", "truth"]).size().rename("n").reset_index()
                counts = counts.sort_values(
                    [level, "zone", "n", "truth"], ascending=[True, True, False, True]
                )
                totals = cells.groupby([level, "zone"]).agg(
                    support=("truth", "size"), base=("base_right", "sum")
                )
                best = counts.drop_duplicates([level, "zone"]).set_index([level, "zone"])
                best = best.join(totals)
                best["gain"] = best["n"] - best["base"]
                keep = best[
                    (best["support"] >= thresholds.min_support)
                    & (best["n"] >= thresholds.min_confidence * best["support"])
                    & (best["gain"] >= thresholds.min_gain)
                    & best["truth"].isin(list(city.teams))
                ]
                for cell, row in keep.iterrows():  # one row per accepted cell
                    key, zone = cast(tuple[str, str], cell)
                    rule = LearnedRule(
                        team=str(row["truth"]),
                        support=int(row["support"]),
                        confidence=int(row["n"]) / int(row["support"]),
                        name=names.get(str(key), "every service"),
                        service=str(key) if level == "service_code" else None,
                        group=str(key) if level == "group" else None,
                        zone=(layer, str(zone)),
                        zone_name=None if zone == ANY_ZONE else str(labels.get(zone)),
                        gain=int(row["gain"]),
                    )
                    found.append(((level_rank, any_rank, -rule.gain), rule))
    found.sort(key=lambda item: (item[0], item[1].rule_id))
    return [rule for _, rule in found]


def learn(
    city: City,
    table: RawTable,
    mapping: ColumnMapping,
    truth_column: str,
    *,
    gis: CityGIS | None = None,
    since: date | None = None,
    until: date | None = None,
    min_support: int = 5,
    zones: ZoneLearning | None = None,
    corrections: pd.DataFrame | None = None,
) -> Learned:
    """Draft rules from past decisions: the majority team of each service and, with
    ``gis``, the zone rules where location changes the answer (see ``_zone_rules``).

    ``corrections`` (columns ``service_code``, ``team``: see ``corrections_from``) are
    dispatchers' reassignments; each counts as one more decision for the service rules.
    Services below ``min_support``, outside the catalogue (a rule could not name them) or
    whose majority is not a team of city.yaml are left out: they go to triage.
    """
    reports, _ = _labelled(city, table, mapping, truth_column, since, until)
    decisions = reports[["service_code", "truth"]]
    if corrections is not None:
        decisions = pd.concat(
            [decisions, corrections[["service_code", "team"]].rename(columns={"team": "truth"})],
            ignore_index=True,
        )
    rules, left_out = _service_rules(city, decisions, min_support)
    if gis is not None and len(reports):
        enriched = _enriched(gis, reports)
        zone_rules = _zone_rules(city, enriched, rules, list(gis.zones), zones or ZoneLearning())
        rules = zone_rules + rules
    return Learned(rules, left_out, len(reports))


def corrections_from(store: Store, city: City) -> pd.DataFrame:
    """The team each incident was last reassigned to by a person (not by a rule, the
    fallback or an escalation): columns ``incident_id``, ``service_code``, ``team``."""
    jurisdiction = city.jurisdiction_id
    events = store.lookup("events", jurisdiction, "kind", [EventKind.REASSIGNED.value])
    ids = sorted(set(events.loc[events["entity"] == "incident", "entity_id"].astype(int)))
    assignments = store.lookup("assignments", jurisdiction, "incident_id", ids)
    manual = assignments[
        assignments["rule_id"].isna() & ~assignments["actor"].isin([SYSTEM_ACTOR, ESCALATION_ACTOR])
    ]
    last = manual.sort_values("id").drop_duplicates("incident_id", keep="last")
    services = store.lookup("incidents", jurisdiction, "id", ids).set_index("id")
    return pd.DataFrame(
        {
            "incident_id": last["incident_id"].astype(int).to_numpy(),
            "service_code": last["incident_id"].map(services["service_code"]).to_numpy(),
            "team": last["team"].to_numpy(),
        }
    )


def _enriched(gis: CityGIS, reports: pd.DataFrame) -> pd.DataFrame:
    """Reports with their enrichment columns, those outside the territory dropped."""
    enriched = gis.enrich(
        reports["lon"].to_numpy(), reports["lat"].to_numpy(), reports["address"].to_numpy()
    )
    inside = ~enriched["outside_territory"].to_numpy(dtype=bool)
    return pd.concat([reports, enriched], axis=1)[inside].reset_index(drop=True)


def with_rules(city: City, rules: list[LearnedRule]) -> City:
    """The city with its rules replaced by learned ones (to replay them before review)."""
    routing = city.config.routing.model_copy(
        update={"rules": [Route.model_validate(r.entry()) for r in rules]}
    )
    return City(city.folder, city.config.model_copy(update={"routing": routing}))


def split_test(
    city: City,
    gis: CityGIS,
    table: RawTable,
    mapping: ColumnMapping,
    truth_column: str,
    learn_until: date,
    *,
    min_support: int = 1,
    zones: ZoneLearning | None = None,
) -> dict[str, Replay]:
    """Learn on reports up to ``learn_until``, replay the later ones; also the baseline.

    ``baseline``: the majority team of each sub-category seen in training (no location);
    ``learned``: the same plus the zone rules. Both send unseen categories to triage.
    """
    later = learn_until + timedelta(days=1)
    base = learn(city, table, mapping, truth_column, until=learn_until, min_support=min_support)
    learned = learn(
        city,
        table,
        mapping,
        truth_column,
        gis=gis,
        until=learn_until,
        min_support=min_support,
        zones=zones,
    )
    return {
        label: replay(with_rules(city, rules.rules), gis, table, mapping, truth_column, since=later)
        for label, rules in (("baseline", base), ("learned", learned))
    }


def draft_yaml(learned: Learned, *, source: str = "") -> str:
    """``routing.rules`` entries as YAML, each with its evidence as a comment.

    Zone rules come first (conditional rules are evaluated in file order, before the
    service rules). The text is a YAML list: paste it under ``routing.rules`` of city.yaml
    (city.yaml forbids extra keys, hence comments rather than fields for the evidence).
    """
    lines = [
        f"# Draft routing rules learned from {source or 'past reports'} "
        f"({learned.n} reports): the majority team of each service, and "
        f"{len(learned.zone_rules)} zone rules where location changes the answer.",
        "# Review before pasting under routing.rules in city.yaml.",
        f"# {len(learned.left_out)} services left out (they go to triage).",
    ]
    if not learned.rules:
        return "\n".join([*lines, "[]", ""])
    for rule in learned.rules:
        where = ""
        if rule.zone is not None:
            where = f" inside {rule.zone_name or 'any ' + rule.zone[0]}, gain {rule.gain}"
        lines.append(
            f"# {rule.name}{where}: support {rule.support}, confidence {rule.confidence:.1%}"
        )
        lines.append(
            yaml.safe_dump([rule.entry()], allow_unicode=True, sort_keys=False, width=1000).rstrip()
        )
    return "\n".join(lines) + "\n"
