-- The change counter per jurisdiction (was one row for the whole store, migration 0011):
-- a write to one city's public data no longer changes another city's HTTP validators when
-- one store holds several cities (VOIRIE_CITIES). One row per jurisdiction written since,
-- plus the row of the whole store before this migration (jurisdiction_id ''): a city that
-- has no row of its own reads that one, and its first write starts from that version plus
-- one, so no city ever gives again a version some answer was labelled with before.
CREATE TABLE store_changes_by_city (
  jurisdiction_id text PRIMARY KEY,
  version bigint NOT NULL,
  changed_at timestamptz NOT NULL
);
INSERT INTO store_changes_by_city (jurisdiction_id, version, changed_at)
  SELECT '', version, changed_at FROM store_changes;
DROP TABLE store_changes;
ALTER TABLE store_changes_by_city RENAME TO store_changes;
ALTER INDEX store_changes_by_city_pkey RENAME TO store_changes_pkey;

-- Still counted once per transaction, now once per transaction and jurisdiction: the
-- jurisdictions already counted are kept, one a line, in a transaction-local setting.
-- Deferred to the commit as before (the triggers of 0011 stay): the city's row is locked
-- only while committing.
CREATE OR REPLACE FUNCTION voirie_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  city text := CASE WHEN TG_OP = 'DELETE' THEN OLD.jurisdiction_id ELSE NEW.jurisdiction_id END;
  counted text := coalesce(nullif(current_setting('voirie.change_counted', true), ''), E'\n');
BEGIN
  IF position(E'\n' || city || E'\n' IN counted) = 0 THEN
    PERFORM set_config('voirie.change_counted', counted || city || E'\n', true);
    INSERT INTO store_changes AS mine (jurisdiction_id, version, changed_at)
      SELECT city, store.version + 1, clock_timestamp()
      FROM store_changes AS store WHERE store.jurisdiction_id = ''
    ON CONFLICT (jurisdiction_id)
      DO UPDATE SET version = mine.version + 1, changed_at = clock_timestamp();
  END IF;
  RETURN NULL;
END
$$;
