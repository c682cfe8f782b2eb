"""Domain types shared by every stage: reports, enrichments, incidents, teams, rules, events.

These are the stored, internal shapes. Wire formats (Open311 ServiceRequest, GeoJSON
features) are built from them at the edge and never stored as such.
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


OPEN_STATUSES = frozenset(
    {Status.NEW, Status.ACKNOWLEDGED, Status.SCHEDULED, Status.IN_PROGRESS}
)


class Flag(enum.StrEnum):
    """Enrichment flags that routing and triage read."""

    OFF_NETWORK = "off_network"
    OUTSIDE_TERRITORY = "outside_territory"
    NEAR_BOUNDARY = "near_boundary"
    UNKNOWN_SERVICE = "unknown_service"


class EventKind(enum.StrEnum):
    """What happened to a report or an incident."""

    RECEIVED = "received"
    ENRICHED = "enriched"
    OPENED = "opened"
    ATTACHED = "attached"
    ROUTED = "routed"
    MERGED = "merged"
    SPLIT = "split"
    REASSIGNED = "reassigned"
    STATUS_CHANGED = "status_changed"
    COMMENTED = "commented"


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
    id: int | None = None
    received_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Enrichment:
    """GIS context of a report: its street segment, its zones, and how sure we are."""

    segment_id: str | None
    street_name: str | None
    snap_distance_m: float | None
    position_m: float | None
    side: str | None
    snap_lon: float | None
    snap_lat: float | None
    snap_method: str | None
    zones: dict[str, str | None]
    boundary_distance_m: float | None
    flags: frozenset[Flag] = frozenset()


@dataclass(frozen=True, slots=True)
class Team:
    """A technical team that fixes incidents (for Paris, a DansMaRue ``intervenant``)."""

    code: str
    name: str
    email: str | None = None
    webhook: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One routing rule: a service (or service group) goes to a team with a priority and SLA."""

    id: str
    version: int
    team: str
    service_code: str | None = None
    group: str | None = None
    priority: int = 3
    sla_days: float | None = None

    def describe(self, service_name: str) -> str:
        """The sentence a dispatcher reads to know why the incident went to this team."""
        scope = f"service « {service_name} »" if self.service_code else f"group {self.group}"
        return f"{scope} → {self.team}, rule {self.id} v{self.version}"


@dataclass(frozen=True, slots=True)
class Incident:
    """The thing a team fixes: one or more reports of the same problem at the same place."""

    id: int
    service_code: str
    lon: float
    lat: float
    status: Status
    team: str
    report_count: int
    first_reported_at: datetime
    last_reported_at: datetime
    segment_id: str | None = None
    street_name: str | None = None
    priority: int = 3
    due_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One entry in the append-only history of a report or incident."""

    entity: str
    entity_id: int
    kind: EventKind
    at: datetime
    actor: str
    reason: str | None = None
