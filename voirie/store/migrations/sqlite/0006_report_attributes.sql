-- Answers to a service's extra questions (Open311 attribute[CODE]=VALUE), one row per
-- value: a multivaluelist answer has several rows. Public, like the report itself.
CREATE TABLE report_attributes (
  report_id INTEGER NOT NULL REFERENCES reports(id),
  jurisdiction_id TEXT NOT NULL,
  code TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (report_id, code, value)
);
INSERT INTO gpkg_contents (table_name, data_type, identifier, description, srs_id) VALUES
  ('report_attributes', 'attributes', 'report_attributes',
   'Answers to the extra questions of a service', NULL);
