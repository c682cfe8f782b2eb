"""A citizen's own report: sent through the city's form, followed through a private link.

A report sent with the form (``/signaler``) goes through ``Intake.submit`` like an Open311
one (stored, snapped, deduplicated and routed in one transaction). Its sender then gets a
private link, ``/suivi/{token}``: the token is random (256 bits) and only its SHA-256 is
stored, so the link cannot be guessed nor rebuilt from the database. When the sender gave
an email, the link is queued for them in the outbox in the same transaction as the token
(``report_received``), so it is sent exactly when the link exists. The token is written
after the report's own transaction: if that second one fails, the form's retry (same
Idempotency-Key) finds the stored report and gives it a token then.

The tracking view shows only public facts (the status, the public notes of status
changes, the dates, the photos) plus what the sender wrote; no contact data, ever.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from voirie.errors import NotFound
from voirie.model import EventKind, Report, Status
from voirie.notify.outbox import EMAIL, ask_consent, enqueue_citizens
from voirie.services.intake import Retry, Submission
from voirie.services.pipeline import Pipeline
from voirie.services.workflow import StatusChange
from voirie.store.selection import Selection
from voirie.values import optional_text

TOKEN_BYTES = 32
"""Random bytes of a tracking token (256 bits: not guessable, not enumerable)."""
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
RECEIVED = "report_received"
"""Outbox kind of the email that gives the sender their tracking link."""


@dataclass(frozen=True)
class Sent:
    """Where a report sent with the form went, and its private tracking token."""

    submission: Submission
    token: str


@dataclass(frozen=True)
class Note:
    """One public status change of the incident a tracked report belongs to."""

    at: datetime
    status: str
    note: str | None


@dataclass(frozen=True)
class MyReport:
    """What the tracking page shows: public facts about the report and its incident."""

    report_id: int
    incident_id: int
    service_code: str
    service_name: str
    description: str | None
    address: str | None
    lon: float
    lat: float
    requested_at: datetime
    status: str
    open: bool
    report_count: int
    supporters: int
    updated_at: datetime
    history: tuple[Note, ...]
    photos: tuple[str, ...]


def token_hash(token: str) -> str:
    """What the store keeps of a token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def send(
    pipeline: Pipeline,
    report: Report,
    retry: Retry,
    photos: Sequence[str],
    link: Callable[[str], str],
    *,
    language: str | None = None,
    at: datetime | None = None,
) -> Sent:
    """Submit a report from the form and give it a new private tracking token.

    ``photos`` are the names of its stored photos (the report's ``media_url`` is the
    first); ``link`` makes the absolute tracking URL of a token, for the email queued when
    the report carries the sender's email (in ``language``, the form's, else the city's;
    held until the address is confirmed). A retried submission (same ``retry`` key) is
    answered with the stored report and a fresh token of it.
    """
    submission = pipeline.intake.submit(report, retry)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    moment = at or datetime.now(UTC)
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        uow.tracking.add(token_hash(token), submission.report_id, photos, moment)
        email = report.contact.email
        if email:
            city = pipeline.city
            ask_consent(uow, city, email, language or city.config.locale, moment)
            message = {
                "channel": EMAIL,
                "target": email,
                "kind": RECEIVED,
                "entity": "report",
                "entity_id": submission.report_id,
                "team": None,
                "incident_id": submission.incident_id,
                "tracking_url": link(token),
            }
            enqueue_citizens(uow, city, [message], moment)
    return Sent(submission, token)


def find(pipeline: Pipeline, token: str) -> MyReport:
    """The tracked report a token opens; ``NotFound`` for any other token."""
    unknown = NotFound("token: no report is tracked with this link", field="token")
    if not _TOKEN.fullmatch(token):
        raise unknown
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        tracked = uow.tracking.find(token_hash(token))
    if tracked is None:
        raise unknown
    reports = pipeline.reads.reports(Selection(ids=(tracked.report_id,)))
    if not len(reports):
        raise unknown
    report = reports.iloc[0]
    incident_id = int(report["incident_id"])
    incident = pipeline.reads.incidents(Selection(ids=(incident_id,))).iloc[0]
    service = pipeline.city.services.get(str(report["service_code"]))
    status = Status(str(incident["status"]))
    return MyReport(
        report_id=tracked.report_id,
        incident_id=incident_id,
        service_code=str(report["service_code"]),
        service_name=service.name if service else str(report["service_code"]),
        description=optional_text(report.get("description")),
        address=optional_text(report.get("address")),
        lon=float(report["lon"]),
        lat=float(report["lat"]),
        requested_at=_instant(report["requested_at"]),
        status=status.value,
        open=status.is_open,
        report_count=int(incident["report_count"]),
        supporters=int(incident["supporters"]),
        updated_at=_instant(incident["updated_at"]),
        history=_history(pipeline, incident_id),
        photos=tracked.photos,
    )


def _history(pipeline: Pipeline, incident_id: int) -> tuple[Note, ...]:
    """The incident's status changes, oldest first, with their public notes (the notes
    Open311 publishes as ``status_notes``)."""
    events = pipeline.reads.lookup("events", "entity_id", [incident_id])
    changes = events[
        (events["entity"] == "incident") & (events["kind"] == EventKind.STATUS_CHANGED.value)
    ]
    notes = []
    for event in changes.sort_values(["at", "id"]).to_dict("records"):
        change = StatusChange.parse(str(event["reason"]))
        if change is not None:
            notes.append(Note(_instant(event["at"]), change.status.value, change.note))
    return tuple(notes)


def _instant(value: object) -> datetime:
    """A stored instant (pandas reads them as UTC timestamps) as a UTC datetime."""
    stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize(UTC)
    moment: datetime = stamp.tz_convert(UTC).to_pydatetime()
    return moment
