"""What staff do to an incident: change its status along the workflow, reassign it, comment.

The workflow is data (``TRANSITIONS``). Each operation is a use case that opens its own
transaction: it reads the incident locked, checks the principal may act on its team, and
writes the change, its event (actor = the principal's name) and its notifications (the
outbox) together, so a change is never stored without its history. The API and the
Open311 back-office push call these; they open no transaction themselves.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from voirie.city import REASSIGNED_WORDING, City
from voirie.errors import Conflict, Forbidden, InvalidInput, NotFound, VoirieError
from voirie.model import EventKind, Status
from voirie.notify.outbox import enqueue, notify_citizens
from voirie.services import learned_routing
from voirie.services.auth import Action, Principal
from voirie.store.base import AssignmentRecord, IncidentRow, Store, UnitOfWork
from voirie.values import aware_utc

log = logging.getLogger(__name__)

MAX_TEXT_LENGTH = 5_000
REASSIGNED_PUBLICLY = REASSIGNED_WORDING["fr"]
"""Why a reassigned incident changed team, as the published layers of a French city
without a ``publication.reassigned`` wording say it (``public_reassignment``)."""


def public_reassignment(city: City) -> str:
    """Why a reassigned incident changed team, as the published layers say it: the city's
    ``publication.reassigned`` wording in its locale (an assignment's ``reason`` is a public
    field: the incidents layer's ``routing_reason``). Who reassigned it and their reason are
    internal: they stay in the assignment's ``actor`` and the ``reassigned`` event, which
    only staff read."""
    return city.config.publication.reassigned_text(city.config.locale)


# From each status, the statuses staff may move an incident to. ``duplicate`` is set and
# undone only by merge / split / not-duplicate; ``closed`` is final (a new report of the
# same problem opens a new incident); a rejected incident may be reconsidered.
TRANSITIONS: dict[Status, tuple[Status, ...]] = {
    Status.NEW: (
        Status.ACKNOWLEDGED,
        Status.SCHEDULED,
        Status.IN_PROGRESS,
        Status.RESOLVED,
        Status.REJECTED,
    ),
    Status.ACKNOWLEDGED: (Status.SCHEDULED, Status.IN_PROGRESS, Status.RESOLVED, Status.REJECTED),
    Status.SCHEDULED: (Status.IN_PROGRESS, Status.RESOLVED, Status.REJECTED),
    Status.IN_PROGRESS: (Status.SCHEDULED, Status.RESOLVED),
    Status.RESOLVED: (Status.CLOSED, Status.IN_PROGRESS),
    Status.CLOSED: (),
    Status.DUPLICATE: (),
    Status.REJECTED: (Status.ACKNOWLEDGED,),
}
# Moving to these statuses needs a reason the citizen and the next dispatcher can read.
REASON_REQUIRED = frozenset({Status.REJECTED})


def allowed_statuses(status: Status | str) -> tuple[Status, ...]:
    """The statuses an incident in ``status`` may move to."""
    return TRANSITIONS[Status(status)]


def _locked_incident(uow: UnitOfWork, incident_id: int) -> IncidentRow:
    """The stored incident, locked until the transaction ends, or ``NotFound``."""
    row = uow.incidents.get(incident_id)
    if row is None:
        raise NotFound(f"incident {incident_id} does not exist", field="incident_id")
    return row


def _checked_text(value: str, field: str, *, required: bool) -> str:
    """``value`` stripped, or ``InvalidInput`` naming ``field`` when empty but required or
    longer than ``MAX_TEXT_LENGTH``."""
    text = value.strip()
    if required and not text:
        raise InvalidInput(f"{field}: must not be empty", field=field)
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidInput(
            f"{field}: at most {MAX_TEXT_LENGTH} characters, got {len(text)}", field=field
        )
    return text


@dataclass(frozen=True)
class StatusChange:
    """A status change as its event words it ("old → new: note"), and read back from it
    (the Open311 updates feed lists the changes from the history)."""

    previous: Status
    status: Status
    note: str | None = None

    def words(self) -> str:
        """The event's reason."""
        return f"{self.previous} → {self.status}" + (f": {self.note}" if self.note else "")

    @classmethod
    def parse(cls, reason: str) -> StatusChange | None:
        """The change an event's reason words, or None when it is not one."""
        found = _CHANGE_WORDS.match(reason)
        if found is None:
            return None
        previous, status, note = found.groups()
        try:
            return cls(Status(previous), Status(status), note)
        except ValueError:
            return None


_CHANGE_WORDS = re.compile(r"^(\w+) → (\w+)(?:: (.*))?$", re.DOTALL)


def change_status(
    store: Store,
    city: City,
    incident_id: int,
    principal: Principal,
    status: Status | str,
    reason: str = "",
    *,
    at: datetime | None = None,
) -> int:
    """Move an incident to ``status`` if the workflow allows it; return the event id.

    A transition the workflow does not allow raises ``Conflict`` listing the allowed ones.
    """
    with store.transaction(city.jurisdiction_id) as uow:
        row = _locked_incident(uow, incident_id)
        principal.check(Action.STATUS, row["team"])
        try:
            target = Status(status)
        except ValueError:
            raise InvalidInput(
                f"status: unknown status {status!r}; one of {', '.join(Status)}", field="status"
            ) from None
        current = Status(row["status"])
        allowed = TRANSITIONS[current]
        if target not in allowed:
            listed = ", ".join(allowed) if allowed else f"none ({current} is final)"
            raise Conflict(
                f"status: incident {incident_id} cannot go from {current} to {target}; "
                f"allowed from {current}: {listed}",
                field="status",
                allowed=tuple(s.value for s in allowed),
            )
        note = _checked_text(reason, "reason", required=target in REASON_REQUIRED)
        now = at or datetime.now(UTC)
        uow.incidents.set_status(incident_id, target.value, now)  # with 0019's moments
        enqueue(
            uow,
            city,
            kind="status_changed",
            incident_id=incident_id,
            team=row["team"],
            data={"previous_status": current.value, "status": target.value, "reason": note},
            now=now,
        )
        notify_citizens(
            uow,
            city,
            kind="status_changed",
            incident_id=incident_id,
            data={"previous_status": current.value, "status": target.value},
            now=now,
        )
        return uow.events.append(
            "incident",
            incident_id,
            EventKind.STATUS_CHANGED,
            principal.name,
            StatusChange(current, target, note).words(),
            at=now,
        )


def record_assignment(
    uow: UnitOfWork,
    city: City,
    incident_id: int,
    team: str,
    rule: tuple[str | None, int | None],
    reason: str,
    priority: object,
    due_at: object,
    at: datetime,
    actor: str,
) -> None:
    """One assignment row: the incident given to ``team`` by ``rule`` (id, version; none
    for a person's decision), with the public ``reason`` and who did it."""
    (assignment_id,) = uow.tables.reserve_ids("assignments", 1)
    uow.tables.insert(
        "assignments",
        pd.DataFrame(
            {
                "id": [int(assignment_id)],
                "jurisdiction_id": city.jurisdiction_id,
                "incident_id": int(incident_id),
                "team": team,
                "rule_id": rule[0],
                "rule_version": rule[1],
                "reason": reason,
                "priority": priority,
                "due_at": [due_at],
                "assigned_at": at,
                "actor": actor,
            }
        ),
    )


def assigned_by_rules(assignment: AssignmentRecord | None) -> bool:
    """Whether an incident's current assignment came from the routing rules (a rule, or
    the city's default team: version 0 without a rule id), so that routing it again (a
    move, a change of category) may give it another team. A person's reassignment and an
    escalation carry neither rule nor version: routing again keeps their team, as the
    dispatcher's decision outranks the rules (FixMyStreet keeps a manual assignment too)."""
    if assignment is None:
        return True
    return assignment.rule_id is not None or assignment.rule_version is not None


def reassign(
    store: Store,
    city: City,
    incident_id: int,
    principal: Principal,
    team: str,
    reason: str,
    *,
    priority: int | None = None,
    due_at: datetime | None = None,
    at: datetime | None = None,
    learn: bool = True,
) -> int:
    """Give an incident to another team (an assignment row by a person, no rule); return
    the event id. Priority and due date stay unless given: the promise made to the
    citizen does not restart because the work changed hands. Once stored, the correction
    is learned from (``learn_from``) unless ``learn`` is False: a caller reassigning
    several incidents in one transaction learns once it has committed."""
    with store.transaction(city.jurisdiction_id) as uow:
        row = _locked_incident(uow, incident_id)
        current = row["team"]
        if not principal.may_assign(current, team):
            principal.check(Action.HAND_BACK, current)
            raise Forbidden(
                f"{principal.role} {principal.name!r} may only hand incidents back to triage, "
                f"not assign them to {team!r}"
            )
        if team not in city.teams:
            raise InvalidInput(
                f"team: unknown team {team!r}; the city's teams are listed under teams: in "
                "its city.yaml",
                field="team",
            )
        if team == current:
            raise Conflict(
                f"team: incident {incident_id} is already assigned to {team!r}", field="team"
            )
        note = _checked_text(reason, "reason", required=True)
        now = at or datetime.now(UTC)
        new_priority = priority if priority is not None else row["priority"]
        new_due = aware_utc(due_at) if due_at is not None else row["due_at"]
        uow.incidents.update(
            incident_id,
            {"team": team, "priority": new_priority, "due_at": new_due, "updated_at": now},
        )
        record_assignment(
            uow,
            city,
            incident_id,
            team,
            (None, None),
            public_reassignment(city),
            new_priority,
            new_due,
            now,
            principal.name,
        )
        enqueue(
            uow,
            city,
            kind="reassigned",
            incident_id=incident_id,
            team=team,
            data={
                "previous_team": current,
                "reason": note,
                "priority": new_priority,
                "due_at": new_due,
            },
            now=now,
        )
        event_id = uow.events.append(
            "incident",
            incident_id,
            EventKind.REASSIGNED,
            principal.name,
            f"{current} → {team}: {note}",
            at=now,
        )
    if learn:
        learn_from(store, city, [str(row["service_code"])])
    return event_id


def learn_from(store: Store, city: City, service_codes: Sequence[str]) -> None:
    """Reassignments are corrections: count those of their sub-categories
    (``learned_routing``). They are stored whatever happens here; a failed pass is logged
    and the next correction (or ``voirie rules learn-live``) counts again."""
    try:
        learned = learned_routing.learn(store, city, service_codes)
    except VoirieError:
        log.exception("learning from the reassignments of %s failed", ", ".join(service_codes))
        return
    for rule in learned.rules:
        log.info(
            "routing rule %s v%d (%s): %s → %s",
            learned_routing.rule_id(rule.service_code),
            rule.version,
            rule.status,
            rule.service_code,
            rule.team,
        )


@dataclass(frozen=True)
class Comment:
    """A stored staff comment: its event id, its text as stored and its time."""

    event_id: int
    text: str
    at: datetime


def comment(
    store: Store,
    city: City,
    incident_id: int,
    principal: Principal,
    text: str,
    *,
    at: datetime | None = None,
) -> Comment:
    """Add a staff comment to an incident's history, as stored (text stripped, time to the
    millisecond every backend keeps unless ``at`` is given).

    Comments are internal notes (they may name people or places): staff only, never
    published.
    """
    if at is None:
        now = datetime.now(UTC)
        at = now.replace(microsecond=now.microsecond // 1000 * 1000)
    with store.transaction(city.jurisdiction_id) as uow:
        row = _locked_incident(uow, incident_id)
        principal.check(Action.COMMENT, row["team"])
        note = _checked_text(text, "text", required=True)
        event_id = uow.events.append(
            "incident",
            incident_id,
            EventKind.COMMENTED,
            principal.name,
            note,
            at=at,
        )
    return Comment(event_id, note, at)
