"""API tokens read inside a unit of work: the token that authorizes a write is checked in
the write's own transaction (sent with its first reads, no round trip of its own), so a
token revoked before that transaction's read is refused, as by ``Store.find_token``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from voirie.store.base import Later, TokenRecord
from voirie.store.statements.session import Session, missing
from voirie.values import aware_utc

_COLUMNS = "id, name, role, teams, created_at, expires_at, last_used_at, revoked_at"


def _moment(value: object) -> datetime | None:
    """A stored instant (psycopg's datetime or GeoPackage text) as an aware UTC datetime."""
    if missing(value):
        return None
    if isinstance(value, datetime):
        return aware_utc(value).astimezone(UTC)
    return aware_utc(datetime.fromisoformat(str(value))).astimezone(UTC)


class SqlTokens:
    """``Tokens`` over a session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def find_later(self, token_hash: str) -> Later[TokenRecord | None]:
        """The token stored under this hash in the session's jurisdiction (also when
        revoked or expired: the caller says which), sent now, read when called."""
        s = self.session
        cursor = s.run(
            f"SELECT {_COLUMNS} FROM api_tokens WHERE jurisdiction_id = ? AND token_hash = ?",
            (s.jurisdiction_id, token_hash),
        )

        def read() -> TokenRecord | None:
            row = cursor.fetchone()
            if row is None:
                return None
            token_id, name, role, teams, created, expires, used, revoked = row
            return TokenRecord(
                str(name),
                str(role),
                s.dialect.from_array(teams),
                expires_at=_moment(expires),
                id=int(cast(int, token_id)),
                created_at=_moment(created),
                last_used_at=_moment(used),
                revoked_at=_moment(revoked),
            )

        return read
