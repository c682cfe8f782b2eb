-- Merging (staff and re-clustering): a merged-away incident keeps its row with status
-- 'duplicate' and points at the incident that absorbed it, so a lookup of its id answers
-- with the survivor. Pairs of incidents staff marked "not duplicates" are remembered so
-- that re-clustering never puts their reports together again (incident_a < incident_b).
ALTER TABLE incidents ADD COLUMN merged_into bigint;
ALTER TABLE incidents ADD FOREIGN KEY (jurisdiction_id, merged_into)
  REFERENCES incidents (jurisdiction_id, id);

CREATE TABLE not_duplicates (
  jurisdiction_id text NOT NULL,
  incident_a bigint NOT NULL,
  incident_b bigint NOT NULL,
  actor text NOT NULL,
  reason text NOT NULL,
  marked_at timestamptz NOT NULL,
  PRIMARY KEY (incident_a, incident_b, jurisdiction_id),
  CHECK (incident_a < incident_b),
  FOREIGN KEY (jurisdiction_id, incident_a) REFERENCES incidents (jurisdiction_id, id),
  FOREIGN KEY (jurisdiction_id, incident_b) REFERENCES incidents (jurisdiction_id, id)
);
CREATE INDEX not_duplicates_b ON not_duplicates (incident_b);
CREATE INDEX incidents_merged_into ON incidents (merged_into) WHERE merged_into IS NOT NULL;
