-- GeoPackage requirement 119: a table registered in gpkg_contents as "attributes" has an
-- INTEGER PRIMARY KEY, which GDAL and QGIS take as the feature id. routing_rules (0003)
-- and incident_zones (0018) had composite TEXT keys, so GDAL's validate_gpkg.py refused
-- the store's file. Each is rebuilt with an integer key (fid) and its old key kept as a
-- UNIQUE constraint, which the queries and the upserts use as before; rows keep their
-- order. No other table refers to either, and neither has triggers.
CREATE TABLE routing_rules_0025 (
  fid INTEGER PRIMARY KEY,
  jurisdiction_id TEXT NOT NULL,
  rule_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  content_hash TEXT NOT NULL,
  content TEXT NOT NULL,
  loaded_at DATETIME NOT NULL,
  UNIQUE (jurisdiction_id, rule_id, version)
);
INSERT INTO routing_rules_0025
  (jurisdiction_id, rule_id, version, content_hash, content, loaded_at)
SELECT jurisdiction_id, rule_id, version, content_hash, content, loaded_at
FROM routing_rules ORDER BY rowid;
DROP TABLE routing_rules;
ALTER TABLE routing_rules_0025 RENAME TO routing_rules;

CREATE TABLE incident_zones_0025 (
  fid INTEGER PRIMARY KEY,
  jurisdiction_id TEXT NOT NULL,
  incident_id INTEGER NOT NULL REFERENCES incidents(id),
  layer TEXT NOT NULL,
  code TEXT,
  name TEXT,
  UNIQUE (jurisdiction_id, incident_id, layer)
);
INSERT INTO incident_zones_0025 (jurisdiction_id, incident_id, layer, code, name)
SELECT jurisdiction_id, incident_id, layer, code, name FROM incident_zones ORDER BY rowid;
DROP TABLE incident_zones;
ALTER TABLE incident_zones_0025 RENAME TO incident_zones;
CREATE INDEX incident_zones_by_code ON incident_zones (jurisdiction_id, layer, code);
