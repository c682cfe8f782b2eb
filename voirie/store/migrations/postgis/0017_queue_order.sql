-- The staff queue's sorts (issue 16): one index per sort in the direction a dispatcher
-- reads it first (oldest, soonest due, most urgent, most reported), ties by id, so the
-- database walks the index to the page instead of sorting the whole selection. The
-- other direction of each sort is a top-N sort of the filtered rows.
CREATE INDEX incidents_by_first_reported ON incidents (jurisdiction_id, first_reported_at, id);
CREATE INDEX incidents_by_due ON incidents (jurisdiction_id, due_at, id);
CREATE INDEX incidents_by_priority ON incidents (jurisdiction_id, priority, id);
CREATE INDEX incidents_by_report_count
  ON incidents (jurisdiction_id, report_count DESC, id);
