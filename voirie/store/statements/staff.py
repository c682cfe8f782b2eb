"""Staff accounts and their sign-in sessions (migration 0012), written once over a session.

A user's teams are kept as a JSON array of codes in both backends (team codes may hold
spaces and commas). Only hashes are stored: argon2 for passwords, SHA-256 for session ids.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from voirie.store.base import StaffSessionRecord, StaffUserRecord
from voirie.store.statements.session import Session

_USER_COLUMNS = (
    "id, name, password_hash, role, teams, failed_attempts, locked_until, disabled_at, created_at"
)


def _instant(value: object) -> datetime | None:
    """A stored instant read back as an aware UTC datetime (sqlite gives ISO text)."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _user(row: tuple[object, ...]) -> StaffUserRecord:
    uid, name, password_hash, role, teams, failed, locked, disabled, created = row
    return StaffUserRecord(
        id=int(str(uid)),
        name=str(name),
        password_hash=str(password_hash),
        role=str(role),
        teams=tuple(json.loads(str(teams))),
        failed_attempts=int(str(failed)),
        locked_until=_instant(locked),
        disabled_at=_instant(disabled),
        created_at=_instant(created),
    )


class SqlStaff:
    """``StaffAccounts`` over a session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add_user(
        self, name: str, password_hash: str, role: str, teams: tuple[str, ...], at: datetime
    ) -> int:
        """Store a new account; its id."""
        s = self.session
        row = s.run(
            "INSERT INTO staff_users (jurisdiction_id, name, password_hash, role, teams, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (
                s.jurisdiction_id,
                name,
                password_hash,
                role,
                json.dumps(teams),
                s.dialect.instant(at),
            ),
        ).fetchone()
        return int(row[0])

    def user(self, name: str) -> StaffUserRecord | None:
        """The account of this name, locked until commit (its counters change)."""
        s = self.session
        row = s.run(
            f"SELECT {_USER_COLUMNS} FROM staff_users WHERE jurisdiction_id = ? AND name = ?"
            + s.dialect.lock_rows,
            (s.jurisdiction_id, name),
        ).fetchone()
        return None if row is None else _user(row)

    def users(self) -> list[StaffUserRecord]:
        """Every account, oldest first."""
        s = self.session
        rows = s.run(
            f"SELECT {_USER_COLUMNS} FROM staff_users WHERE jurisdiction_id = ? ORDER BY id",
            (s.jurisdiction_id,),
        ).fetchall()
        return [_user(row) for row in rows]

    def set_attempts(self, user_id: int, failed: int, locked_until: datetime | None) -> None:
        """Record the count of consecutive failed sign-ins and the lock they set."""
        s = self.session
        s.run(
            "UPDATE staff_users SET failed_attempts = ?, locked_until = ? "
            "WHERE jurisdiction_id = ? AND id = ?",
            (
                failed,
                None if locked_until is None else s.dialect.instant(locked_until),
                s.jurisdiction_id,
                user_id,
            ),
        )

    def set_password(self, user_id: int, password_hash: str) -> None:
        """Replace an account's password hash (a rehash with stronger parameters)."""
        s = self.session
        s.run(
            "UPDATE staff_users SET password_hash = ? WHERE jurisdiction_id = ? AND id = ?",
            (password_hash, s.jurisdiction_id, user_id),
        )

    def disable(self, user_id: int, at: datetime) -> None:
        """Disable an account and end its sessions."""
        s = self.session
        s.run(
            "UPDATE staff_users SET disabled_at = ? WHERE jurisdiction_id = ? AND id = ?",
            (s.dialect.instant(at), s.jurisdiction_id, user_id),
        )
        s.run(
            "DELETE FROM staff_sessions WHERE jurisdiction_id = ? AND user_id = ?",
            (s.jurisdiction_id, user_id),
        )

    def add_session(
        self, session_hash: str, user_id: int, at: datetime, expires_at: datetime
    ) -> None:
        """Open a session for a user, ending at ``expires_at`` at the latest."""
        s = self.session
        s.run(
            "INSERT INTO staff_sessions (jurisdiction_id, session_hash, user_id, created_at, "
            "last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                s.jurisdiction_id,
                session_hash,
                user_id,
                s.dialect.instant(at),
                s.dialect.instant(at),
                s.dialect.instant(expires_at),
            ),
        )

    def find_session(self, session_hash: str) -> StaffSessionRecord | None:
        """The session under this hash with its user (disabled ones included)."""
        s = self.session
        columns = ", ".join(f"u.{c.strip()}" for c in _USER_COLUMNS.split(","))
        row = s.run(
            f"SELECT v.created_at, v.last_seen_at, v.expires_at, {columns} "
            "FROM staff_sessions v JOIN staff_users u ON u.id = v.user_id "
            "WHERE v.jurisdiction_id = ? AND v.session_hash = ?",
            (s.jurisdiction_id, session_hash),
        ).fetchone()
        if row is None:
            return None
        created, seen, expires = (_instant(v) for v in row[:3])
        assert created is not None  # NOT NULL columns
        assert seen is not None
        assert expires is not None
        return StaffSessionRecord(_user(row[3:]), created, seen, expires)

    def touch_session(self, session_hash: str, at: datetime) -> None:
        """Record a session's last use (its idle expiry counts from there)."""
        s = self.session
        s.run(
            "UPDATE staff_sessions SET last_seen_at = ? "
            "WHERE jurisdiction_id = ? AND session_hash = ?",
            (s.dialect.instant(at), s.jurisdiction_id, session_hash),
        )

    def end_session(self, session_hash: str) -> None:
        """Delete a session (sign-out, or found expired)."""
        s = self.session
        s.run(
            "DELETE FROM staff_sessions WHERE jurisdiction_id = ? AND session_hash = ?",
            (s.jurisdiction_id, session_hash),
        )
