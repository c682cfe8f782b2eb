-- Merging (staff and re-clustering): a merged-away incident keeps its row with status
-- 'duplicate' and points at the incident that absorbed it, so a lookup of its id answers
-- with the survivor. Pairs of incidents staff marked "not duplicates" are remembered so
-- that re-clustering never puts their reports together again (incident_a < incident_b).
ALTER TABLE incidents ADD COLUMN merged_into INTEGER REFERENCES incidents(id);

CREATE TABLE not_duplicates (
  jurisdiction_id TEXT NOT NULL,
  incident_a INTEGER NOT NULL REFERENCES incidents(id),
  incident_b INTEGER NOT NULL REFERENCES incidents(id),
  actor TEXT NOT NULL,
  reason TEXT NOT NULL,
  marked_at DATETIME NOT NULL,
  PRIMARY KEY (incident_a, incident_b, jurisdiction_id),
  CHECK (incident_a < incident_b)
);
CREATE INDEX not_duplicates_b ON not_duplicates (incident_b);
