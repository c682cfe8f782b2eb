-- The private tracking link of a report sent with the citizens' form (/suivi/{token}).
-- Only the SHA-256 of the token is kept: whoever reads the database cannot rebuild a link.
-- photos lists the report's stored photo names (space-separated); the report's media_url
-- is the first. Not registered in gpkg_contents: GIS tools opening the file do not list it.
CREATE TABLE report_tracking (
  jurisdiction_id TEXT NOT NULL,
  token_hash TEXT NOT NULL,
  report_id INTEGER NOT NULL,
  photos TEXT NOT NULL DEFAULT '',
  created_at DATETIME NOT NULL,
  PRIMARY KEY (jurisdiction_id, token_hash)
);
CREATE INDEX report_tracking_report ON report_tracking (jurisdiction_id, report_id);
