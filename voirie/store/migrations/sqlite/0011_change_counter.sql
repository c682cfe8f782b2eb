-- The store's change counter: one row whose version goes up with every row written to the
-- public data (reports, their incident links, incidents, assignments), with the instant of
-- the last write. sqlite has one writer at a time and the row is written inside the
-- writer's transaction, so readers see the new version exactly when they see the rows.
-- HTTP caching derives ETag and Last-Modified from it (voirie.api.caching).
-- Not registered in gpkg_contents: GIS tools opening the file do not list it.
CREATE TABLE store_changes (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  version INTEGER NOT NULL DEFAULT 0,
  changed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
INSERT INTO store_changes (id) VALUES (1);
CREATE TRIGGER reports_insert_change AFTER INSERT ON reports BEGIN
  UPDATE store_changes SET version = version + 1,
    changed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now');
END;
CREATE TRIGGER reports_update_change AFTER UPDATE ON reports BEGIN
  UPDATE store_changes SET version = version + 1,
    changed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now');
END;
CREATE TRIGGER reports_delete_change AFTER DELETE ON reports BEGIN
  UPDATE store_changes SET version = version + 1,
    changed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now');
END;
CREATE TRIGGER incident_reports_insert_change AFTER INSERT ON incident_reports BEGIN
  UPDATE store_changes SET version = version + 1,
    changed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now');
END;
CREATE TRIGGER incident_reports_update_change AFTER UPDATE ON incident_reports BEGIN
  UPDATE store_changes SET version = version + 1,
    changed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now');
END;
CREATE TRIGGER incident_reports_delete_change AFTER DELETE ON incident_reports BEGIN
  UPDATE store_changes SET version = version + 1,
    changed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now');
END;
CREATE TRIGGER incidents_insert_change AFTER INSERT ON incidents BEGIN
  UPDATE store_changes SET version = version + 1,
    changed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now');
END;
CREATE TRIGGER incidents_update_change AFTER UPDATE ON incidents BEGIN
  UPDATE store_changes SET version = version + 1,
    changed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now');
END;
CREATE TRIGGER incidents_delete_change AFTER DELETE ON incidents BEGIN
  UPDATE store_changes SET version = version + 1,
    changed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now');
END;
CREATE TRIGGER assignments_insert_change AFTER INSERT ON assignments BEGIN
  UPDATE store_changes SET version = version + 1,
    changed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now');
END;
CREATE TRIGGER assignments_update_change AFTER UPDATE ON assignments BEGIN
  UPDATE store_changes SET version = version + 1,
    changed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now');
END;
CREATE TRIGGER assignments_delete_change AFTER DELETE ON assignments BEGIN
  UPDATE store_changes SET version = version + 1,
    changed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now');
END;

-- Open311 GET requests reads a window of requested_at (by default the days before the
-- newest request): both the window and the newest request go through this index.
CREATE INDEX reports_requested ON reports (jurisdiction_id, requested_at);
