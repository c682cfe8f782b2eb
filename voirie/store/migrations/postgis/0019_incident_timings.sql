-- The statistics dashboard (issue 16 item 6) measures each incident's delays to two moments
-- of its history: the first status change (acknowledged: the team's first answer) and the
-- first move to resolved or closed. Reading them from events on every request aggregated
-- the whole history (66 s at 1M incidents); they are kept on the incident instead, set in
-- the transaction of every status change (``voirie.store.stats.REFRESH_TIMINGS``, the same
-- definition as this backfill), so the dashboard reads only the period's incidents.
ALTER TABLE incidents ADD COLUMN acknowledged_at timestamptz;
ALTER TABLE incidents ADD COLUMN resolved_at timestamptz;

-- Status changes are worded "old → new[: note]" (services.workflow.StatusChange).
UPDATE incidents AS i
SET acknowledged_at = e.acknowledged_at, resolved_at = e.resolved_at
FROM (
  SELECT jurisdiction_id, entity_id, MIN(at) AS acknowledged_at,
         MIN(CASE WHEN reason LIKE '% → resolved' OR reason LIKE '% → resolved: %'
                    OR reason LIKE '% → closed' OR reason LIKE '% → closed: %'
             THEN at END) AS resolved_at
  FROM events
  WHERE entity = 'incident' AND kind = 'status_changed'
  GROUP BY jurisdiction_id, entity_id
) AS e
WHERE i.jurisdiction_id = e.jurisdiction_id AND i.id = e.entity_id;

-- The change counter's deferred trigger (0011) queued one event per updated row: fire them
-- now, or CREATE INDEX refuses a table with pending trigger events.
SET CONSTRAINTS ALL IMMEDIATE;

-- The backlog reported before the period: the open incidents by status, then age
-- (the period's own incidents come by incidents_by_first_reported, 0017).
CREATE INDEX incidents_by_status_age ON incidents (jurisdiction_id, status, first_reported_at);
