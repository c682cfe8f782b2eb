"""Citizens and open incidents: the limits of the nearby search (``Reads.nearby_records``
answers it), "me too" (supporters) and follow-ups.

A citizen who finds a problem already reported supports its incident instead of reporting
it again: the supporters count is public, next to the reports count, and never opens an
incident. An email given with a "me too" or a follow is personal data: the store keeps it
apart (``incident_supporters``, ``incident_followers``) and it never appears in a public
response or in the history (events name the actor ``citizen``). Each write is one
transaction together with its event.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from voirie.errors import Conflict, InvalidInput, NotFound
from voirie.model import EventKind, Status
from voirie.notify.outbox import ask_consent
from voirie.services.pipeline import Pipeline
from voirie.store.base import UnitOfWork

MAX_RADIUS_M = 2000.0
"""Largest search radius a citizen may ask for (a neighbourhood, not the whole city)."""
MAX_NEARBY = 200
"""Most incidents one nearby search returns (the nearest ones)."""
MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit
CITIZEN_ACTOR = "citizen"
"""Actor of the events citizens cause: their email is personal data, never in the history."""

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class Support:
    """The outcome of a "me too"."""

    incident_id: int
    supporters: int
    counted: bool
    """False when this email had already supported the incident (it counts once)."""
    following: bool
    """True when an email was given: its owner now follows the incident."""


@dataclass(frozen=True)
class Client:
    """Who sent an anonymous request, as the web server saw it: only ever hashed."""

    address: str
    user_agent: str


def client_key(salt: str, client: Client, incident_id: int) -> str:
    """The key of an anonymous client's "me too" on an incident: a hash of its address and
    browser with the day's salt. It tells two "me too" of one device apart from two
    devices' on the same day, and says nothing of the address once the salt is gone."""
    material = "\x1f".join((salt, client.address, client.user_agent, str(int(incident_id))))
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def support(
    pipeline: Pipeline,
    incident_id: int,
    email: str | None = None,
    *,
    client: Client | None = None,
    language: str | None = None,
    at: datetime | None = None,
) -> Support:
    """Add a "me too" to an open incident; with an email, its owner also follows it.

    An email counts once per incident; without one, a ``client`` (address and browser)
    counts once per incident and day (an anonymous "me too" with no client always counts).
    Raises ``NotFound`` for an unknown incident and ``Conflict`` for one no longer open
    (a problem that is back must be reported again, which opens a new incident). An email
    not confirmed yet is asked to confirm (in ``language``) before it gets any update.
    """
    address = _email(email) if email is not None and email.strip() else None
    moment = at or datetime.now(UTC)
    jurisdiction = pipeline.city.jurisdiction_id
    with pipeline.store.transaction(jurisdiction) as uow:
        _open_incident(uow, incident_id, "supported")
        key = None
        if address is None and client is not None:
            key = client_key(
                uow.citizens.client_salt(moment.astimezone(UTC).date().isoformat()),
                client,
                incident_id,
            )
        counted, supporters = uow.citizens.add_supporter(incident_id, address, moment, key)
        following = address is not None
        if address is not None:
            uow.citizens.add_follower(incident_id, address, moment)
            _consent(uow, pipeline, address, incident_id, language, moment)
        if counted:
            uow.events.append(
                "incident",
                incident_id,
                EventKind.SUPPORTED,
                CITIZEN_ACTOR,
                f'"me too" from a citizen ({supporters} supporters)',
                at=moment,
            )
    return Support(incident_id, supporters, counted, following)


def follow(
    pipeline: Pipeline,
    incident_id: int,
    email: str,
    *,
    language: str | None = None,
    at: datetime | None = None,
) -> bool:
    """Subscribe an email to an open incident's updates; False when it already followed.
    An email not confirmed yet is asked to confirm (in ``language``) before any update."""
    address = _email(email)
    moment = at or datetime.now(UTC)
    jurisdiction = pipeline.city.jurisdiction_id
    with pipeline.store.transaction(jurisdiction) as uow:
        _open_incident(uow, incident_id, "followed")
        added = uow.citizens.add_follower(incident_id, address, moment)
        _consent(uow, pipeline, address, incident_id, language, moment)
        if added:
            uow.events.append(
                "incident",
                incident_id,
                EventKind.FOLLOWED,
                CITIZEN_ACTOR,
                "a citizen follows the incident",
                at=moment,
            )
    return added


def unfollow(pipeline: Pipeline, incident_id: int, email: str) -> bool:
    """Unsubscribe an email (whatever the incident's status); False when it did not follow."""
    address = _email(email)
    jurisdiction = pipeline.city.jurisdiction_id
    with pipeline.store.transaction(jurisdiction) as uow:
        if uow.incidents.get(incident_id) is None:
            raise _unknown(incident_id)
        removed = uow.citizens.remove_follower(incident_id, address)
        if removed:
            uow.events.append(
                "incident",
                incident_id,
                EventKind.UNFOLLOWED,
                CITIZEN_ACTOR,
                "a citizen no longer follows the incident",
            )
    return removed


def _consent(
    uow: UnitOfWork,
    pipeline: Pipeline,
    address: str,
    incident_id: int,
    language: str | None,
    at: datetime,
) -> None:
    """An address that follows an incident: ask its owner to confirm it (double opt-in)
    and forget an earlier "stop emails about this incident"."""
    city = pipeline.city
    ask_consent(uow, city, address, language or city.config.locale, at)
    uow.consents.opted_in_again(address, incident_id)


def _email(email: str) -> str:
    """The email as stored and compared: trimmed and lower-cased, or ``InvalidInput``."""
    address = email.strip().lower()
    if len(address) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(address):
        raise InvalidInput(
            f"email: not an email address (name@domain, at most {MAX_EMAIL_LENGTH} characters)",
            field="email",
        )
    return address


def _unknown(incident_id: int) -> NotFound:
    return NotFound(f"incident {incident_id} does not exist", field="incident_id")


def _open_incident(uow: UnitOfWork, incident_id: int, action: str) -> None:
    """Check (and lock, on PostGIS) an incident that citizens may support or follow."""
    incident = uow.incidents.get(incident_id)
    if incident is None:
        raise _unknown(incident_id)
    status = Status(incident["status"])
    if not status.is_open:
        raise Conflict(
            f"incident {incident_id} is {status.value} and can no longer be {action}; "
            "if the problem is back, report it again",
            field="incident_id",
        )
