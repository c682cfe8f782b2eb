"""Routing that learns from dispatchers, live (issue 18 item 2).

A reassignment is a correction. After each one (and on demand, ``voirie rules learn-live``)
the corrections of that sub-category since its learned rule last changed are counted with
``LiveRules``, the procedure chosen on the walk-forward folds (``walkforward.live_replay``):
when those to one team reach ``routing.learning.min_support`` (``triage_support`` for the
answers to reports left to triage) and outnumber the decisions kept meanwhile, a new
version of the sub-category's rule is stored, explained ("learned from 4 reassignments by
dispatchers since 2024-05-02 …"). In ``review`` mode it waits for a
person (``voirie rules review``, ``accept``, ``reject``); in ``auto`` mode it is in force at
once. Every version is kept with who decided and when; ``revert`` takes one out of force,
and routing goes back to the version before it, or to city.yaml.

The rules in force replace their sub-category's plain rule (conditional rules still come
first). ``LiveRouting`` gives the writer the routing table in force, re-read through the
writer's own transaction at most every ``routing.learning.refresh_s`` seconds, so several
server processes follow a decision taken in one of them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pandas as pd

from voirie.city import City, Route
from voirie.errors import InvalidInput, NotFound
from voirie.notify.versions import record_rules
from voirie.routing.table import RoutingTable, is_conditional
from voirie.services.auth import Action, Principal
from voirie.services.live_learning import LiveRules, Proposal
from voirie.services.rules_replay import decisions_from
from voirie.store.base import LearnedRuleRecord, Store, UnitOfWork

AUTO_ACTOR = "voirie (routing.learning: auto)"
PROPOSED, ACTIVE, REJECTED, REVERTED = "proposed", "active", "rejected", "reverted"


def rule_id(service_code: str) -> str:
    """The id a learned rule of a sub-category routes under (its versions count up)."""
    return f"live-{service_code}"


def in_force(versions: Iterable[LearnedRuleRecord]) -> dict[str, LearnedRuleRecord]:
    """The newest active version of each sub-category (an accepted v2 supersedes v1; a
    reverted v2 hands back to v1 if it is still active)."""
    found: dict[str, LearnedRuleRecord] = {}
    for rule in versions:
        held = found.get(rule.service_code)
        if rule.status == ACTIVE and (held is None or rule.version > held.version):
            found[rule.service_code] = rule
    return found


def _proposal(rule: LearnedRuleRecord) -> Proposal:
    return Proposal(
        rule.service_code, rule.team, rule.corrections, rule.since, rule.kept, rule.version
    )


def explain(rule: LearnedRuleRecord) -> str:
    """The sentence a dispatcher or reviewer reads (the routing reason of its reports)."""
    return _proposal(rule).why


def with_learned(city: City, rules: Iterable[LearnedRuleRecord]) -> City:
    """The city with each learned rule in place of its sub-category's plain rule."""
    learned = {rule.service_code: rule for rule in rules}
    if not learned:
        return city
    kept = [
        r
        for r in city.config.routing.rules
        if is_conditional(r) or r.service is None or r.service not in learned
    ]
    added = [Route.model_validate(_proposal(r).entry()) for r in learned.values()]
    routing = city.config.routing.model_copy(update={"rules": kept + added})
    return City(city.folder, city.config.model_copy(update={"routing": routing}))


class LiveRouting:
    """The routing table in force: the city's, with the learned rules in force."""

    def __init__(self, city: City, table: RoutingTable) -> None:
        self.city = city
        self.base = table
        self._table = table
        self._in_force: tuple[tuple[str, int], ...] = ()
        self._read_at = float("-inf")

    def table(self, uow: UnitOfWork) -> RoutingTable:
        """The table to route with now, re-read through ``uow`` when it may be stale."""
        settings = self.city.config.routing.learning
        if settings.mode == "off" or time.monotonic() - self._read_at < settings.refresh_s:
            return self._table
        rules = in_force(uow.learned_rules.versions())
        key = tuple(sorted((s, r.version) for s, r in rules.items()))
        if key != self._in_force:
            self._table = RoutingTable(with_learned(self.city, rules.values()))
            self._in_force = key
        self._read_at = time.monotonic()
        return self._table

    def invalidate(self) -> None:
        """Re-read at the next write (a decision was just taken in this process)."""
        self._read_at = float("-inf")


