"""Testing a routing table against the decisions people really made, and drafting one.

``history`` runs past reports through validation and enrichment once, with the source's
ground-truth column (for DansMaRue, ``intervenant``); ``replay`` routes them and compares
each team with the truth. ``learn`` drafts rules from the same kind of file
(``rules_learning``): the team most reports of a service went to, recent ones counting
more, and the zone rules that won out of time, with their evidence. The walk-forward
judge of both is ``walkforward``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd
import yaml

from voirie.city import TRIAGE_TEAM, City, Route
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import ColumnMapping
from voirie.ingest.sources import ROW, RawTable
from voirie.ingest.validate import validate
from voirie.model import SYSTEM_ACTOR, EventKind
from voirie.notify.escalation import ESCALATION_ACTOR
from voirie.routing.table import route
from voirie.services.rules_learning import Learned, LearnedRule, Learning, learn_rules
from voirie.store.base import Store

DEFAULT_RULE_LABEL = "(default team)"
UNKNOWN_SERVICE_LABEL = "(service not in catalogue)"


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
    reports, skipped = history(city, gis, table, mapping, truth_column, since=since, until=until)
    return replay_history(city, reports, skipped)


def replay_history(
    city: City, reports: pd.DataFrame, skipped: dict[str, int] | None = None
) -> Replay:
    """Route reports of a ``history`` with the city's table and compare with their truth."""
    routed = route(city, reports)
    known = reports["service_code"].map(lambda c: c in city.services)
    rule = (
        routed["rule_id"]
        .astype(object)
        .where(
            routed["rule_id"].notna(),
            known.map({True: DEFAULT_RULE_LABEL, False: UNKNOWN_SERVICE_LABEL}),
        )
    )
    return compare(reports["truth"], routed["team"], rule, skipped)


def compare(
    truth: pd.Series, teams: pd.Series, rule: pd.Series, skipped: dict[str, int] | None = None
) -> Replay:
    """Each report's team (decided by ``rule``) against the team that really handled it."""
    truth, predicted = truth.astype(str), teams.astype(str)
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
    rules = (
        pd.DataFrame({"rule": rule, "team": predicted, "correct": correct})
        .groupby(["rule", "team"], as_index=False)
        .agg(count=("correct", "size"), correct=("correct", "sum"))
        .sort_values(["count", "rule"], ascending=[False, True], ignore_index=True)
    )
    return Replay(
        n=len(truth),
        correct=int(correct.sum()),
        wrong_team=int((~correct & ~triaged).sum()),
        triaged=int(triaged.sum()),
        confusion=confusion,
        rules=rules,
        skipped=dict(skipped or {}),
    )


