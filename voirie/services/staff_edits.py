"""Corrections staff make on the case page: the category of an incident and where its pin
stands, each routing the incident again.

A report filed under the wrong category goes to the wrong team with the wrong SLA.
Changing the category routes the incident again with the city's rules, as a new
incident of that category at that place would be (the rules read its street and zones,
enriched again from its point; the SLA counts from its first report), and records the
decision like every routing decision: an assignment naming the rule and version, and an
event saying old and new category, the person's reason and the rule's words.
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
from voirie.services.workflow import MAX_TEXT_LENGTH, record_assignment
from voirie.store.base import UnitOfWork
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
        decision = route(city, batch, pipeline.live_routing.table(uow)).iloc[0]
        team = str(decision["team"])
        rule_id = None if pd.isna(decision["rule_id"]) else str(decision["rule_id"])
        version = None if pd.isna(decision["rule_version"]) else int(decision["rule_version"])
        due = decision["due_at"]
        due_at = None if pd.isna(due) else pd.Timestamp(due).to_pydatetime()
        priority = int(decision["priority"])
        words = str(decision["routing_reason"])
        uow.incidents.update(
            incident_id,
            {
                "service_code": service_code,
                "team": team,
                "priority": priority,
                "due_at": due_at,
                "updated_at": now,
            },
        )
        record_assignment(
            uow,
            city,
            incident_id,
            team,
            (rule_id, version),
            words,
            priority,
            due_at,
            now,
            principal.name,
        )
        if team != row["team"]:
            _notify_reassigned(uow, city, incident_id, row["team"], team, note, priority, now)
        uow.events.append(
            "incident",
            incident_id,
            EventKind.ROUTED,
            principal.name,
            f"category {row['service_code']} → {service_code}: {note}; {words}",
            at=now,
        )
    return Rerouted(
        incident_id,
        row["service_code"],
        service_code,
        row["team"],
        team,
        rule_id,
        version,
        words,
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
    looked up), then the city's rules route the incident from its new street and zones as
    a change of category does: team, priority and due date (counted from its first
    report), an assignment naming the rule and version, a notice to a new team. Two
    events: the move (old and new place and zones, the reason) and the routing decision.

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
        decision = route(city, batch, pipeline.live_routing.table(uow)).iloc[0]
        team = str(decision["team"])
        if team != row["team"]:
            principal.check(Action.ASSIGN, row["team"])
        rule_id = None if pd.isna(decision["rule_id"]) else str(decision["rule_id"])
        version = None if pd.isna(decision["rule_version"]) else int(decision["rule_version"])
        due = decision["due_at"]
        due_at = None if pd.isna(due) else pd.Timestamp(due).to_pydatetime()
        priority = int(decision["priority"])
        words = str(decision["routing_reason"])
        uow.incidents.update(
            incident_id,
            {
                "lon": lon,
                "lat": lat,
                "segment_id": segment,
                "street_name": street,
                "team": team,
                "priority": priority,
                "due_at": due_at,
                "updated_at": now,
            },
        )
        record_assignment(
            uow, city, incident_id, team, (rule_id, version), words, priority, due_at, now,
            principal.name,
        )  # fmt: skip
        if team != row["team"]:
            _notify_reassigned(uow, city, incident_id, row["team"], team, note, priority, now)
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
            f"routed again after the move: {handed}{words}",
            at=now,
        )
    return Moved(
        incident_id, lon, lat, segment, street, zones, str(row["team"]), team, rule_id,
        version, words,
    )  # fmt: skip


def _code(value: object) -> str | None:
    """A zone code cell as text (``None`` when missing)."""
    # A frame's missing cell is None, NA or NaN (the one value unequal to itself).
    return None if value is None or value is pd.NA or value != value else str(value)
