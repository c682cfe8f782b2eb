-- The zones of each incident, per zone layer (issue 16): the zones of where the incident
-- stands now. Until now an incident's zones were read through its first report's
-- report_zones, so a pin moved by staff kept the zones of the first report in every zone
-- filter, CQL2 zone property, export and statistic. Written on creation (equal to the
-- opening report's zones), replaced when staff move the pin, re-read from the first report
-- when re-clustering or a split gives the incident another first report and place.
-- One row per layer the incident falls in; (jurisdiction_id, layer, code) finds the
-- incidents of one zone for the zone filters. Public, like the incident: registered in
-- gpkg_contents as report_zones is.
CREATE TABLE incident_zones (
  jurisdiction_id TEXT NOT NULL,
  incident_id INTEGER NOT NULL REFERENCES incidents(id),
  layer TEXT NOT NULL,
  code TEXT,
  name TEXT,
  PRIMARY KEY (jurisdiction_id, incident_id, layer)
);
CREATE INDEX incident_zones_by_code ON incident_zones (jurisdiction_id, layer, code);

-- Every stored incident gets the zones of its first report: what every read showed so far.
INSERT INTO incident_zones (jurisdiction_id, incident_id, layer, code, name)
SELECT i.jurisdiction_id, i.id, z.layer, z.code, z.name
FROM incidents i
JOIN report_zones z ON z.report_id = i.origin_report_id;

INSERT INTO gpkg_contents (table_name, data_type, identifier, description, srs_id) VALUES
  ('incident_zones', 'attributes', 'incident_zones',
   'Zone of each incident where it stands now, per zone layer', NULL);