@dataclass(frozen=True)
class Learned:
    """What one learning pass stored."""

    rules: list[LearnedRuleRecord]
    mode: str


def _local_day(moment: datetime, city: City) -> date:
    return moment.astimezone(ZoneInfo(city.config.timezone)).date()


def learn(
    store: Store, city: City, services: Sequence[str] | None = None, now: datetime | None = None
) -> Learned:
    """One learning pass over the decisions stored (of ``services`` only, if given): store
    the new version each sub-category's corrections propose since its rule last changed."""
    settings = city.config.routing.learning
    if settings.mode == "off":
        return Learned([], settings.mode)
    moment = now or datetime.now(UTC)
    decisions = decisions_from(store, city, services)
    stored: list[LearnedRuleRecord] = []
    with store.transaction(city.jurisdiction_id) as uow:
        every = uow.learned_rules.versions()
        newest = {r.service_code: r for r in every}  # by version: the last one wins
        held = in_force(every)
        for service, rows in decisions.groupby("service_code", sort=True):
            last = newest.get(str(service))
            if last is not None:
                if last.status == PROPOSED:
                    continue  # one proposal at a time waits for its review
                changed = last.decided_at or last.learned_at
                rows = rows[rows["day"] > _local_day(changed, city)]
            proposal = _count(settings.min_support, settings.triage_support, rows)
            if proposal is None or (
                (current := held.get(str(service))) is not None and current.team == proposal.team
            ):
                continue
            auto = settings.mode == "auto"
            rule = LearnedRuleRecord(
                service_code=str(service),
                version=1 if last is None else last.version + 1,
                team=proposal.team,
                corrections=proposal.corrections,
                kept=proposal.kept,
                since=proposal.since,
                status=ACTIVE if auto else PROPOSED,
                learned_at=moment,
                decided_by=AUTO_ACTOR if auto else None,
                decided_at=moment if auto else None,
            )
            uow.learned_rules.add(rule)
            if auto:
                record_rules(uow, with_learned(city, [rule]), moment)
            stored.append(rule)
    return Learned(stored, settings.mode)


def _count(min_support: int, triage_support: int, rows: pd.DataFrame) -> Proposal | None:
    """The rule ``LiveRules`` holds after the decisions ``rows`` (oldest first), if any."""
    live = LiveRules(min_support, triage_support)
    for day, service, given, handled_by in rows[
        ["day", "service_code", "given", "handled_by"]
    ].itertuples(index=False):
        live.feed(day, str(service), str(given), str(handled_by))
    return next(iter(live.learned.values()), None)


def versions(store: Store, city: City) -> list[LearnedRuleRecord]:
    """Every version of every learned rule, by sub-category then version."""
    with store.transaction(city.jurisdiction_id) as uow:
        return uow.learned_rules.versions()


def decide(
    store: Store,
    city: City,
    service_code: str,
    status: str,
    actor: str | Principal,
) -> LearnedRuleRecord:
    """Accept (``active``) or reject a proposed rule, or revert the rule in force, of one
    sub-category; the version decided on, as stored before the decision. A staff member
    (``Principal``) must be allowed to review rules for the rule's team; a name is an
    operator at the command line."""
    wanted = {ACTIVE: PROPOSED, REJECTED: PROPOSED, REVERTED: ACTIVE}
    if status not in wanted:
        raise InvalidInput(f"status: one of {', '.join(wanted)}", field="status")
    with store.transaction(city.jurisdiction_id) as uow:
        candidates = [
            r
            for r in uow.learned_rules.versions()
            if r.service_code == service_code and r.status == wanted[status]
        ]
        if not candidates:
            raise NotFound(
                f"service: {service_code!r} has no {wanted[status]} learned rule",
                field="service",
            )
        rule = max(candidates, key=lambda r: r.version)
        if isinstance(actor, Principal):
            actor.check(Action.RULES, rule.team)
        name = actor.name if isinstance(actor, Principal) else actor
        now = datetime.now(UTC)
        uow.learned_rules.decide(service_code, rule.version, status, name, now)
        if status == ACTIVE:  # its version is stored before any assignment cites it
            record_rules(uow, with_learned(city, [rule]), now)
    return rule
