"""Escalation: an open incident not handled within ``routing.escalation.factor`` times its
SLA goes to its escalation team (the rule's ``escalate_to``, else the city's
``routing.escalation.team``), recorded as an assignment, an ``escalated`` event and a
notice to the new team, all in one transaction. ``voirie worker`` runs it periodically;
running it twice escalates nothing twice (each incident escalates once).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pandas as pd

from voirie.city import City
from voirie.model import EventKind
from voirie.notify.outbox import enqueue
from voirie.store.base import Store

ESCALATION_ACTOR = "voirie-escalation"
DEFAULT_LIMIT = 500


def escalate(
    store: Store, city: City, now: datetime | None = None, limit: int = DEFAULT_LIMIT
) -> list[int]:
    """Escalate every open incident past its escalation time; return their ids."""
    at = now or datetime.now(UTC)
    jurisdiction = city.jurisdiction_id
    factor = city.config.routing.escalation.factor
    timezone = ZoneInfo(city.config.timezone)
    with store.transaction(jurisdiction) as uow:
        due = uow.escalations.due(at, limit)
        # Escalations are rare and each touches one incident: one small write per incident.
        for incident_id, target in zip(
            due["incident_id"].astype(int).tolist(), due["escalate_to"].astype(str), strict=True
        ):
            incident = uow.incidents.get(incident_id)
            if incident is None:
                continue
            due_at = incident["due_at"]
            deadline = f"{due_at.astimezone(timezone):%Y-%m-%d %H:%M}" if due_at else "unknown"
            reason = (
                f"overdue: due {deadline}, still open after {factor:g}× its "
                f"SLA → escalated from {incident['team']} to {city.teams[target].name}"
            )
            uow.incidents.update(incident_id, {"team": target, "updated_at": at})
            (assignment_id,) = uow.tables.reserve_ids("assignments", 1)
            uow.tables.insert(
                "assignments",
                pd.DataFrame(
                    {
                        "id": [int(assignment_id)],
                        "jurisdiction_id": jurisdiction,
                        "incident_id": incident_id,
                        "team": target,
                        "rule_id": None,
                        "rule_version": None,
                        "reason": reason,
                        "priority": incident["priority"],
                        "due_at": incident["due_at"],
                        "assigned_at": at,
                        "actor": ESCALATION_ACTOR,
                    }
                ),
            )
            uow.events.append(
                "incident",
                incident_id,
                EventKind.ESCALATED,
                ESCALATION_ACTOR,
                reason,
                at,
            )
            enqueue(
                uow,
                city,
                kind="escalated",
                incident_id=incident_id,
                team=target,
                data={
                    "previous_team": incident["team"],
                    "reason": reason,
                    "due_at": incident["due_at"],
                },
                now=at,
            )
        ids = due["incident_id"].astype(int).tolist()
        if ids:
            uow.escalations.mark_escalated(ids, at)
    return ids
