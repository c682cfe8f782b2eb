"""Read queries shared by both backends, in standard SQL.

``{j}`` stands for the bound jurisdiction parameter (``?`` for sqlite, ``%s`` for psycopg);
no value is ever formatted into the text.
"""

from __future__ import annotations

QUERIES: dict[str, str] = {
    # One row per report: public fields, enrichment, incident and its team. No contact data.
    "reports": """
        SELECT r.id AS report_id, r.external_id, r.source, r.service_code, r.description,
               r.address, r.channel, r.lon, r.lat, r.requested_at, r.received_at,
               e.segment_id, e.street_name, e.snap_distance_m, e.position_m, e.side,
               e.snap_method, e.boundary_distance_m, e.off_network, e.outside_territory,
               e.near_boundary, l.incident_id, l.score AS dedupe_score,
               l.reason AS dedupe_reason, i.team, i.status
        FROM reports r
        JOIN enrichments e ON e.report_id = r.id
        JOIN incident_reports l ON l.report_id = r.id
        JOIN incidents i ON i.id = l.incident_id
        WHERE r.jurisdiction_id = {j}
        ORDER BY r.id""",
    "report_zones": """
        SELECT z.report_id, z.layer, z.code, z.name, z.boundary_m
        FROM report_zones z WHERE z.jurisdiction_id = {j}
        ORDER BY z.report_id, z.layer""",
    "incidents": """
        SELECT i.id AS incident_id, i.service_code, i.origin_report_id, i.lon, i.lat,
               i.segment_id, i.street_name, i.status, i.team, i.priority, i.due_at,
               i.report_count, i.first_reported_at, i.last_reported_at, i.updated_at,
               a.rule_id, a.rule_version, a.reason AS routing_reason
        FROM incidents i
        LEFT JOIN assignments a ON a.id = (
            SELECT max(a2.id) FROM assignments a2 WHERE a2.incident_id = i.id)
        WHERE i.jurisdiction_id = {j}
        ORDER BY i.id""",
}
