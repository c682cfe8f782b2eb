-- Moderation of reports' public content (issue 17 item 6). Staff may hide or edit a
-- report's description and hide its photos: the public columns of reports (description,
-- media_url) then hold the moderated version, which every public surface reads (Open311,
-- OGC items, exports, tiles, nearby, tracking page), and this table keeps what the citizen
-- sent, for staff only. Who moderated and why is the 'moderated' event of the report.
CREATE TABLE report_moderation (
  jurisdiction_id text NOT NULL,
  report_id bigint NOT NULL,
  original_description text,
  original_media_url text,
  description_state text NOT NULL DEFAULT 'shown'
    CHECK (description_state IN ('shown', 'edited', 'hidden')),
  hidden_photos text NOT NULL DEFAULT '',
  moderated_at timestamptz NOT NULL,
  PRIMARY KEY (jurisdiction_id, report_id)
);
