-- Routing (issue 5): rule versions as loaded, escalation deadlines, and the outbox of
-- notifications written in the same transaction as the change they announce.

-- Every version of every rule ever loaded; a rule changed without a new version is refused.
CREATE TABLE routing_rules (
  jurisdiction_id TEXT NOT NULL,
  rule_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  content_hash TEXT NOT NULL,
  content TEXT NOT NULL,
  loaded_at DATETIME NOT NULL,
  PRIMARY KEY (jurisdiction_id, rule_id, version)
);

-- When an open incident goes to its escalation team (factor x SLA), and when it did.
CREATE TABLE escalations (
  incident_id INTEGER PRIMARY KEY REFERENCES incidents(id),
  jurisdiction_id TEXT NOT NULL,
  escalate_at DATETIME NOT NULL,
  escalate_to TEXT NOT NULL,
  escalated_at DATETIME
);
CREATE INDEX escalations_pending ON escalations (jurisdiction_id, escalate_at)
  WHERE escalated_at IS NULL;

-- Messages to deliver (webhook or email), at least once, each with an idempotency key.
-- Targets include citizens' emails (personal data): not registered in gpkg_contents.
CREATE TABLE outbox (
  id INTEGER PRIMARY KEY,
  jurisdiction_id TEXT NOT NULL,
  idempotency_key TEXT NOT NULL,
  channel TEXT NOT NULL,
  target TEXT NOT NULL,
  team TEXT,
  kind TEXT NOT NULL,
  entity TEXT NOT NULL,
  entity_id INTEGER NOT NULL,
  payload TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  next_attempt_at DATETIME NOT NULL,
  claimed_by TEXT,
  claimed_until DATETIME,
  last_error TEXT,
  created_at DATETIME NOT NULL,
  delivered_at DATETIME,
  UNIQUE (jurisdiction_id, idempotency_key)
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

INSERT INTO gpkg_contents (table_name, data_type, identifier, description, srs_id) VALUES
  ('routing_rules', 'attributes', 'routing_rules', 'Routing rule versions as loaded', NULL),
  ('escalations', 'attributes', 'escalations', 'Escalation deadlines of incidents', NULL);
