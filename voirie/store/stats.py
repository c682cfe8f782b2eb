"""The statistics reads (``StoreReads.incident_timings``) and the upkeep of the moments they
measure to, written once for both backends.

Each incident keeps the two moments the dashboard measures its delays to (migration 0019):
``acknowledged_at``, its first status change (the team's first answer), and
``resolved_at``, its first move to resolved or closed. Both are kept in the UPDATE that
records a status change (``Incidents.set_status``), or refreshed from the history after
one written in bulk (``REFRESH_TIMINGS``, the definition the migration's backfill uses), so
the dashboard reads incidents only, never ``events``.

The dashboard reads two sets: every incident first reported since the period's start, one
row each (its delays need the row: medians and percentiles), and the open incidents
reported before, counted per team, service and zone in the database (the backlog needs
only counts, however old and large it is). Zones come from ``incident_zones`` (migration
0018), the incident's zone in the city's territory layer.
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

RESOLVED_PATTERNS = ("% → resolved", "% → resolved: %", "% → closed", "% → closed: %")
"""``LIKE`` patterns of an event reason moving an incident to resolved or closed: status
changes are worded ``old → new[: note]`` (``services.workflow.StatusChange``)."""

REFRESH_TIMINGS = """
UPDATE incidents AS i
SET acknowledged_at = e.acknowledged_at, resolved_at = e.resolved_at
FROM (
  SELECT entity_id, MIN(at) AS acknowledged_at,
         MIN(CASE WHEN reason LIKE ? OR reason LIKE ? OR reason LIKE ? OR reason LIKE ?
             THEN at END) AS resolved_at
  FROM events
  WHERE jurisdiction_id = ? AND entity = 'incident' AND kind = 'status_changed'
    AND {ids_condition}
  GROUP BY entity_id
) AS e
WHERE i.jurisdiction_id = ? AND i.id = e.entity_id
"""
"""Set the two moments of some incidents from their status events (``{ids_condition}``: an
array condition on ``entity_id``, read through the ``(entity, entity_id)`` index)."""

_ZONE_JOIN = """
LEFT JOIN incident_zones z
  ON z.jurisdiction_id = i.jurisdiction_id AND z.incident_id = i.id AND z.layer = ?
"""

PERIOD = f"""
SELECT i.team, i.service_code, i.status, CAST(i.due_at AS TEXT),
       CAST(i.first_reported_at AS TEXT), z.code AS zone, z.name AS zone_name,
       CAST(i.acknowledged_at AS TEXT), CAST(i.resolved_at AS TEXT)
FROM incidents i {_ZONE_JOIN}
WHERE i.jurisdiction_id = ? AND i.first_reported_at >= ? AND i.status <> 'duplicate'
  {{team_condition}}
"""
"""The incidents first reported since the period's start (``{team_condition}``: empty, or
``AND`` an array condition on the team: an agent's teams). Instants come as ISO text on
both backends: hundreds of thousands of rows at 1M incidents, and pandas parses text in
one vectorized pass where aware ``datetime`` objects cost one conversion each (2x faster
at 400,000 rows)."""

PERIOD_COLUMNS = (
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

BACKLOG = f"""
SELECT i.team, i.service_code, z.code AS zone, z.name AS zone_name, COUNT(*) AS backlog,
       SUM(CASE WHEN i.due_at < ? THEN 1 ELSE 0 END) AS overdue
FROM incidents i {_ZONE_JOIN}
WHERE i.jurisdiction_id = ? AND {{open_condition}} AND i.first_reported_at < ?
  {{team_condition}}
GROUP BY i.team, i.service_code, z.code, z.name
"""
"""The open incidents reported before the period, counted per team, service and zone, and
those past their due date (``{open_condition}``: an array condition on the status)."""

BACKLOG_COLUMNS = ("team", "service_code", "zone", "zone_name", "backlog", "overdue")


class Timings(NamedTuple):
    """What the dashboard reads: the period's incidents (``PERIOD_COLUMNS``, one row each)
    and the older open backlog (``BACKLOG_COLUMNS``, one row per team, service and zone)."""

    period: pd.DataFrame
    backlog: pd.DataFrame
