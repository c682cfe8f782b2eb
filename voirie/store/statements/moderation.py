"""Moderation of reports' public content: the public columns of ``reports`` rewritten,
what the citizen sent kept apart in ``report_moderation`` (staff only)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from voirie.store.base import ModerationRecord
from voirie.store.statements.session import Session

MEDIA_NAME = "substr(media_url, length(rtrim(media_url, replace(media_url, '/', ''))) + 1)"
"""The name a report's ``media_url`` ends with (after its last '/'), in portable SQL: the
expression migration 0022 indexes, written the same way for the index to be used."""


class SqlModeration:
    """``Moderation`` over a session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, report_id: int) -> ModerationRecord | None:
        """What the citizen sent and what is hidden of a moderated report, or None."""
        s = self.session
        row = s.run(
            "SELECT report_id, original_description, original_media_url, description_state, "
            "hidden_photos FROM report_moderation WHERE jurisdiction_id = ? AND report_id = ?",
            (s.jurisdiction_id, int(report_id)),
        ).fetchone()
        if row is None:
            return None
        report_id, description, media_url, state, hidden = row
        return ModerationRecord(
            int(report_id),
            None if description is None else str(description),
            None if media_url is None else str(media_url),
            str(state),
            tuple(str(hidden).split()),
        )

    def public(self, report_id: int) -> tuple[str | None, str | None] | None:
        """The report's public description and media_url, or None; moderators of one
        report are serialized until the transaction ends."""
        s = self.session
        s.lock([f"{s.jurisdiction_id}/moderation/{int(report_id)}"])
        row = s.run(
            "SELECT description, media_url FROM reports WHERE jurisdiction_id = ? AND id = ?",
            (s.jurisdiction_id, int(report_id)),
        ).fetchone()
        if row is None:
            return None
        description, media_url = row
        return (
            None if description is None else str(description),
            None if media_url is None else str(media_url),
        )

    def save(
        self,
        record: ModerationRecord,
        description: str | None,
        media_url: str | None,
        at: datetime,
    ) -> None:
        """Publish the moderated version of a report (``description``, ``media_url``) and
        keep ``record`` (the original and what is hidden) for staff."""
        s = self.session
        key = (s.jurisdiction_id, int(record.report_id))
        s.run(
            "UPDATE reports SET description = ?, media_url = ? WHERE jurisdiction_id = ? "
            "AND id = ?",
            (description, media_url, *key),
        )
        values = (
            record.original_description,
            record.original_media_url,
            record.description_state,
            " ".join(record.hidden_photos),
            s.dialect.instant(at),
        )
        s.run(
            "INSERT INTO report_moderation (original_description, original_media_url, "
            "description_state, hidden_photos, moderated_at, jurisdiction_id, report_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (jurisdiction_id, report_id) DO UPDATE "
            "SET description_state = excluded.description_state, "
            "hidden_photos = excluded.hidden_photos, moderated_at = excluded.moderated_at",
            (*values, *key),
        )
        photos = s.run(
            "SELECT token_hash, photos FROM report_tracking WHERE jurisdiction_id = ? "
            "AND report_id = ?",
            key,
        ).fetchall()
        for token_hash, names in photos:
            shown = [n for n in str(names).split() if n not in record.hidden_photos]
            s.run(
                "UPDATE report_tracking SET photos = ? WHERE jurisdiction_id = ? "
                "AND token_hash = ?",
                (" ".join(shown), s.jurisdiction_id, token_hash),
            )
        if record.hidden_photos:
            s.run(
                "DELETE FROM report_photos WHERE jurisdiction_id = ? AND report_id = ? "
                f"AND {s.dialect.in_array('name', 'text')}",
                (*key, s.dialect.array(list(record.hidden_photos))),
            )

    def photos(self, report_id: int) -> tuple[str, ...]:
        """Names of the photos a report was sent with (its tracking links keep them)."""
        s = self.session
        rows = s.run(
            "SELECT photos FROM report_tracking WHERE jurisdiction_id = ? AND report_id = ?",
            (s.jurisdiction_id, int(report_id)),
        ).fetchall()
        return tuple(dict.fromkeys(n for (names,) in rows for n in str(names).split()))

    def shown_elsewhere(self, report_id: int, names: Sequence[str]) -> tuple[str, ...]:
        """Which of these photos another report still shows the public (as its
        ``media_url`` or on its tracking page). A photo is stored once per content (its
        name is its hash), so reports sent with the same picture share one file: hiding
        it on one report must leave the file public while another still shows it. One
        statement, through two indexes (migration 0022): media URLs by the name they end
        with, and ``report_photos``."""
        if not names:
            return ()
        s, d = self.session, self.session.dialect
        found = s.run(
            f"SELECT {MEDIA_NAME} FROM reports WHERE jurisdiction_id = ? "
            f"AND media_url IS NOT NULL AND {d.in_array(MEDIA_NAME, 'text')} AND id <> ? "
            "UNION SELECT name FROM report_photos WHERE jurisdiction_id = ? "
            f"AND {d.in_array('name', 'text')} AND report_id <> ?",
            (
                s.jurisdiction_id,
                d.array(list(names)),
                int(report_id),
                s.jurisdiction_id,
                d.array(list(names)),
                int(report_id),
            ),
        ).fetchall()
        shown = {str(name) for (name,) in found}
        return tuple(name for name in names if name in shown)
