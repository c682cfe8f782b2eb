-- The zones of each incident, per zone layer (issue 16): the zones of where the incident
-- stands now. Until now an incident's zones were read through its first report's
-- report_zones, so a pin moved by staff kept the zones of the first report in every zone
-- filter, CQL2 zone property, export and statistic. Written on creation (equal to the
-- opening report's zones), replaced when staff move the pin, re-read from the first report
-- when re-clustering or a split gives the incident another first report and place.
-- One row per layer the incident falls in. The primary key leads with jurisdiction_id: every
-- read names it (the dashboard joins on it too); (jurisdiction_id, layer, code) finds the
-- incidents of one zone for the zone filters.
CREATE TABLE incident_zones (
  jurisdiction_id text NOT NULL,
  incident_id bigint NOT NULL,
  layer text NOT NULL,
  code text,
  name text,
  PRIMARY KEY (jurisdiction_id, incident_id, layer),
  FOREIGN KEY (jurisdiction_id, incident_id) REFERENCES incidents (jurisdiction_id, id)
);
CREATE INDEX incident_zones_by_code ON incident_zones (jurisdiction_id, layer, code);

-- Every stored incident gets the zones of its first report: what every read showed so far.
INSERT INTO incident_zones (jurisdiction_id, incident_id, layer, code, name)
SELECT i.jurisdiction_id, i.id, z.layer, z.code, z.name
FROM incidents i
JOIN report_zones z ON z.jurisdiction_id = i.jurisdiction_id AND z.report_id = i.origin_report_id;
