-- Citizens' "me too" (supporters) and follow-ups. incidents.supporters is the public count;
-- the emails are personal data kept in their own tables, never joined into a public read
-- and not registered in gpkg_contents (GIS tools opening the file do not list them).
-- An email supports an incident once; anonymous supporters (no email) each count.
ALTER TABLE incidents ADD COLUMN supporters INTEGER NOT NULL DEFAULT 0;

CREATE TABLE incident_supporters (
  id INTEGER PRIMARY KEY,
  jurisdiction_id TEXT NOT NULL,
  incident_id INTEGER NOT NULL REFERENCES incidents(id),
  email TEXT,
  supported_at DATETIME NOT NULL,
  UNIQUE (incident_id, email, jurisdiction_id)
);

CREATE TABLE incident_followers (
  jurisdiction_id TEXT NOT NULL,
  incident_id INTEGER NOT NULL REFERENCES incidents(id),
  email TEXT NOT NULL,
  followed_at DATETIME NOT NULL,
  PRIMARY KEY (incident_id, email, jurisdiction_id)
);
