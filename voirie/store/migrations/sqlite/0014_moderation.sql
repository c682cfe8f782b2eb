-- Moderation of reports' public content (issue 17 item 6). Staff may hide or edit a
-- report's description and hide its photos: the public columns of reports (description,
-- media_url) then hold the moderated version, which every public surface reads (Open311,
-- OGC items, exports, tiles, nearby, tracking page), and this table keeps what the citizen
-- sent, for staff only. Who moderated and why is the 'moderated' event of the report.
-- Not registered in gpkg_contents: GIS tools opening the file do not list it.
CREATE TABLE report_moderation (
  jurisdiction_id TEXT NOT NULL,
  report_id INTEGER NOT NULL,
  original_description TEXT,
  original_media_url TEXT,
  description_state TEXT NOT NULL DEFAULT 'shown'
    CHECK (description_state IN ('shown', 'edited', 'hidden')),
  hidden_photos TEXT NOT NULL DEFAULT '',
  moderated_at DATETIME NOT NULL,
  PRIMARY KEY (jurisdiction_id, report_id)
);
