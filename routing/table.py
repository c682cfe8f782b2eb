"""The routing table: a service goes to a team, explained in words a dispatcher reads.

Evaluation order, most specific first: a rule naming the service, then a rule naming its
group, then the city's default team, then the triage queue (which is where the default
team points unless a city says otherwise). A category not in city.yaml always goes to
triage: guessing a team for it would be worse than asking a person.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from voirie.city import TRIAGE_TEAM, City

ROUTE_COLUMNS = ["team", "rule_id", "rule_version", "priority", "sla_days", "routing_reason"]
DEFAULT_PRIORITY = 3


@dataclass(frozen=True)
class Decision:
    """The routing outcome for one service."""

    team: str
    rule_id: str | None
    rule_version: int | None
    priority: int
    sla_days: float | None
    reason: str


def decide(city: City, service_code: str) -> Decision:
    """Route one service code through the fallback chain."""
    service = city.services.get(service_code)
    if service is None:
        return Decision(
            TRIAGE_TEAM, None, None, DEFAULT_PRIORITY, None,
            f"service {service_code} is not in the city's catalogue → {TRIAGE_TEAM}",
        )
    rules = city.config.routing.rules
    for rule in [r for r in rules if r.service == service_code] + [
        r for r in rules if r.group == service.group
    ]:
        scope = f"« {service.name} »" if rule.service else f"group « {service.group} »"
        return Decision(
            rule.team, rule.id, rule.version, rule.priority, rule.sla_days,
            f"{scope} → {city.teams[rule.team].name}, rule {rule.id} v{rule.version}",
        )
    team = city.config.routing.default_team
    return Decision(
        team, None, None, DEFAULT_PRIORITY, None,
        f"no rule for « {service.name} » → city default {team}",
    )


def route(city: City, service_codes: pd.Series) -> pd.DataFrame:
    """Routing columns for every row, deciding once per distinct service (not per row)."""
    decisions = {code: decide(city, code) for code in service_codes.unique()}
    table = pd.DataFrame.from_dict(
        {
            code: (d.team, d.rule_id, d.rule_version, d.priority, d.sla_days, d.reason)
            for code, d in decisions.items()
        },
        orient="index",
        columns=ROUTE_COLUMNS,
    )
    return table.reindex(service_codes.to_numpy()).set_index(service_codes.index)


def unreachable_rules(city: City) -> list[str]:
    """Warnings for rules that can never fire, each naming the rule's key and id.

    A second rule for one service (or one group) never fires: the first one wins. A group
    rule never fires when every service of its group has its own service rule.
    """
    warnings: list[str] = []
    first: dict[tuple[str, str], str] = {}
    for i, rule in enumerate(city.config.routing.rules):
        target = ("service", rule.service) if rule.service else ("group", rule.group or "")
        where = f"routing.rules[{i}] ({rule.id})"
        if target in first:
            warnings.append(
                f"{where} never fires: rule {first[target]} comes first for "
                f"{target[0]} {target[1]!r}"
            )
        else:
            first[target] = rule.id
    with_rule = {r.service for r in city.config.routing.rules if r.service}
    for i, rule in enumerate(city.config.routing.rules):
        if rule.group is None:
            continue
        services = [s.code for s in city.config.services if s.group == rule.group]
        if services and all(code in with_rule for code in services):
            warnings.append(
                f"routing.rules[{i}] ({rule.id}) never fires: every service of group "
                f"{rule.group!r} has its own service rule"
            )
    return warnings
