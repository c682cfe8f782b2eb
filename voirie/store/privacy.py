"""Erasure of citizens' personal data (issue 17 item 5): the statements, in one place.

Personal data are the reporter's contact (``report_contacts``: name, email, phone,
device id), the emails of "me too" supporters and of followers, an address's consent
records (``email_consents``, ``email_confirmations``, ``email_optouts``) and the target
of the emails waiting in or sent from the outbox. Erasing keeps everything else: a report
stays, with its contact row emptied; a supporter still counts, without an email; an
emailed notice stays in the outbox as ``erased`` (a pending one is dead-lettered, it has
nobody to go to). Both erasures record an event per report and per incident they touched,
whose reason names why, never whom.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from voirie.city import City
from voirie.model import OPEN_STATUSES, EventKind
from voirie.store.base import Store, UnitOfWork
from voirie.store.statements.session import Session
from voirie.store.statements.unit import SqlUnitOfWork

ERASED = "erased"  # the outbox target of an erased email
# The outbox's values (``voirie.notify.outbox``, a layer above the store).
EMAIL, DELIVERED, DEAD = "email", "delivered", "dead"
PRIVACY_ACTOR = "voirie-privacy"
# How often the worker runs the retention purge: daily erasure is what retention promises.
PURGE_EVERY_S = 3600.0
# Ids bound per statement: far below both backends' limits on parameters.
_CHUNK = 500
_OPEN = tuple(sorted(s.value for s in OPEN_STATUSES))
_HAS_CONTACT = (
    "(c.name IS NOT NULL OR c.email IS NOT NULL OR c.phone IS NOT NULL OR c.device_id IS NOT NULL)"
)


@dataclass
class Erased:
    """What one erasure touched: reports whose contact was emptied, incidents whose
    supporters' or followers' emails went, outbox messages whose target went."""

    reports: list[int] = field(default_factory=list)
    incidents: list[int] = field(default_factory=list)
    messages: int = 0
    consents: int = 0


def _session(uow: UnitOfWork) -> Session:
    """The session of a unit of work (both backends hand out ``SqlUnitOfWork``)."""
    if not isinstance(uow, SqlUnitOfWork):
        raise TypeError(f"privacy erasure needs an SQL unit of work, not {type(uow).__name__}")
    return uow.session


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield [int(i) for i in ids[start : start + _CHUNK]]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def purge_expired(store: Store, city: City, now: datetime | None = None) -> Erased | None:
    """Erase the personal data of the incidents closed ``privacy.retention_days`` ago or
    more (``None``, nothing done, when the city sets no retention)."""
    days = city.config.privacy.retention_days
    if days is None:
        return None
    at = now or datetime.now(UTC)
    reason = f"retention: personal data erased {days} days after the incident was closed"
    with store.transaction(city.jurisdiction_id) as uow:
        return purge_closed(uow, at - timedelta(days=days), reason, at)


def purge_closed(uow: UnitOfWork, closed_before: datetime, reason: str, at: datetime) -> Erased:
    """Erase the personal data of the incidents closed (not open, not changed) since
    before ``closed_before``, and of their reports."""
    s = _session(uow)
    j = s.jurisdiction_id
    incidents = [
        int(row[0])
        for row in s.run(
            f"SELECT i.id FROM incidents i WHERE i.jurisdiction_id = ? "
            f"AND i.status NOT IN ({_marks(len(_OPEN))}) AND i.updated_at < ? "
            "AND (EXISTS (SELECT 1 FROM incident_reports l JOIN report_contacts c "
            "ON c.jurisdiction_id = l.jurisdiction_id AND c.report_id = l.report_id "
            "WHERE l.jurisdiction_id = i.jurisdiction_id AND l.incident_id = i.id "
            f"AND {_HAS_CONTACT}) "
            "OR EXISTS (SELECT 1 FROM incident_supporters p WHERE p.jurisdiction_id = "
            "i.jurisdiction_id AND p.incident_id = i.id AND p.email IS NOT NULL) "
            "OR EXISTS (SELECT 1 FROM incident_followers f WHERE f.jurisdiction_id = "
            "i.jurisdiction_id AND f.incident_id = i.id)) ORDER BY i.id",
            (j, *_OPEN, s.dialect.instant(closed_before)),
        ).fetchall()
    ]
    erased = Erased()
    for chunk in _chunks(incidents):
        marks = _marks(len(chunk))
        reports = [
            int(row[0])
            for row in s.run(
                "SELECT c.report_id FROM report_contacts c JOIN incident_reports l "
                "ON l.jurisdiction_id = c.jurisdiction_id AND l.report_id = c.report_id "
                f"WHERE c.jurisdiction_id = ? AND l.incident_id IN ({marks}) AND {_HAS_CONTACT} "
                "ORDER BY c.report_id",
                (j, *chunk),
            ).fetchall()
        ]
        _empty_contacts(s, reports)
        _forget_citizens(s, f"incident_id IN ({marks})", chunk)
        erased.messages += _erase_messages(
            s,
            f"((entity = 'incident' AND entity_id IN ({marks})) "
            f"OR (entity = 'report' AND entity_id IN ({_marks(len(reports)) or 'NULL'})))",
            [*chunk, *reports],
            reason,
        )
        erased.reports += reports
    erased.incidents = incidents
    _record(uow, erased, reason, at)
    return erased


def erase_email(uow: UnitOfWork, email: str, reason: str, at: datetime) -> Erased:
    """Erase everything kept about one email address (compared without case): the
    contacts that hold it (whole), its "me too"s, follows, consent and messages."""
    s = _session(uow)
    j = s.jurisdiction_id
    address = email.strip().lower()
    erased = Erased()
    erased.reports = [
        int(row[0])
        for row in s.run(
            "SELECT report_id FROM report_contacts WHERE jurisdiction_id = ? "
            "AND lower(email) = ? ORDER BY report_id",
            (j, address),
        ).fetchall()
    ]
    erased.incidents = [
        int(row[0])
        for row in s.run(
            "SELECT incident_id FROM incident_supporters WHERE jurisdiction_id = ? "
            "AND lower(email) = ? UNION SELECT incident_id FROM incident_followers "
            "WHERE jurisdiction_id = ? AND lower(email) = ? ORDER BY 1",
            (j, address, j, address),
        ).fetchall()
    ]
    _empty_contacts(s, erased.reports)
    _forget_citizens(s, "lower(email) = ?", [address])
    erased.messages = _erase_messages(s, "lower(target) = ?", [address], reason)
    for table in ("email_consents", "email_confirmations", "email_optouts"):
        cursor = s.run(
            f"DELETE FROM {table} WHERE jurisdiction_id = ? AND lower(email) = ?", (j, address)
        )
        erased.consents += max(int(cursor.rowcount), 0)
    _record(uow, erased, reason, at)
    return erased


def _empty_contacts(s: Session, reports: Sequence[int]) -> None:
    for chunk in _chunks(reports):
        s.run(
            "UPDATE report_contacts SET name = NULL, email = NULL, phone = NULL, "
            f"device_id = NULL WHERE jurisdiction_id = ? AND report_id IN ({_marks(len(chunk))})",
            (s.jurisdiction_id, *chunk),
        )


def _forget_citizens(s: Session, condition: str, params: Sequence[object]) -> None:
    """Supporters keep counting without their email; followers are removed."""
    j = s.jurisdiction_id
    s.run(
        f"UPDATE incident_supporters SET email = NULL WHERE jurisdiction_id = ? AND {condition}",
        (j, *params),
    )
    s.run(f"DELETE FROM incident_followers WHERE jurisdiction_id = ? AND {condition}", (j, *params))


def _erase_messages(s: Session, condition: str, params: Sequence[object], reason: str) -> int:
    """Emails of the outbox matching ``condition``: target and body erased; those not
    delivered yet are dead-lettered."""
    cursor = s.run(
        f"UPDATE outbox SET target = ?, payload = '{{}}', last_error = CASE WHEN status = ? "
        f"THEN last_error ELSE ? END, status = CASE WHEN status = ? THEN status ELSE ? END "
        f"WHERE jurisdiction_id = ? AND channel = ? AND target <> ? AND {condition}",
        (ERASED, DELIVERED, reason, DELIVERED, DEAD, s.jurisdiction_id, EMAIL, ERASED, *params),
    )
    return max(int(cursor.rowcount), 0)


def _record(uow: UnitOfWork, erased: Erased, reason: str, at: datetime) -> None:
    """One event per report and per incident touched, naming why (never whom)."""
    for entity, ids in (("report", erased.reports), ("incident", erased.incidents)):
        for entity_id in ids:
            uow.events.append(
                entity, entity_id, EventKind.CONTACT_ERASED, PRIVACY_ACTOR, reason, at
            )
