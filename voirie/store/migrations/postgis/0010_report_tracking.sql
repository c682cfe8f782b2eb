-- The private tracking link of a report sent with the citizens' form (/suivi/{token}).
-- Only the SHA-256 of the token is kept: whoever reads the database cannot rebuild a link.
-- photos lists the report's stored photo names (space-separated); the report's media_url
-- is the first.
CREATE TABLE report_tracking (
  jurisdiction_id text NOT NULL,
  token_hash text NOT NULL,
  report_id bigint NOT NULL,
  photos text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL,
  PRIMARY KEY (jurisdiction_id, token_hash)
);
CREATE INDEX report_tracking_report ON report_tracking (jurisdiction_id, report_id);
