-- Routing rules learned from dispatchers' reassignments (issue 18): one row per version
-- of a sub-category's learned rule. status: proposed (waiting for a reviewer, routing
-- mode "review"), active (routing with it: accepted, or applied by mode "auto"), rejected,
-- or reverted (was active; routing went back to city.yaml). The rule's sentence is built
-- from corrections, kept and since. Not registered in gpkg_contents.
CREATE TABLE learned_rules (
  jurisdiction_id TEXT NOT NULL,
  service_code TEXT NOT NULL,
  version INTEGER NOT NULL,
  team TEXT NOT NULL,
  corrections INTEGER NOT NULL,
  kept INTEGER NOT NULL,
  since DATE NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('proposed', 'active', 'rejected', 'reverted')),
  learned_at DATETIME NOT NULL,
  decided_by TEXT,
  decided_at DATETIME,
  PRIMARY KEY (jurisdiction_id, service_code, version)
);
CREATE INDEX learned_rules_status ON learned_rules (jurisdiction_id, status);
