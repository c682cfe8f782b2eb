-- API tokens of the staff API and Open311 clients (voirie tokens add). Only a SHA-256 of
-- each token is kept: the token itself is printed once and never stored. teams is a JSON
-- array of team codes (an agent's scope); not registered in gpkg_contents, so GIS tools
-- opening the file do not list it.
CREATE TABLE api_tokens (
  id INTEGER PRIMARY KEY,
  jurisdiction_id TEXT NOT NULL,
  token_hash TEXT NOT NULL,
  name TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin', 'dispatcher', 'agent', 'gis', 'client')),
  teams TEXT NOT NULL DEFAULT '[]',
  created_at DATETIME NOT NULL,
  UNIQUE (token_hash, jurisdiction_id)
);
