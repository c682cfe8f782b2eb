"""The logical schema both backends store: tables and their columns, in insert order.

Backends own the DDL (in ``migrations/<backend>/NNNN_name.sql``); this module only names
what the pipeline writes, so the two backends cannot drift apart silently.
"""

from __future__ import annotations

# Tables whose rows carry a WGS84 point built from their lon/lat columns.
POINT_TABLES = frozenset({"reports", "incidents"})

COLUMNS: dict[str, tuple[str, ...]] = {
    "reports": (
        "id",
        "jurisdiction_id",
        "external_id",
        "source",
        "service_code",
        "description",
        "address",
        "channel",
        "media_url",
        "lon",
        "lat",
        "requested_at",
        "received_at",
        "content_hash",
        # The import's digest of the source row (migration 0024, ``ingest.digest``);
        # null for a report that came one at a time.
        "raw_digest",
    ),
    "report_contacts": ("report_id", "jurisdiction_id", "name", "email", "phone", "device_id"),
    "enrichments": (
        "report_id",
        "jurisdiction_id",
        "segment_id",
        "street_name",
        "snap_distance_m",
        "position_m",
        "side",
        "snap_lon",
        "snap_lat",
        "snap_method",
        "boundary_distance_m",
        "off_network",
        "outside_territory",
        "near_boundary",
    ),
    "report_zones": ("report_id", "jurisdiction_id", "layer", "code", "name", "boundary_m"),
    "report_attributes": ("report_id", "jurisdiction_id", "code", "value"),
    "incidents": (
        "id",
        "jurisdiction_id",
        "service_code",
        "origin_report_id",
        "lon",
        "lat",
        "segment_id",
        "street_name",
        "status",
        "team",
        "priority",
        "due_at",
        "report_count",
        "first_reported_at",
        "last_reported_at",
        "updated_at",
        "merged_into",
    ),
    # The zones where each incident stands now (migration 0018): its first report's zones
    # until staff move its pin.
    "incident_zones": ("jurisdiction_id", "incident_id", "layer", "code", "name"),
    "incident_reports": (
        "report_id",
        "jurisdiction_id",
        "incident_id",
        "score",
        "reason",
        "linked_at",
    ),
    "assignments": (
        "id",
        "jurisdiction_id",
        "incident_id",
        "team",
        "rule_id",
        "rule_version",
        "reason",
        "priority",
        "due_at",
        "assigned_at",
        "actor",
    ),
    "events": (
        "id",
        "jurisdiction_id",
        "entity",
        "entity_id",
        "kind",
        "actor",
        "reason",
        "at",
    ),
    "routing_rules": (
        "jurisdiction_id",
        "rule_id",
        "version",
        "content_hash",
        "content",
        "loaded_at",
    ),
    "escalations": (
        "incident_id",
        "jurisdiction_id",
        "escalate_at",
        "escalate_to",
        "escalated_at",
    ),
    "outbox": (
        "id",
        "jurisdiction_id",
        "idempotency_key",
        "channel",
        "target",
        "team",
        "kind",
        "entity",
        "entity_id",
        "payload",
        "status",
        "attempts",
        "next_attempt_at",
        "claimed_by",
        "claimed_until",
        "last_error",
        "created_at",
        "delivered_at",
    ),
}

# Ids are signed 64-bit integers in both backends (sqlite INTEGER, PostgreSQL bigint).
MAX_ID = 2**63 - 1
MAX_JSON_ID = 2**53 - 1
"""The largest id a JSON body may carry: every JSON reader (and the fuzzers' float
arithmetic) holds integers exactly up to 2^53; ids never come near it."""

# Tables whose ids the pipeline reserves before writing, to link rows inside one batch.
ID_TABLES = ("reports", "incidents", "assignments", "events", "outbox")

DATETIME_COLUMNS = frozenset(
    {
        "requested_at",
        "received_at",
        "due_at",
        "first_reported_at",
        "last_reported_at",
        "updated_at",
        "linked_at",
        "assigned_at",
        "at",
        "loaded_at",
        "escalate_at",
        "escalated_at",
        "next_attempt_at",
        "claimed_until",
        "created_at",
        "delivered_at",
    }
)
BOOL_COLUMNS = frozenset({"off_network", "outside_territory", "near_boundary"})
