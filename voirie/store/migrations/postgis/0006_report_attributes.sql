-- Answers to a service's extra questions (Open311 attribute[CODE]=VALUE), one row per
-- value: a multivaluelist answer has several rows. Public, like the report itself.
CREATE TABLE report_attributes (
  report_id bigint NOT NULL,
  jurisdiction_id text NOT NULL,
  code text NOT NULL,
  value text NOT NULL,
  PRIMARY KEY (report_id, jurisdiction_id, code, value),
  FOREIGN KEY (report_id, jurisdiction_id) REFERENCES reports (id, jurisdiction_id)
);
