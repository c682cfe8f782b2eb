"""Double opt-in of citizens' email addresses, as the outbox applies it.

An address a citizen gives (on ``/signaler``, with a follow or a "me too", in an Open311
POST) is ``pending`` until its owner opens the confirmation link emailed to it. Until
then every email for it waits in the outbox as ``held`` (the confirmation email itself
excepted); confirming releases them, due at once, so nothing the citizen asked for is
lost. An address that stopped everything gets nothing. A confirmation email is queued at
most once every ``ASK_INTERVAL`` per address, so nobody can flood a mailbox through the
form. An address first met as an Open311 reporter is asked when there is something to
tell it. This module decides; ``voirie.notify.outbox`` writes the rows.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from voirie.store.base import ConsentRecord, UnitOfWork

CONFIRMATION = "email_confirmation"
"""Outbox kind of the email that asks an address's owner to confirm it."""
PENDING, CONFIRMED, STOPPED = "pending", "confirmed", "stopped"
HELD = "held"
"""Outbox status of a message waiting for its address's confirmation."""
DUE = "pending"
"""Outbox status of a message to deliver (``voirie.notify.outbox.PENDING``)."""
WAITS_AS = "waits_as"
"""Column of a message giving the outbox status it waits in (not part of its payload)."""
ASK_INTERVAL = timedelta(minutes=10)
"""Least time between two confirmation emails to one address."""
TOKEN_BYTES = 32


def token_hash(token: str) -> str:
    """What the store keeps of a confirmation token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def normalized(email: str) -> str:
    """An address as consent is kept and compared: trimmed and lower-cased."""
    return email.strip().lower()


def ask(
    uow: UnitOfWork, email: str, language: str, at: datetime
) -> tuple[ConsentRecord, dict[str, object] | None]:
    """Take note of an address a citizen gave: its consent, and the confirmation email to
    queue (None when it is confirmed or was asked less than ``ASK_INTERVAL`` ago)."""
    address = normalized(email)
    known = uow.consents.get(address)
    record = known or uow.consents.add(
        ConsentRecord(address, PENDING, language, secrets.token_urlsafe(TOKEN_BYTES), at)
    )
    if record.state == CONFIRMED or (known is not None and at - known.asked_at < ASK_INTERVAL):
        return record, None
    token = secrets.token_urlsafe(TOKEN_BYTES)
    uow.consents.asked(address, token_hash(token), at)
    message: dict[str, object] = {
        "channel": "email",
        "target": address,
        "kind": CONFIRMATION,
        "entity": "email",
        "entity_id": 0,
        "team": None,
        "language": record.language,
        "link_token": record.link_token,
        "confirm_token": token,
    }
    return record, message


def gate(
    uow: UnitOfWork,
    messages: Iterable[Mapping[str, object]],
    default_language: str,
    at: datetime,
) -> list[dict[str, object]]:
    """Emails to citizens (``target`` an address) as outbox messages: each with the
    address's language and link secret and the status it waits in (due when confirmed,
    held otherwise), none to an address that stopped everything, plus the confirmation
    email of an address never asked before."""
    wanted = [dict(m, target=normalized(str(m["target"]))) for m in messages]
    consents = uow.consents.many(sorted({str(m["target"]) for m in wanted}))
    rows: list[dict[str, object]] = []
    for message in wanted:
        address = str(message["target"])
        record = consents.get(address)
        if record is None:
            record, confirmation = ask(uow, address, default_language, at)
            consents[address] = record
            if confirmation is not None:
                rows.append({**confirmation, WAITS_AS: DUE})
        if record.state == STOPPED:
            continue
        rows.append(
            {
                **message,
                "language": record.language,
                "link_token": record.link_token,
                WAITS_AS: DUE if record.state == CONFIRMED else HELD,
            }
        )
    return rows
