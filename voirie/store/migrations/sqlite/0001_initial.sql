-- voirie schema 1 for the embedded store. The file is a GeoPackage 1.3: reports and
-- incidents are point feature tables with an R*Tree index that QGIS and GDAL read.
PRAGMA application_id = 1196444487;
PRAGMA user_version = 10300;

CREATE TABLE IF NOT EXISTS gpkg_spatial_ref_sys (
  srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
  organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT
);
INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES
  ('Undefined cartesian SRS', -1, 'NONE', -1, 'undefined', 'undefined cartesian coordinate reference system'),
  ('Undefined geographic SRS', 0, 'NONE', 0, 'undefined', 'undefined geographic coordinate reference system'),
  ('WGS 84 geodetic', 4326, 'EPSG', 4326,
   'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]',
   'longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid');

CREATE TABLE IF NOT EXISTS gpkg_contents (
  table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
  description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
  CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id)
);
CREATE TABLE IF NOT EXISTS gpkg_geometry_columns (
  table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
  srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
  CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
  CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
  CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id)
);
CREATE TABLE IF NOT EXISTS gpkg_extensions (
  table_name TEXT, column_name TEXT, extension_name TEXT NOT NULL, definition TEXT NOT NULL,
  scope TEXT NOT NULL, CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name)
);

CREATE TABLE reports (
  id INTEGER PRIMARY KEY,
  geom POINT,
  jurisdiction_id TEXT NOT NULL,
  external_id TEXT NOT NULL,
  source TEXT NOT NULL,
  service_code TEXT NOT NULL,
  description TEXT,
  address TEXT,
  channel TEXT,
  media_url TEXT,
  lon DOUBLE NOT NULL,
  lat DOUBLE NOT NULL,
  requested_at DATETIME NOT NULL,
  received_at DATETIME NOT NULL,
  content_hash TEXT NOT NULL,
  UNIQUE (jurisdiction_id, source, external_id)
);

-- Reporter contact data lives apart from the public report, never joined into public views.
CREATE TABLE report_contacts (
  report_id INTEGER PRIMARY KEY REFERENCES reports(id),
  jurisdiction_id TEXT NOT NULL,
  name TEXT, email TEXT, phone TEXT, device_id TEXT
);

CREATE TABLE enrichments (
  report_id INTEGER PRIMARY KEY REFERENCES reports(id),
  jurisdiction_id TEXT NOT NULL,
  segment_id TEXT, street_name TEXT, snap_distance_m DOUBLE, position_m DOUBLE, side TEXT,
  snap_lon DOUBLE, snap_lat DOUBLE, snap_method TEXT, boundary_distance_m DOUBLE,
  off_network BOOLEAN NOT NULL, outside_territory BOOLEAN NOT NULL, near_boundary BOOLEAN NOT NULL
);

CREATE TABLE report_zones (
  report_id INTEGER NOT NULL REFERENCES reports(id),
  jurisdiction_id TEXT NOT NULL,
  layer TEXT NOT NULL, code TEXT, name TEXT, boundary_m DOUBLE,
  PRIMARY KEY (report_id, layer)
);

CREATE TABLE incidents (
  id INTEGER PRIMARY KEY,
  geom POINT,
  jurisdiction_id TEXT NOT NULL,
  service_code TEXT NOT NULL,
  origin_report_id INTEGER NOT NULL REFERENCES reports(id),
  lon DOUBLE NOT NULL,
  lat DOUBLE NOT NULL,
  segment_id TEXT, street_name TEXT,
  status TEXT NOT NULL,
  team TEXT NOT NULL,
  priority INTEGER NOT NULL,
  due_at DATETIME,
  report_count INTEGER NOT NULL,
  first_reported_at DATETIME NOT NULL,
  last_reported_at DATETIME NOT NULL,
  updated_at DATETIME NOT NULL
);
CREATE INDEX incidents_open ON incidents (jurisdiction_id, service_code, status, last_reported_at);

CREATE TABLE incident_reports (
  report_id INTEGER PRIMARY KEY REFERENCES reports(id),
  jurisdiction_id TEXT NOT NULL,
  incident_id INTEGER NOT NULL REFERENCES incidents(id),
  score DOUBLE NOT NULL,
  reason TEXT NOT NULL,
  linked_at DATETIME NOT NULL
);
CREATE INDEX incident_reports_incident ON incident_reports (incident_id);

CREATE TABLE assignments (
  id INTEGER PRIMARY KEY,
  jurisdiction_id TEXT NOT NULL,
  incident_id INTEGER NOT NULL REFERENCES incidents(id),
  team TEXT NOT NULL, rule_id TEXT, rule_version INTEGER, reason TEXT NOT NULL,
  priority INTEGER NOT NULL, due_at DATETIME, assigned_at DATETIME NOT NULL, actor TEXT NOT NULL
);
CREATE INDEX assignments_incident ON assignments (incident_id);

CREATE TABLE events (
  id INTEGER PRIMARY KEY,
  jurisdiction_id TEXT NOT NULL,
  entity TEXT NOT NULL, entity_id INTEGER NOT NULL, kind TEXT NOT NULL,
  actor TEXT NOT NULL, reason TEXT, at DATETIME NOT NULL
);
CREATE INDEX events_entity ON events (entity, entity_id);

INSERT INTO gpkg_contents (table_name, data_type, identifier, description, srs_id) VALUES
  ('reports', 'features', 'reports', 'Citizen reports (public fields)', 4326),
  ('incidents', 'features', 'incidents', 'Incidents: duplicate reports grouped', 4326),
  ('enrichments', 'attributes', 'enrichments', 'Street and zone context of each report', NULL),
  ('report_zones', 'attributes', 'report_zones', 'Zone of each report, per zone layer', NULL),
  ('incident_reports', 'attributes', 'incident_reports', 'Which incident each report belongs to', NULL),
  ('assignments', 'attributes', 'assignments', 'Routing decisions', NULL),
  ('events', 'attributes', 'events', 'Append-only history', NULL);
INSERT INTO gpkg_geometry_columns VALUES
  ('reports', 'geom', 'POINT', 4326, 0, 0),
  ('incidents', 'geom', 'POINT', 4326, 0, 0);
