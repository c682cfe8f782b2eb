"""Corrections staff make on the case page: the category of an incident and where its pin
stands, each routing the incident again.

A report filed under the wrong category goes to the wrong team with the wrong SLA.
Changing the category routes the incident again with the city's rules, as a new
incident of that category at that place would be (the rules read its street and zones,
enriched again from its point; the SLA counts from its first report), and records the
decision like every routing decision: an assignment naming the rule and version, and an
event saying old and new category, the person's reason and the rule's words.

Routing again changes only what the rules decided: when a person gave the incident its
current team (a reassignment, an escalation), that team, priority and due date stay and
the event says what the rules would now decide (``workflow.assigned_by_rules``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from voirie.city import City
from voirie.errors import Conflict, InvalidInput, NotFound
from voirie.model import EventKind, Flag
from voirie.notify.outbox import enqueue
from voirie.routing.table import route
from voirie.services.auth import Action, Principal
from voirie.services.pipeline import Pipeline
from voirie.services.territory import outside_reason
from voirie.services.workflow import MAX_TEXT_LENGTH, assigned_by_rules, record_assignment
from voirie.store.base import IncidentRow, UnitOfWork
from voirie.store.selection import Selection


@dataclass(frozen=True)
class Rerouted:
    """What a change of category decided."""

    incident_id: int
    previous_service: str
    service_code: str
    previous_team: str
    team: str
    rule_id: str | None
    rule_version: int | None
    routing_reason: str
    """The rules' decision (rule, version, words), applied or not (``kept_by``)."""
    kept_by: str | None = None
    """Who gave the incident the team it keeps (a person's reassignment, an escalation),
    when the rules' decision was not applied; None when it was."""


@dataclass(frozen=True)
class _Routing:
    """What the rules decide for an incident now, and whether it takes that decision."""

    team: str
    """The incident's team after routing again: the rules' team, or the one it keeps."""
    rule_id: str | None
    rule_version: int | None
    priority: int
    due_at: datetime | None
    words: str
    """The rules' decision in words (``routing_reason``)."""
    kept_by: str | None
    """Who assigned the team it keeps (the rules' decision not applied), or None."""

    def changes(self) -> dict[str, object]:
        """The incident's routing columns to set: none when it keeps its assignment."""
        if self.kept_by is not None:
            return {}
        return {"team": self.team, "priority": self.priority, "due_at": self.due_at}

    def told(self) -> str:
        """The routing as the event says it."""
        if self.kept_by is None:
            return self.words
        return (
            f"team {self.team} kept (assigned by {self.kept_by}, not by the rules); "
            f"the rules would now say: {self.words}"
        )


def _route_again(
    pipeline: Pipeline, uow: UnitOfWork, row: IncidentRow, batch: pd.DataFrame
) -> _Routing:
    """Route the stored, locked incident ``row`` as the one enriched report ``batch``
    says; its current assignment (read in this transaction) decides whether the rules'
    decision is taken or its team kept."""
    decision = route(pipeline.city, batch, pipeline.live_routing.table(uow)).iloc[0]
    due = decision["due_at"]
    current = uow.incidents.latest_assignment(row["id"])
    kept = None if current is None or assigned_by_rules(current) else current
    return _Routing(
        team=str(row["team"] if kept is not None else decision["team"]),
        rule_id=None if pd.isna(decision["rule_id"]) else str(decision["rule_id"]),
        rule_version=None if pd.isna(decision["rule_version"]) else int(decision["rule_version"]),
        priority=int(decision["priority"]),
        due_at=None if pd.isna(due) else pd.Timestamp(due).to_pydatetime(),
        words=str(decision["routing_reason"]),
        kept_by=None if kept is None else kept.actor,
    )


def _take(
    uow: UnitOfWork,
    city: City,
    row: IncidentRow,
    routing: _Routing,
    note: str,
    now: datetime,
    actor: str,
) -> None:
    """Record a taken decision: its assignment, and the notice to a new team."""
    if routing.kept_by is not None:
        return
    record_assignment(
        uow,
        city,
        row["id"],
        routing.team,
        (routing.rule_id, routing.rule_version),
        routing.words,
        routing.priority,
        routing.due_at,
        now,
        actor,
    )
    if routing.team != row["team"]:
        _notify_reassigned(
            uow, city, row["id"], row["team"], routing.team, note, routing.priority, now
        )