def history(
    city: City,
    gis: CityGIS,
    table: RawTable,
    mapping: ColumnMapping,
    truth_column: str,
    *,
    since: date | None = None,
    until: date | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Past reports ready to learn from and replay, once: validated, with their truth
    value and local declaration ``day``, enriched, those outside the territory dropped;
    and how many were left out, by reason."""
    reports, skipped = _labelled(city, table, mapping, truth_column, since, until)
    before = len(reports)
    reports = _enriched(gis, reports)
    skipped["outside territory"] = before - len(reports)
    reports["day"] = _local_dates(reports["requested_at"], city.config.timezone)
    return reports, skipped


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
    policy: Learning | None = None,
    corrections: pd.DataFrame | None = None,
) -> Learned:
    """Draft rules from past decisions (``rules_learning.learn_rules``): the
    recency-weighted majority team of each service and, with ``gis``, the zone rules
    where location changes the answer and that won out of time.

    ``corrections`` (columns ``service_code``, ``team``: see ``corrections_from``) are
    dispatchers' reassignments; each counts as one more decision for the service rules.
    Services below ``min_support``, outside the catalogue (a rule could not name them) or
    whose majority is not a team of city.yaml are left out: they go to triage.
    """
    reports, _ = _labelled(city, table, mapping, truth_column, since, until)
    layers: list[str] = []
    if gis is not None:
        reports, layers = _enriched(gis, reports), list(gis.zones)
    reports["day"] = _local_dates(reports["requested_at"], city.config.timezone)
    extra = None
    if corrections is not None:
        extra = corrections[["service_code", "team"]].rename(columns={"team": "truth"})
    return learn_rules(
        city,
        reports,
        _end_of(reports, until),
        layers=layers,
        min_support=min_support,
        policy=policy,
        extra=extra,
    )


def _end_of(reports: pd.DataFrame, until: date | None) -> date:
    """The day learning happens: after ``until``, else after the last report."""
    if until is not None:
        return until + timedelta(days=1)
    if not len(reports):
        return date.today()
    last: date = reports["day"].max()
    return last + timedelta(days=1)


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


def decisions_from(
    store: Store, city: City, services: Collection[str] | None = None
) -> pd.DataFrame:
    """Every routed incident's decision (of ``services`` only, if given) and how it ended,
    oldest first: columns ``day`` (local date of the last reassignment by a person, else
    of the routing), ``service_code``, ``given`` (the team the rules gave) and
    ``handled_by`` (the team a person last reassigned it to, else ``given``). Merged
    incidents are left out."""
    jurisdiction = city.jurisdiction_id
    codes = sorted(city.services if services is None else set(services) & set(city.services))
    incidents = store.lookup("incidents", jurisdiction, "service_code", codes)
    incidents = incidents[incidents["merged_into"].isna()].set_index("id")
    ids = [int(i) for i in incidents.index]
    assignments = store.lookup("assignments", jurisdiction, "incident_id", ids).sort_values("id")
    given = assignments.drop_duplicates("incident_id").set_index("incident_id")
    manual = assignments[
        assignments["rule_id"].isna() & ~assignments["actor"].isin([SYSTEM_ACTOR, ESCALATION_ACTOR])
    ]
    last = manual.drop_duplicates("incident_id", keep="last").set_index("incident_id")
    at = pd.to_datetime(last["assigned_at"].reindex(given.index), utc=True).fillna(
        pd.to_datetime(given["assigned_at"], utc=True)
    )
    decisions = pd.DataFrame(
        {
            "day": _local_dates(at, city.config.timezone),
            "service_code": incidents["service_code"].reindex(given.index),
            "given": given["team"],
            "handled_by": last["team"].reindex(given.index).fillna(given["team"]),
            "at": at,
        }
    )
    return decisions.sort_values("at").drop(columns="at").reset_index(drop=True)


def _enriched(gis: CityGIS, reports: pd.DataFrame) -> pd.DataFrame:
    """Reports with their enrichment columns, those outside the territory dropped."""
    enriched = gis.enrich(
        reports["lon"].to_numpy(), reports["lat"].to_numpy(), reports["address"].to_numpy()
    )
    inside = ~enriched["outside_territory"].to_numpy(dtype=bool)
    return pd.concat([reports, enriched], axis=1)[inside].reset_index(drop=True)


def with_rules(
    city: City, rules: list[LearnedRule], services: Collection[str] | None = None
) -> City:
    """The city with its rules replaced by learned ones (to replay them before review);
    with ``services``, its catalogue cut down to them, as a city configured from that
    history would have it (a report of another service then goes to triage)."""
    routing = city.config.routing.model_copy(
        update={"rules": [Route.model_validate(r.entry()) for r in rules]}
    )
    update: dict[str, object] = {"routing": routing}
    if services is not None:
        keep = set(services)
        update["services"] = [s for s in city.config.services if s.code in keep]
    return City(city.folder, city.config.model_copy(update=update))


def draft_yaml(learned: Learned, *, source: str = "") -> str:
    """``routing.rules`` entries as YAML, each with its evidence as a comment.

    Zone rules come first (conditional rules are evaluated in file order, before the
    service rules). The text is a YAML list: paste it under ``routing.rules`` of city.yaml
    (city.yaml forbids extra keys, hence comments rather than fields for the evidence).
    """
    lines = [
        f"# Draft routing rules learned from {source or 'past reports'} "
        f"({learned.n} reports): the recency-weighted majority team of each service, and "
        f"{len(learned.zone_rules)} zone rules where location changes the answer.",
        "# Review before pasting under routing.rules in city.yaml.",
        f"# {len(learned.left_out)} services left out (they go to triage).",
    ]
    if not learned.rules:
        return "\n".join([*lines, "[]", ""])
    for rule in learned.rules:
        where = ""
        if rule.zone is not None:
            where = (
                f" inside {rule.zone_name or 'any ' + rule.zone[0]}, weighted gain {rule.gain:.1f}"
            )
            if rule.validated_gain is not None:
                where += f", {rule.validated_gain:+d} out of time"
        lines.append(
            f"# {rule.name}{where}: support {rule.support}, confidence {rule.confidence:.1%}"
        )
        lines.append(
            yaml.safe_dump([rule.entry()], allow_unicode=True, sort_keys=False, width=1000).rstrip()
        )
    return "\n".join(lines) + "\n"
