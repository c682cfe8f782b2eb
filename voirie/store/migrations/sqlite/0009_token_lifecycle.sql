-- Token lifecycle (voirie tokens list | revoke | rotate): an optional expiry, the instant a
-- token was revoked (kept, not deleted: the list shows who had access and until when), and
-- when it was last used, written at most once a minute per token. GeoPackage DATETIME text.
ALTER TABLE api_tokens ADD COLUMN expires_at DATETIME;
ALTER TABLE api_tokens ADD COLUMN revoked_at DATETIME;
ALTER TABLE api_tokens ADD COLUMN last_used_at DATETIME;
