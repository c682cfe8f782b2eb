-- A city's change counter in shards (issue 20): every commit that wrote a city's rows
-- updated that city's one row, so its concurrent writers (two Open311 POSTs of different
-- streets) committed one after the other on that row's lock, each waiting for the other's
-- flush to disk. Now a commit counts on the shard of its server process (16 per city),
-- and a city's version is the store's version before migration 0021 (row '', shard 0)
-- plus the sum of its shards: it still grows at every commit that wrote the city, it
-- never falls, and it never gives again a version some answer was labelled with (at this
-- migration it jumps once, by the store's version, as the city's row of 0021 becomes its
-- shard 0).
ALTER TABLE store_changes ADD COLUMN shard smallint NOT NULL DEFAULT 0;
ALTER TABLE store_changes DROP CONSTRAINT store_changes_pkey;
ALTER TABLE store_changes ADD CONSTRAINT store_changes_pkey PRIMARY KEY (jurisdiction_id, shard);

CREATE OR REPLACE FUNCTION voirie_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  city text := CASE WHEN TG_OP = 'DELETE' THEN OLD.jurisdiction_id ELSE NEW.jurisdiction_id END;
  counted text := coalesce(nullif(current_setting('voirie.change_counted', true), ''), E'\n');
BEGIN
  IF position(E'\n' || city || E'\n' IN counted) = 0 THEN
    PERFORM set_config('voirie.change_counted', counted || city || E'\n', true);
    INSERT INTO store_changes AS mine (jurisdiction_id, shard, version, changed_at)
      VALUES (city, pg_backend_pid() % 16, 1, clock_timestamp())
    ON CONFLICT (jurisdiction_id, shard)
      DO UPDATE SET version = mine.version + 1, changed_at = clock_timestamp();
  END IF;
  RETURN NULL;
END
$$;
