-- Which reports show a photo (moderation's "shown elsewhere"): a photo is stored once per
-- content (its name is its hash), so reports sent with the same picture share one file,
-- and hiding it on one report may take the file out of the public folder only when no
-- other report shows it, as its media_url or on its tracking page. Both look-ups were
-- LIKE scans of every report and tracking link of the city, once per photo; they are
-- index look-ups now.

-- A report's media_url by the name it ends with (the text after its last '/'), with the
-- same expression in the query (services.moderation via statements.moderation).
CREATE INDEX reports_by_media_name ON reports (
  jurisdiction_id,
  substr(media_url, length(rtrim(media_url, replace(media_url, '/', ''))) + 1)
) WHERE media_url IS NOT NULL;

-- The photos each report's tracking page shows (report_tracking.photos, space-separated,
-- one row per name), written with the link and when moderation hides one.
CREATE TABLE report_photos (
  jurisdiction_id TEXT NOT NULL,
  name TEXT NOT NULL,
  report_id INTEGER NOT NULL,
  PRIMARY KEY (jurisdiction_id, name, report_id)
);
INSERT OR IGNORE INTO report_photos (jurisdiction_id, name, report_id)
  WITH RECURSIVE words (jurisdiction_id, report_id, name, rest) AS (
    SELECT jurisdiction_id, report_id, '', photos || ' ' FROM report_tracking
    UNION ALL
    SELECT jurisdiction_id, report_id, substr(rest, 1, instr(rest, ' ') - 1),
           substr(rest, instr(rest, ' ') + 1)
    FROM words WHERE rest <> ''
  )
  SELECT jurisdiction_id, name, report_id FROM words WHERE name <> '';
