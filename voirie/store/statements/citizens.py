"""Citizens' part in incidents: supporters ("me too"), the salt of anonymous clients'
keys, followers, and the people to tell about an incident."""

from __future__ import annotations

import secrets
from datetime import datetime

from voirie.store.statements.session import Session


class SqlCitizens:
    """``Citizens`` over a session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add_supporter(
        self, incident_id: int, email: str | None, at: datetime, client_key: str | None = None
    ) -> tuple[bool, int]:
        """Record one "me too" unless the email, or the anonymous client's key, already
        supports the incident; then (counted, the incident's supporters now)."""
        s = self.session
        key = (s.jurisdiction_id, int(incident_id))
        cursor = s.run(
            "INSERT INTO incident_supporters (jurisdiction_id, incident_id, email, client_key, "
            "supported_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (*key, email, client_key, s.dialect.instant(at)),
        )
        counted = bool(cursor.rowcount == 1)
        if counted:
            s.run(
                "UPDATE incidents SET supporters = supporters + 1 "
                "WHERE jurisdiction_id = ? AND id = ?",
                key,
            )
        (supporters,) = s.run(
            "SELECT supporters FROM incidents WHERE jurisdiction_id = ? AND id = ?", key
        ).fetchone()
        return counted, int(supporters)

    def client_salt(self, day: str) -> str:
        """The salt of anonymous clients' keys for ``day`` (ISO date), made on first use;
        the salts of earlier days are deleted (their keys can no longer be traced)."""
        s = self.session
        s.run(
            "DELETE FROM client_salts WHERE jurisdiction_id = ? AND day < ?",
            (s.jurisdiction_id, day),
        )
        s.run(
            "INSERT INTO client_salts (jurisdiction_id, day, salt) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (s.jurisdiction_id, day, secrets.token_hex(16)),
        )
        (salt,) = s.run(
            "SELECT salt FROM client_salts WHERE jurisdiction_id = ? AND day = ?",
            (s.jurisdiction_id, day),
        ).fetchone()
        return str(salt)

    def add_follower(self, incident_id: int, email: str, at: datetime) -> bool:
        """Subscribe an email to an incident's updates; False when it already followed."""
        s = self.session
        cursor = s.run(
            "INSERT INTO incident_followers (jurisdiction_id, incident_id, email, followed_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (s.jurisdiction_id, int(incident_id), email, s.dialect.instant(at)),
        )
        return bool(cursor.rowcount == 1)

    def remove_follower(self, incident_id: int, email: str) -> bool:
        """Unsubscribe an email from an incident; False when it did not follow it."""
        s = self.session
        cursor = s.run(
            "DELETE FROM incident_followers "
            "WHERE jurisdiction_id = ? AND incident_id = ? AND email = ?",
            (s.jurisdiction_id, int(incident_id), email),
        )
        return bool(cursor.rowcount == 1)

    def subscribers(self, incident_id: int) -> list[str]:
        """Emails to tell about an incident: its followers' and its reporters' (personal
        data: only for notices to them)."""
        s = self.session
        key = (s.jurisdiction_id, int(incident_id))
        rows = s.run(
            "SELECT email FROM incident_followers WHERE jurisdiction_id = ? AND incident_id = ? "
            "UNION SELECT c.email FROM report_contacts c JOIN incident_reports l "
            "ON l.report_id = c.report_id AND l.jurisdiction_id = c.jurisdiction_id "
            "WHERE l.jurisdiction_id = ? AND l.incident_id = ? "
            "AND c.email IS NOT NULL AND c.email <> '' ORDER BY 1",
            (*key, *key),
        ).fetchall()
        return [str(email) for (email,) in rows]
