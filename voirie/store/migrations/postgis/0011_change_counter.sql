-- The store's change counter: one row whose version goes up once per committed transaction
-- that wrote public data (reports, their incident links, incidents, assignments), with
-- the instant of that commit. HTTP caching derives ETag and Last-Modified from it
-- (voirie.api.caching), so a public read can answer 304 without reading its rows.
-- The trigger is deferred to the commit: the row is locked only while committing, after
-- every other lock of the transaction, so writers never wait on it for long nor deadlock.
CREATE TABLE store_changes (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  version bigint NOT NULL DEFAULT 0,
  changed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO store_changes DEFAULT VALUES;

CREATE FUNCTION voirie_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Fired for every row written: count the transaction once.
  IF current_setting('voirie.change_counted', true) IS DISTINCT FROM 'yes' THEN
    PERFORM set_config('voirie.change_counted', 'yes', true);
    UPDATE store_changes SET version = version + 1, changed_at = clock_timestamp();
  END IF;
  RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER reports_change AFTER INSERT OR UPDATE OR DELETE ON reports
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION voirie_count_change();
CREATE CONSTRAINT TRIGGER incident_reports_change
  AFTER INSERT OR UPDATE OR DELETE ON incident_reports
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION voirie_count_change();
CREATE CONSTRAINT TRIGGER incidents_change AFTER INSERT OR UPDATE OR DELETE ON incidents
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION voirie_count_change();
CREATE CONSTRAINT TRIGGER assignments_change AFTER INSERT OR UPDATE OR DELETE ON assignments
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION voirie_count_change();

-- Open311 GET requests reads a window of requested_at (by default the days before the
-- newest request): both the window and the newest request go through this index.
CREATE INDEX reports_requested ON reports (jurisdiction_id, requested_at);