def recategorize(
    pipeline: Pipeline,
    principal: Principal,
    incident_id: int,
    service_code: str,
    reason: str,
    *,
    at: datetime | None = None,
) -> Rerouted:
    """Give an incident another category and route it again (team, priority, due date
    and rule), in one transaction with its assignment, event and the new team's notice.
    Needs the right to reassign the incident; ``reason`` is required."""
    city = pipeline.city
    if service_code not in city.services:
        raise InvalidInput(
            f"service_code: unknown category {service_code!r}; the city's categories are "
            "listed under services: in its city.yaml",
            field="service_code",
        )
    note = reason.strip()
    if not note or len(note) > MAX_TEXT_LENGTH:
        raise InvalidInput(
            f"reason: 1 to {MAX_TEXT_LENGTH} characters, saying why the category changes",
            field="reason",
        )
    now = at or datetime.now(UTC)
    found = pipeline.reads.incidents(Selection(ids=(incident_id,)))
    if found.empty:
        raise NotFound(f"incident {incident_id} does not exist", field="incident_id")
    before = found.iloc[0]
    batch = _as_new_report(pipeline, before, service_code)
    with pipeline.store.transaction(city.jurisdiction_id) as uow:
        uow.lock(pipeline.policy.lock_keys([str(before["service_code"]), service_code]))
        row = uow.incidents.get(incident_id)
        if row is None:
            raise NotFound(f"incident {incident_id} does not exist", field="incident_id")
        principal.check(Action.ASSIGN, row["team"])
        if row["service_code"] == service_code:
            raise Conflict(
                f"service_code: incident {incident_id} is already of category {service_code!r}",
                field="service_code",
            )
        routing = _route_again(pipeline, uow, row, batch)
        uow.incidents.update(
            incident_id,
            {"service_code": service_code, **routing.changes(), "updated_at": now},
        )
        _take(uow, city, row, routing, note, now, principal.name)
        uow.events.append(
            "incident",
            incident_id,
            EventKind.ROUTED,
            principal.name,
            f"category {row['service_code']} → {service_code}: {note}; {routing.told()}",
            at=now,
        )
    return Rerouted(
        incident_id,
        row["service_code"],
        service_code,
        row["team"],
        routing.team,
        routing.rule_id,
        routing.rule_version,
        routing.words,
        routing.kept_by,
    )


def _notify_reassigned(
    uow: UnitOfWork,
    city: City,
    incident_id: int,
    previous: object,
    team: str,
    note: str,
    priority: int,
    now: datetime,
) -> None:
    """The "reassigned" notice to the new team, when a re-routing changed the team (a
    category change or a move): one writer for both edits."""
    enqueue(
        uow,
        city,
        kind="reassigned",
        incident_id=incident_id,
        team=team,
        data={"previous_team": previous, "reason": note, "priority": priority},
        now=now,
    )


def _as_new_report(pipeline: Pipeline, incident: pd.Series, service_code: str) -> pd.DataFrame:
    """The incident as the one enriched report routing reads: its point enriched again,
    the new category, and its first report's time (the SLA counts from there)."""
    enriched = pipeline.gis.enrich(
        np.array([float(incident["lon"])]), np.array([float(incident["lat"])])
    )
    report = pd.DataFrame(
        {
            "service_code": [service_code],
            "lon": [float(incident["lon"])],
            "lat": [float(incident["lat"])],
            "requested_at": pd.to_datetime([incident["first_reported_at"]], utc=True),
        }
    )
    return pd.concat([report, enriched.drop(columns=["lon", "lat"], errors="ignore")], axis=1)


@dataclass(frozen=True)
class Moved:
    """Where a moved incident now stands, and what routing decided from there."""

    incident_id: int
    lon: float
    lat: float
    segment_id: str | None
    street_name: str | None
    zones: dict[str, str | None]
    """The zone code of the new point in each zone layer (``None`` outside them all)."""
    previous_team: str
    team: str
    rule_id: str | None
    rule_version: int | None
    routing_reason: str
    """The rules' decision (rule, version, words), applied or not (``kept_by``)."""
    kept_by: str | None = None
    """Who gave the incident the team it keeps (a person's reassignment, an escalation),
    when the rules' decision was not applied; None when it was."""


