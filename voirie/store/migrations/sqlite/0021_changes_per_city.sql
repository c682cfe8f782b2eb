-- The change counter per jurisdiction (was one row for the whole store, migration 0011):
-- a write to one city's public data no longer changes another city's HTTP validators when
-- one store holds several cities (VOIRIE_CITIES). One row per jurisdiction written since,
-- plus the row of the whole store before this migration (jurisdiction_id ''): a city that
-- has no row of its own reads that one, and its first write starts from that version plus
-- one, so no city ever gives again a version some answer was labelled with before.
-- Counted per row written, inside the writer's transaction, as before.

DROP TRIGGER reports_insert_change;
DROP TRIGGER reports_update_change;
DROP TRIGGER reports_delete_change;
DROP TRIGGER incident_reports_insert_change;
DROP TRIGGER incident_reports_update_change;
DROP TRIGGER incident_reports_delete_change;
DROP TRIGGER incidents_insert_change;
DROP TRIGGER incidents_update_change;
DROP TRIGGER incidents_delete_change;
DROP TRIGGER assignments_insert_change;
DROP TRIGGER assignments_update_change;
DROP TRIGGER assignments_delete_change;

CREATE TABLE store_changes_by_city (
  jurisdiction_id TEXT PRIMARY KEY,
  version INTEGER NOT NULL,
  changed_at TEXT NOT NULL
);
INSERT INTO store_changes_by_city (jurisdiction_id, version, changed_at)
  SELECT '', version, changed_at FROM store_changes;
DROP TABLE store_changes;
ALTER TABLE store_changes_by_city RENAME TO store_changes;

CREATE TRIGGER reports_insert_change AFTER INSERT ON reports BEGIN
  INSERT INTO store_changes (jurisdiction_id, version, changed_at)
    SELECT NEW.jurisdiction_id, version + 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    FROM store_changes WHERE jurisdiction_id = ''
  ON CONFLICT (jurisdiction_id)
    DO UPDATE SET version = version + 1, changed_at = excluded.changed_at;
END;
CREATE TRIGGER reports_update_change AFTER UPDATE ON reports BEGIN
  INSERT INTO store_changes (jurisdiction_id, version, changed_at)
    SELECT NEW.jurisdiction_id, version + 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    FROM store_changes WHERE jurisdiction_id = ''
  ON CONFLICT (jurisdiction_id)
    DO UPDATE SET version = version + 1, changed_at = excluded.changed_at;
END;
CREATE TRIGGER reports_delete_change AFTER DELETE ON reports BEGIN
  INSERT INTO store_changes (jurisdiction_id, version, changed_at)
    SELECT OLD.jurisdiction_id, version + 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    FROM store_changes WHERE jurisdiction_id = ''
  ON CONFLICT (jurisdiction_id)
    DO UPDATE SET version = version + 1, changed_at = excluded.changed_at;
END;
CREATE TRIGGER incident_reports_insert_change AFTER INSERT ON incident_reports BEGIN
  INSERT INTO store_changes (jurisdiction_id, version, changed_at)
    SELECT NEW.jurisdiction_id, version + 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    FROM store_changes WHERE jurisdiction_id = ''
  ON CONFLICT (jurisdiction_id)
    DO UPDATE SET version = version + 1, changed_at = excluded.changed_at;
END;
CREATE TRIGGER incident_reports_update_change AFTER UPDATE ON incident_reports BEGIN
  INSERT INTO store_changes (jurisdiction_id, version, changed_at)
    SELECT NEW.jurisdiction_id, version + 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    FROM store_changes WHERE jurisdiction_id = ''
  ON CONFLICT (jurisdiction_id)
    DO UPDATE SET version = version + 1, changed_at = excluded.changed_at;
END;
CREATE TRIGGER incident_reports_delete_change AFTER DELETE ON incident_reports BEGIN
  INSERT INTO store_changes (jurisdiction_id, version, changed_at)
    SELECT OLD.jurisdiction_id, version + 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    FROM store_changes WHERE jurisdiction_id = ''
  ON CONFLICT (jurisdiction_id)
    DO UPDATE SET version = version + 1, changed_at = excluded.changed_at;
END;
CREATE TRIGGER incidents_insert_change AFTER INSERT ON incidents BEGIN
  INSERT INTO store_changes (jurisdiction_id, version, changed_at)
    SELECT NEW.jurisdiction_id, version + 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    FROM store_changes WHERE jurisdiction_id = ''
  ON CONFLICT (jurisdiction_id)
    DO UPDATE SET version = version + 1, changed_at = excluded.changed_at;
END;
CREATE TRIGGER incidents_update_change AFTER UPDATE ON incidents BEGIN
  INSERT INTO store_changes (jurisdiction_id, version, changed_at)
    SELECT NEW.jurisdiction_id, version + 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    FROM store_changes WHERE jurisdiction_id = ''
  ON CONFLICT (jurisdiction_id)
    DO UPDATE SET version = version + 1, changed_at = excluded.changed_at;
END;
CREATE TRIGGER incidents_delete_change AFTER DELETE ON incidents BEGIN
  INSERT INTO store_changes (jurisdiction_id, version, changed_at)
    SELECT OLD.jurisdiction_id, version + 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    FROM store_changes WHERE jurisdiction_id = ''
  ON CONFLICT (jurisdiction_id)
    DO UPDATE SET version = version + 1, changed_at = excluded.changed_at;
END;
CREATE TRIGGER assignments_insert_change AFTER INSERT ON assignments BEGIN
  INSERT INTO store_changes (jurisdiction_id, version, changed_at)
    SELECT NEW.jurisdiction_id, version + 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    FROM store_changes WHERE jurisdiction_id = ''
  ON CONFLICT (jurisdiction_id)
    DO UPDATE SET version = version + 1, changed_at = excluded.changed_at;
END;
CREATE TRIGGER assignments_update_change AFTER UPDATE ON assignments BEGIN
  INSERT INTO store_changes (jurisdiction_id, version, changed_at)
    SELECT NEW.jurisdiction_id, version + 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    FROM store_changes WHERE jurisdiction_id = ''
  ON CONFLICT (jurisdiction_id)
    DO UPDATE SET version = version + 1, changed_at = excluded.changed_at;
END;
CREATE TRIGGER assignments_delete_change AFTER DELETE ON assignments BEGIN
  INSERT INTO store_changes (jurisdiction_id, version, changed_at)
    SELECT OLD.jurisdiction_id, version + 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    FROM store_changes WHERE jurisdiction_id = ''
  ON CONFLICT (jurisdiction_id)
    DO UPDATE SET version = version + 1, changed_at = excluded.changed_at;
END;
