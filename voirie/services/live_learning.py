"""Learning from dispatchers as they work: a reassignment is a correction.

Each routed report ends with the team that handled it: the one the rules gave when no
dispatcher changed it (the decision is *kept*), another when a dispatcher reassigned it
(a *correction*). ``LiveRules`` counts both per sub-category since its rule last changed;
when the corrections towards one team reach ``min_support`` and outnumber the kept
decisions, it proposes a service rule for that team, explained ("learned from 3
reassignments by dispatchers since 2024-03-14") and versioned (each change a new
version), which replaces the service's plain rule (conditional rules still come first).
A report the rules left to triage is a question rather than a mistake: a dispatcher's
answer to it counts towards ``triage_support`` instead (1 on the walk-forward folds of the
Paris history: the first team a dispatcher gives a sub-category without a rule routes the
next reports of it).

``walkforward.live_replay`` replays it in time order: the corrections of a day are fed
back the next day.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

import pandas as pd

from voirie.city import TRIAGE_TEAM

KEPT = ""  # counted like a team: the decisions dispatchers left as the rules gave them


@dataclass(frozen=True)
class Proposal:
    """A service rule learned from dispatchers' corrections."""

    service: str
    team: str
    corrections: int  # reassignments to ``team`` behind it
    since: date  # day of the first of them
    kept: int  # decisions of the service left as routed over the same days
    version: int  # 1 for the first rule learned for the service, then +1 each change

    @property
    def why(self) -> str:
        """The sentence a dispatcher or reviewer reads."""
        return (
            f"learned from {self.corrections} reassignments by dispatchers since "
            f"{self.since:%Y-%m-%d} ({self.kept} decisions kept over the same days)"
        )

    def entry(self) -> dict[str, object]:
        """The proposal as a ``routing.rules`` entry (its service's plain rule)."""
        return {
            "id": f"live-{self.service}",
            "version": self.version,
            "team": self.team,
            "service": self.service,
            "label": self.why,
        }


@dataclass
class LiveRules:
    """The rules learned so far, and the corrections counted towards the next ones.

    ``min_support`` agreeing corrections of the team the rules gave make a rule;
    ``triage_support`` (None: ``min_support``) dispatchers' answers to reports left to
    triage do, where no kept decision outnumbers them."""

    min_support: int
    triage_support: int | None = None
    learned: dict[str, Proposal] = field(default_factory=dict)
    _counts: dict[str, Counter[str]] = field(default_factory=dict)
    _since: dict[str, date] = field(default_factory=dict)

    def team(self, service: str) -> str | None:
        """The team learned for a service, None while it has none."""
        rule = self.learned.get(service)
        return None if rule is None else rule.team

    def feed(self, day: date, service: str, given: str, handled_by: str) -> Proposal | None:
        """Count one finished decision; return the rule it completes, if any."""
        counts = self._counts.setdefault(service, Counter())
        if given == handled_by:
            counts[KEPT] += 1
            return None
        counts[handled_by] += 1
        self._since.setdefault(service, day)
        team, votes = max(
            ((t, n) for t, n in counts.items() if t != KEPT), key=lambda item: (item[1], item[0])
        )
        support = self.min_support
        if given == TRIAGE_TEAM and self.triage_support is not None:
            support = self.triage_support
        if votes < support or votes <= counts[KEPT]:
            return None
        previous = self.learned.get(service)
        proposal = Proposal(
            service=service,
            team=team,
            corrections=votes,
            since=self._since.pop(service),
            kept=counts[KEPT],
            version=1 if previous is None else previous.version + 1,
        )
        self.learned[service] = proposal
        del self._counts[service]
        return proposal


def proposals(
    decisions: pd.DataFrame, min_support: int, triage_support: int | None = None
) -> list[Proposal]:
    """The rules ``LiveRules`` holds after every decision (``day``, ``service_code``,
    ``given``, ``handled_by``, oldest first: see ``rules_replay.decisions_from``), most
    corrections first: what a reviewer is asked to accept (``routing.learning: review``)."""
    live = LiveRules(min_support, triage_support)
    columns = ("day", "service_code", "given", "handled_by")
    for day, service, given, handled_by in decisions[list(columns)].itertuples(index=False):
        live.feed(day, str(service), str(given), str(handled_by))
    return sorted(live.learned.values(), key=lambda p: (-p.corrections, p.service))
