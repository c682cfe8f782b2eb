"""Domain vocabulary shared by every stage: statuses, flags, event kinds, and the report.

A single report travels as a ``Report``; in bulk, reports, enrichments, incidents, links,
assignments and events travel as DataFrames whose columns are the tables of
``voirie.store.schema``. Teams and routing rules are city data (``voirie.city.Team``,
``voirie.city.Route``). Wire formats (Open311 ServiceRequest, GeoJSON features) are built
from these at the edge and never stored as such. See docs/glossary.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class Status(enum.StrEnum):
    """Lifecycle of an incident; the only status vocabulary in voirie."""

    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"

    @property
    def is_open(self) -> bool:
        """Whether new reports may still attach to an incident in this status."""
        return self in OPEN_STATUSES

    @property
    def open311(self) -> str:
        """The Open311 GeoReport v2 status (only ``open`` or ``closed`` exist there)."""
        return "open" if self.is_open else "closed"


OPEN_STATUSES = frozenset({Status.NEW, Status.ACKNOWLEDGED, Status.SCHEDULED, Status.IN_PROGRESS})
IN_HAND_STATUSES = frozenset({Status.ACKNOWLEDGED, Status.SCHEDULED, Status.IN_PROGRESS})
"""Open statuses in which staff have confirmed the problem and not yet fixed it: such an
incident attracts new reports for as long as it stays open (see docs/deduplication.md)."""


class Flag(enum.StrEnum):
    """Enrichment flags that routing and triage read."""

    OFF_NETWORK = "off_network"
    OUTSIDE_TERRITORY = "outside_territory"
    NEAR_BOUNDARY = "near_boundary"
    UNKNOWN_SERVICE = "unknown_service"


SYSTEM_ACTOR = "voirie"
"""The actor of what voirie itself does (attaching, routing), as opposed to a person."""


class EventKind(enum.StrEnum):
    """What happened to a report or an incident."""

    RECEIVED = "received"
    ENRICHED = "enriched"
    OPENED = "opened"
    ATTACHED = "attached"
    ROUTED = "routed"
    MERGED = "merged"
    NOT_DUPLICATE = "not_duplicate"
    SPLIT = "split"
    REASSIGNED = "reassigned"
    STATUS_CHANGED = "status_changed"
    COMMENTED = "commented"
    ESCALATED = "escalated"
    SUPPORTED = "supported"
    FOLLOWED = "followed"
    UNFOLLOWED = "unfollowed"
    MODERATED = "moderated"
    FIX_CONFIRMED = "fix_confirmed"
    CONTACT_ERASED = "contact_erased"  # personal data erased (retention or on request)


@dataclass(frozen=True, slots=True)
class Contact:
    """Private reporter data: stored apart from the report and never published."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    device_id: str | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """One citizen submission, immutable once stored."""

    external_id: str
    source: str
    service_code: str
    lon: float
    lat: float
    requested_at: datetime
    description: str | None = None
    address: str | None = None
    channel: str | None = None
    media_url: str | None = None
    contact: Contact = field(default_factory=Contact)
    attributes: tuple[tuple[str, str], ...] = ()
    """Answers to the service's questions, (attribute code, value), one pair per value."""
    id: int | None = None
    received_at: datetime | None = None
