-- Staff accounts that sign in to the staff pages (/staff/login; voirie users add) and their
-- sessions. Only an argon2 hash of each password is kept, and only the SHA-256 of each
-- session id (the cookie): whoever reads the database can sign in as nobody. teams is a
-- JSON array of team codes (an agent's scope). failed_attempts and locked_until lock an
-- account after repeated wrong passwords. Not registered in gpkg_contents: GIS tools
-- opening the file do not list these tables.
CREATE TABLE staff_users (
  id INTEGER PRIMARY KEY,
  jurisdiction_id TEXT NOT NULL,
  name TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin', 'dispatcher', 'agent', 'gis')),
  teams TEXT NOT NULL DEFAULT '[]',
  failed_attempts INTEGER NOT NULL DEFAULT 0,
  locked_until DATETIME,
  disabled_at DATETIME,
  created_at DATETIME NOT NULL,
  UNIQUE (name, jurisdiction_id)
);
CREATE TABLE staff_sessions (
  jurisdiction_id TEXT NOT NULL,
  session_hash TEXT NOT NULL,
  user_id INTEGER NOT NULL REFERENCES staff_users(id),
  created_at DATETIME NOT NULL,
  last_seen_at DATETIME NOT NULL,
  expires_at DATETIME NOT NULL,
  PRIMARY KEY (jurisdiction_id, session_hash)
);
CREATE INDEX staff_sessions_user ON staff_sessions (jurisdiction_id, user_id);
