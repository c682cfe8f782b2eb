"""Consent of citizens' email addresses: their state (pending, confirmed, stopped), the
hashes of confirmation tokens, and the outbox messages held until an address is confirmed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd

from voirie.store.base import ConsentRecord
from voirie.store.statements.session import Session

HELD, CANCELLED, PENDING = "held", "cancelled", "pending"
"""Outbox statuses: waiting for the address's confirmation; never to be sent (the address
stopped everything); due (``voirie.notify.outbox.PENDING``)."""
_COLUMNS = "email, state, language, link_token, asked_at"


def _record(row: Sequence[object]) -> ConsentRecord:
    email, state, language, link_token, asked_at = row
    stamp = pd.Timestamp(asked_at)  # type: ignore[arg-type]  # text on sqlite
    moment: datetime = (stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp).to_pydatetime()
    return ConsentRecord(str(email), str(state), str(language), str(link_token), moment)


class SqlConsents:
    """``Consents`` over a session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, email: str) -> ConsentRecord | None:
        """The consent of one address, or None when it was never given."""
        s = self.session
        row = s.run(
            f"SELECT {_COLUMNS} FROM email_consents WHERE jurisdiction_id = ? AND email = ?",
            (s.jurisdiction_id, email),
        ).fetchone()
        return None if row is None else _record(row)

    def by_link(self, link_token: str) -> ConsentRecord | None:
        """The consent whose links carry ``link_token``, or None."""
        s = self.session
        row = s.run(
            f"SELECT {_COLUMNS} FROM email_consents WHERE jurisdiction_id = ? AND link_token = ?",
            (s.jurisdiction_id, link_token),
        ).fetchone()
        return None if row is None else _record(row)

    def many(self, emails: Sequence[str]) -> dict[str, ConsentRecord]:
        """The consents of these addresses that exist, by address."""
        s, d = self.session, self.session.dialect
        if not emails:
            return {}
        rows = s.run(
            f"SELECT {_COLUMNS} FROM email_consents WHERE jurisdiction_id = ? "
            f"AND {d.in_array('email', 'text')}",
            (s.jurisdiction_id, d.array(list(emails))),
        ).fetchall()
        return {str(row[0]): _record(row) for row in rows}

    def add(self, record: ConsentRecord) -> ConsentRecord:
        """Keep a new address's consent unless it exists; the stored one either way."""
        s = self.session
        s.run(
            "INSERT INTO email_consents (jurisdiction_id, email, state, language, link_token, "
            "asked_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                s.jurisdiction_id,
                record.email,
                record.state,
                record.language,
                record.link_token,
                s.dialect.instant(record.asked_at),
            ),
        )
        stored = self.get(record.email)
        assert stored is not None  # inserted above, or there already
        return stored

    def asked(self, email: str, token_hash: str, at: datetime) -> None:
        """Record a confirmation email queued for ``email`` at ``at`` with its token's hash."""
        s = self.session
        s.run(
            "UPDATE email_consents SET asked_at = ? WHERE jurisdiction_id = ? AND email = ?",
            (s.dialect.instant(at), s.jurisdiction_id, email),
        )
        s.run(
            "INSERT INTO email_confirmations (jurisdiction_id, token_hash, email, created_at) "
            "VALUES (?, ?, ?, ?)",
            (s.jurisdiction_id, token_hash, email, s.dialect.instant(at)),
        )

    def confirmation(self, token_hash: str) -> str | None:
        """The address a confirmation token's hash was sent to, or None."""
        s = self.session
        row = s.run(
            "SELECT email FROM email_confirmations WHERE jurisdiction_id = ? AND token_hash = ?",
            (s.jurisdiction_id, token_hash),
        ).fetchone()
        return None if row is None else str(row[0])

    def confirm(self, email: str, at: datetime) -> int:
        """Mark an address confirmed, forget its confirmation tokens and release its held
        messages (due now); return how many were released."""
        s = self.session
        key = (s.jurisdiction_id, email)
        s.run(
            "UPDATE email_consents SET state = 'confirmed', confirmed_at = ?, stopped_at = NULL "
            "WHERE jurisdiction_id = ? AND email = ?",
            (s.dialect.instant(at), *key),
        )
        s.run("DELETE FROM email_confirmations WHERE jurisdiction_id = ? AND email = ?", key)
        cursor = s.run(
            f"UPDATE outbox SET status = '{PENDING}', next_attempt_at = ? "
            f"WHERE jurisdiction_id = ? AND target = ? AND status = '{HELD}'",
            (s.dialect.instant(at), *key),
        )
        return int(cursor.rowcount)

    def stop(self, email: str, at: datetime) -> int:
        """Stop every email to an address: its follows end, its held and due messages are
        cancelled; return how many messages were cancelled."""
        s = self.session
        key = (s.jurisdiction_id, email)
        s.run(
            "UPDATE email_consents SET state = 'stopped', stopped_at = ? "
            "WHERE jurisdiction_id = ? AND email = ?",
            (s.dialect.instant(at), *key),
        )
        s.run("DELETE FROM incident_followers WHERE jurisdiction_id = ? AND email = ?", key)
        s.run("DELETE FROM email_confirmations WHERE jurisdiction_id = ? AND email = ?", key)
        cursor = s.run(
            f"UPDATE outbox SET status = '{CANCELLED}' WHERE jurisdiction_id = ? AND target = ? "
            f"AND channel = 'email' AND status IN ('{HELD}', '{PENDING}')",
            key,
        )
        return int(cursor.rowcount)

    def follows(self, email: str, incident_id: int) -> bool:
        """Whether ``email`` is told about an incident (a follower or one of its reporters)."""
        s = self.session
        key = (s.jurisdiction_id, int(incident_id))
        row = s.run(
            "SELECT 1 FROM incident_followers WHERE jurisdiction_id = ? AND incident_id = ? "
            "AND email = ? UNION SELECT 1 FROM report_contacts c JOIN incident_reports l "
            "ON l.report_id = c.report_id AND l.jurisdiction_id = c.jurisdiction_id "
            "WHERE l.jurisdiction_id = ? AND l.incident_id = ? AND lower(c.email) = ?",
            (*key, email, *key, email),
        ).fetchone()
        return row is not None

    def opt_out(self, email: str, incident_id: int, at: datetime) -> bool:
        """Stop telling ``email`` about one incident (it no longer follows it either);
        False when it had already opted out."""
        s = self.session
        key = (s.jurisdiction_id, email, int(incident_id))
        s.run(
            "DELETE FROM incident_followers WHERE jurisdiction_id = ? AND email = ? "
            "AND incident_id = ?",
            key,
        )
        cursor = s.run(
            "INSERT INTO email_optouts (jurisdiction_id, email, incident_id, opted_out_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (*key, s.dialect.instant(at)),
        )
        return bool(cursor.rowcount == 1)

    def opted_in_again(self, email: str, incident_id: int) -> None:
        """Forget an opt-out when the address follows the incident again."""
        s = self.session
        s.run(
            "DELETE FROM email_optouts WHERE jurisdiction_id = ? AND email = ? AND incident_id = ?",
            (s.jurisdiction_id, email, int(incident_id)),
        )

    def opted_out(self, incident_id: int) -> set[str]:
        """Addresses that asked to hear no more of an incident."""
        s = self.session
        rows = s.run(
            "SELECT email FROM email_optouts WHERE jurisdiction_id = ? AND incident_id = ?",
            (s.jurisdiction_id, int(incident_id)),
        ).fetchall()
        return {str(email) for (email,) in rows}