def move(
    pipeline: Pipeline,
    principal: Principal,
    incident_id: int,
    lon: float,
    lat: float,
    reason: str,
    *,
    at: datetime | None = None,
) -> Moved:
    """Put an incident's pin where the problem really is (inside the territory) and route
    it again from there, in one transaction.

    The point is enriched as intake enriches a report (snapped to its street, its zones
    looked up: they become the incident's zones in every filter, export and statistic),
    then the city's rules route the incident from its new street and zones as a change of
    category does: team, priority and due date (counted from its first report), an
    assignment naming the rule and version, a notice to a new team; unless a person gave
    it its current team, which it keeps. Two events: the move (old and new place and
    zones, the reason) and the routing decision.

    Moving is a correction of fact by those who work on the incident (the right to
    change its status); when the rules then give it to another team, that is a
    reassignment, which needs the right to reassign it too."""
    note = reason.strip()
    if not note or len(note) > MAX_TEXT_LENGTH:
        raise InvalidInput(
            f"reason: 1 to {MAX_TEXT_LENGTH} characters, saying why the pin moves",
            field="reason",
        )
    city = pipeline.city
    found = pipeline.reads.incidents(Selection(ids=(incident_id,)))
    if found.empty:
        raise NotFound(f"incident {incident_id} does not exist", field="incident_id")
    before = found.iloc[0]
    placed = before.copy()
    placed["lon"], placed["lat"] = float(lon), float(lat)
    batch = _as_new_report(pipeline, placed, str(before["service_code"]))
    place = batch.iloc[0]
    if place[Flag.OUTSIDE_TERRITORY]:
        reason_words = outside_reason(city, pipeline.gis, lon, lat)
        raise InvalidInput(f"lon: {reason_words}", field="lon")
    segment = None if pd.isna(place["segment_id"]) else str(place["segment_id"])
    street = None if pd.isna(place["street_name"]) else str(place["street_name"])
    zones = {name: _code(place.get(f"zone_{name}")) for name in pipeline.gis.zones}
    named = {
        name: (code, _code(place.get(f"zone_{name}_name")))
        for name, code in zones.items()
        if code is not None
    }
    old_zones = {name: _code(before.get(f"zone_{name}")) for name in pipeline.gis.zones}
    now = at or datetime.now(UTC)
    with pipeline.store.transaction(city.jurisdiction_id) as uow:
        row = uow.incidents.get(incident_id)
        if row is None:
            raise NotFound(f"incident {incident_id} does not exist", field="incident_id")
        service_code = str(row["service_code"])
        uow.lock(pipeline.policy.lock_keys([service_code]))
        principal.check(Action.STATUS, row["team"])
        batch["service_code"] = service_code  # as stored now, whatever was read before
        routing = _route_again(pipeline, uow, row, batch)
        team = routing.team
        if team != row["team"]:
            principal.check(Action.ASSIGN, row["team"])
        uow.incidents.update(
            incident_id,
            {
                "lon": lon,
                "lat": lat,
                "segment_id": segment,
                "street_name": street,
                **routing.changes(),
                "updated_at": now,
            },
        )
        uow.incidents.set_zones(incident_id, named)
        _take(uow, city, row, routing, note, now, principal.name)
        changed = [
            f"{k} {old_zones[k] or '?'} → {v or '?'}" for k, v in zones.items() if old_zones[k] != v
        ]
        uow.events.append(
            "incident",
            incident_id,
            EventKind.ENRICHED,
            principal.name,
            f"moved from {row['lon']:.6f},{row['lat']:.6f} ({row['street_name'] or '?'}) "
            f"to {lon:.6f},{lat:.6f} ({street or '?'})"
            + (f"; {', '.join(changed)}" if changed else "")
            + f": {note}",
            at=now,
        )
        handed = f"team {row['team']} → {team}; " if team != row["team"] else ""
        uow.events.append(
            "incident",
            incident_id,
            EventKind.ROUTED,
            principal.name,
            f"routed again after the move: {handed}{routing.told()}",
            at=now,
        )
    return Moved(
        incident_id, lon, lat, segment, street, zones, str(row["team"]), team, routing.rule_id,
        routing.rule_version, routing.words, routing.kept_by,
    )  # fmt: skip


def _code(value: object) -> str | None:
    """A zone code cell as text (``None`` when missing)."""
    # A frame's missing cell is None, NA or NaN (the one value unequal to itself).
    return None if value is None or value is pd.NA or value != value else str(value)
