"""Testing a routing table against the decisions people really made, and drafting one.

``replay`` runs past reports through validation, enrichment and ``route`` (one decision per
distinct service), then compares each team with the source's ground-truth column (for
DansMaRue, ``intervenant``). ``learn`` drafts service rules from the same kind of file: the
team most reports of a service went to, with its support and confidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pandas as pd
import yaml

from voirie.city import TRIAGE_TEAM, City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import ColumnMapping
from voirie.ingest.sources import ROW, RawTable
from voirie.ingest.validate import validate
from voirie.routing.table import route

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
    reports, skipped = _labelled(city, table, mapping, truth_column, since, until)
    enriched = gis.enrich(
        reports["lon"].to_numpy(), reports["lat"].to_numpy(), reports["address"].to_numpy()
    )
    inside = ~enriched["outside_territory"].to_numpy(dtype=bool)
    skipped["outside territory"] = int((~inside).sum())
    reports = reports[inside].reset_index(drop=True)
    routed = route(city, reports["service_code"])
    truth, predicted = reports["truth"].astype(str), routed["team"].astype(str)
    correct = truth == predicted
    triaged = ~correct & (predicted == TRIAGE_TEAM)
    confusion = (
        pd.DataFrame({"truth": truth, "predicted": predicted})
        .value_counts()
        .rename("count")
        .reset_index()
        .sort_values(["count", "truth", "predicted"], ascending=[False, True, True],
                     ignore_index=True)
    )
    known = reports["service_code"].map(lambda c: c in city.services)
    rule = routed["rule_id"].astype(object).where(
        routed["rule_id"].notna(), known.map({True: DEFAULT_RULE_LABEL,
                                              False: UNKNOWN_SERVICE_LABEL})
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
    """A drafted service rule with the evidence behind it."""

    service: str
    service_name: str
    team: str
    support: int  # reports of the service
    confidence: float  # share of them that went to ``team``

    @property
    def rule_id(self) -> str:
        """The rule's id in city.yaml."""
        return f"svc-{self.service}"


@dataclass
class Learned:
    """Drafted rules, and the services left to triage with why."""

    rules: list[LearnedRule]
    left_out: dict[str, str]  # service code -> reason
    n: int


def learn(
    city: City,
    table: RawTable,
    mapping: ColumnMapping,
    truth_column: str,
    *,
    since: date | None = None,
    until: date | None = None,
    min_support: int = 5,
) -> Learned:
    """The majority team of each catalogue service, for services with enough reports.

    Services below ``min_support``, outside the catalogue (a rule could not name them) or
    whose majority is not a team of city.yaml are left out: they go to triage.
    """
    reports, _ = _labelled(city, table, mapping, truth_column, since, until)
    counts = (
        reports.groupby(["service_code", "truth"]).size().rename("count").reset_index()
        .sort_values(["service_code", "count", "truth"], ascending=[True, False, True])
    )
    totals = counts.groupby("service_code")["count"].sum()
    best = counts.drop_duplicates("service_code").set_index("service_code")
    rules: list[LearnedRule] = []
    left_out: dict[str, str] = {}
    for code, row in best.iterrows():
        service, support = city.services.get(str(code)), int(totals[str(code)])
        if service is None:
            left_out[str(code)] = "not in the city's catalogue"
        elif support < min_support:
            left_out[str(code)] = f"{support} reports < min support {min_support}"
        elif row["truth"] not in city.teams:
            left_out[str(code)] = f"team {row['truth']!r} is not in city.yaml"
        else:
            rules.append(LearnedRule(
                service.code, service.name, str(row["truth"]), support,
                int(row["count"]) / support,
            ))
    rules.sort(key=lambda r: (-r.support, r.service))
    return Learned(rules, left_out, len(reports))


def draft_yaml(learned: Learned, *, source: str = "") -> str:
    """``routing.rules`` entries as YAML, each with its support and confidence as a comment.

    The text is a YAML list: paste it under ``routing.rules`` of city.yaml (city.yaml
    forbids extra keys, hence comments rather than fields for the evidence).
    """
    lines = [
        f"# Draft routing rules learned from {source or 'past reports'} "
        f"({learned.n} reports): the majority team of each service.",
        "# Review before pasting under routing.rules in city.yaml.",
        f"# {len(learned.left_out)} services left out (they go to triage).",
    ]
    if not learned.rules:
        return "\n".join([*lines, "[]", ""])
    for rule in learned.rules:
        entry = {"id": rule.rule_id, "team": rule.team, "service": rule.service}
        lines.append(
            f"# {rule.service_name}: support {rule.support}, "
            f"confidence {rule.confidence:.1%}"
        )
        lines.append(
            yaml.safe_dump([entry], allow_unicode=True, sort_keys=False, width=1000).rstrip()
        )
    return "\n".join(lines) + "\n"
