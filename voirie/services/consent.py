"""Citizens' answers to the emails they get: confirm their address, unsubscribe, and say
whether a resolved incident is really fixed.

Confirming an address (double opt-in, see :mod:`voirie.notify.consent`) releases the
emails held for it: they become due at once, in the order they were written. The links
of every email carry the address's secret (``link_token``): one click stops the emails
about that incident (the address no longer follows it, and as its reporter it is no
longer told) or, with "stop everything", every email to the address. A "Non" to "is it
fixed?" reopens the incident (resolved → in progress) with an event whose actor is
``citizen``, tells the team and the other followers, as Signalen's satisfaction step does;
"Oui" is recorded as an event. Each use case is one transaction with its events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from voirie.errors import Conflict, NotFound
from voirie.model import EventKind, Status
from voirie.notify import consent
from voirie.notify.outbox import enqueue, notify_citizens
from voirie.services.citizens import CITIZEN_ACTOR
from voirie.services.pipeline import Pipeline
from voirie.services.workflow import StatusChange
from voirie.store.base import ConsentRecord, UnitOfWork

REOPENED_STATUS = Status.IN_PROGRESS
"""Where a "Non" puts a resolved incident back (the workflow's own resolved → in progress)."""
REOPEN_NOTE = "un citoyen indique que le problème n'est pas réglé"
"""The public note of a reopening (shown in the history and the Open311 updates)."""
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


@dataclass(frozen=True)
class Confirmed:
    """An address just confirmed, and how many held emails were released for it."""

    email: str
    released: int


@dataclass(frozen=True)
class Answer:
    """The outcome of a citizen's "is it fixed?" answer."""

    incident_id: int
    fixed: bool
    status: str


def _unknown_link() -> NotFound:
    return NotFound("token: this link is not valid (or no longer)", field="token")


def confirm(pipeline: Pipeline, token: str, *, at: datetime | None = None) -> Confirmed:
    """Confirm the address a confirmation token was sent to; release its held emails."""
    if not _TOKEN.fullmatch(token):
        raise _unknown_link()
    moment = at or datetime.now(UTC)
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        email = uow.consents.confirmation(consent.token_hash(token))
        if email is None:
            raise _unknown_link()
        released = uow.consents.confirm(email, moment)
    return Confirmed(email, released)


def _owner(uow: UnitOfWork, link_token: str) -> ConsentRecord:
    """The consent a link's secret belongs to, or ``NotFound``."""
    record = uow.consents.by_link(link_token) if _TOKEN.fullmatch(link_token) else None
    if record is None:
        raise _unknown_link()
    return record


def known_link(pipeline: Pipeline, link_token: str) -> ConsentRecord:
    """The consent a link's secret belongs to (to show its page), or ``NotFound``."""
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        return _owner(uow, link_token)


def unsubscribe(
    pipeline: Pipeline, link_token: str, incident_id: int | None, *, at: datetime | None = None
) -> int:
    """Stop the emails about one incident (``incident_id``) or every email (None) to the
    address of a link; return how many queued emails were cancelled (0 for one incident)."""
    moment = at or datetime.now(UTC)
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        record = _owner(uow, link_token)
        if incident_id is None:
            return uow.consents.stop(record.email, moment)
        if uow.incidents.get(incident_id) is None:
            raise NotFound(f"incident {incident_id} does not exist", field="incident_id")
        if uow.consents.opt_out(record.email, incident_id, moment):
            uow.events.append(
                "incident",
                incident_id,
                EventKind.UNFOLLOWED,
                CITIZEN_ACTOR,
                "a citizen no longer wants emails about the incident",
                at=moment,
            )
        return 0


def answer(
    pipeline: Pipeline,
    link_token: str,
    incident_id: int,
    fixed: bool,
    *,
    at: datetime | None = None,
) -> Answer:
    """Record a citizen's answer to "is it fixed?" about a resolved incident they are told
    about; "no" reopens it. ``Conflict`` when the incident is not resolved (any more)."""
    moment = at or datetime.now(UTC)
    city = pipeline.city
    with pipeline.store.transaction(city.jurisdiction_id) as uow:
        record = _owner(uow, link_token)
        incident = uow.incidents.get(incident_id)
        if incident is None or not uow.consents.follows(record.email, incident_id):
            raise NotFound(
                f"incident_id: incident {incident_id} is not one this address is told about",
                field="incident_id",
            )
        current = Status(incident["status"])
        if current != Status.RESOLVED:
            raise Conflict(
                f"incident_id: incident {incident_id} is {current.value}, not resolved; "
                "only a resolved incident can be confirmed fixed or reopened",
                field="incident_id",
            )
        if fixed:
            uow.events.append(
                "incident",
                incident_id,
                EventKind.FIX_CONFIRMED,
                CITIZEN_ACTOR,
                "a citizen confirms the problem is fixed",
                at=moment,
            )
            return Answer(incident_id, True, current.value)
        uow.incidents.update(incident_id, {"status": REOPENED_STATUS.value, "updated_at": moment})
        change = {"previous_status": current.value, "status": REOPENED_STATUS.value}
        enqueue(
            uow,
            city,
            kind="reopened",
            incident_id=incident_id,
            team=incident["team"],
            data={**change, "reason": REOPEN_NOTE},
            now=moment,
        )
        notify_citizens(
            uow, city, kind="status_changed", incident_id=incident_id, data=change, now=moment
        )
        uow.events.append(
            "incident",
            incident_id,
            EventKind.STATUS_CHANGED,
            CITIZEN_ACTOR,
            StatusChange(current, REOPENED_STATUS, REOPEN_NOTE).words(),
            at=moment,
        )
    return Answer(incident_id, False, REOPENED_STATUS.value)
