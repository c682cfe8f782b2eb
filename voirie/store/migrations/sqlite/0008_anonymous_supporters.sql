-- An anonymous "me too" counts once per device and incident a day. client_key is a hash of
-- the client's address and browser with a salt of the day (client_salts); each day's salt
-- is deleted the next day, after which no key can be traced back to an address. Neither
-- table is registered in gpkg_contents: GIS tools opening the file do not list them.
ALTER TABLE incident_supporters ADD COLUMN client_key TEXT;
CREATE UNIQUE INDEX incident_supporters_client
  ON incident_supporters (incident_id, client_key, jurisdiction_id);
CREATE TABLE client_salts (
  jurisdiction_id TEXT NOT NULL,
  day TEXT NOT NULL,
  salt TEXT NOT NULL,
  PRIMARY KEY (jurisdiction_id, day)
);
