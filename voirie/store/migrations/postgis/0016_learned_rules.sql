-- Routing rules learned from dispatchers' reassignments (issue 18): one row per version
-- of a sub-category's learned rule. status: proposed (waiting for a reviewer, routing
-- mode "review"), active (routing with it: accepted, or applied by mode "auto"), rejected,
-- or reverted (was active; routing went back to city.yaml). The rule's sentence is built
-- from corrections, kept and since.
CREATE TABLE learned_rules (
  jurisdiction_id text NOT NULL,
  service_code text NOT NULL,
  version integer NOT NULL,
  team text NOT NULL,
  corrections integer NOT NULL,
  kept integer NOT NULL,
  since date NOT NULL,
  status text NOT NULL CHECK (status IN ('proposed', 'active', 'rejected', 'reverted')),
  learned_at timestamptz NOT NULL,
  decided_by text,
  decided_at timestamptz,
  PRIMARY KEY (jurisdiction_id, service_code, version)
);
CREATE INDEX learned_rules_status ON learned_rules (jurisdiction_id, status);
