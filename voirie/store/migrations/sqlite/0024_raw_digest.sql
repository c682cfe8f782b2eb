-- The import's digest of each source row as read (``voirie.ingest.digest``), so that a
-- re-import tells a row it stored before from a changed one without validating it again:
-- a row stored under its external id with the same digest is counted as already imported.
-- Null for reports stored before this migration and for those that came one at a time
-- (Open311, the citizens' form): those rows are validated and told apart by their
-- content_hash, as before. Nullable without a default: added without rewriting the table.
ALTER TABLE reports ADD COLUMN raw_digest TEXT;
