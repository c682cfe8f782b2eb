"""The statistics read (``StoreReads.incident_timings``), written once for both backends.

One row per incident the dashboard counts: every open one (the backlog, whatever its age)
and every one first reported since the period's start, with its zone in one layer and
the two moments its delays are measured to, taken from the history in the same query:
the first status change (someone acknowledged it: the first answer) and the first move to
resolved or closed. Status changes are worded ``old → new[: note]``
(``services.workflow.StatusChange``); the patterns below match the new status.
"""

from __future__ import annotations

RESOLVED_PATTERNS = ("% → resolved", "% → resolved: %", "% → closed", "% → closed: %")
"""``LIKE`` patterns of an event reason moving an incident to resolved or closed."""

TIMINGS = """
SELECT i.id, i.team, i.service_code, i.status, i.due_at, i.first_reported_at,
       z.code AS zone, z.name AS zone_name, e.acknowledged_at, e.resolved_at
FROM incidents i
LEFT JOIN report_zones z
  ON z.jurisdiction_id = i.jurisdiction_id AND z.report_id = i.origin_report_id
  AND z.layer = ?
LEFT JOIN (
  SELECT entity_id, MIN(at) AS acknowledged_at,
         MIN(CASE WHEN reason LIKE ? OR reason LIKE ? OR reason LIKE ? OR reason LIKE ?
             THEN at END) AS resolved_at
  FROM events
  WHERE jurisdiction_id = ? AND kind = 'status_changed' AND entity = 'incident' AND at >= ?
  GROUP BY entity_id
) e ON e.entity_id = i.id
WHERE i.jurisdiction_id = ? AND i.status <> 'duplicate'
  AND (i.first_reported_at >= ? OR {open_condition}){team_condition}
"""
"""``{open_condition}``: the status is open (an array condition); ``{team_condition}``:
empty, or `` AND`` an array condition on the team (an agent's teams)."""

TIMING_COLUMNS = (
    "id",
    "team",
    "service_code",
    "status",
    "due_at",
    "first_reported_at",
    "zone",
    "zone_name",
    "acknowledged_at",
    "resolved_at",
)
