-- The history of one kind in a time window (the Open311 updates feed polls the status
-- changes since its last call): found through this index, not a scan of every event.
CREATE INDEX events_kind_at ON events (jurisdiction_id, kind, at);
