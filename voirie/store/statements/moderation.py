"""Moderation of reports' public content: the public columns of ``reports`` rewritten,
what the citizen sent kept apart in ``report_moderation`` (staff only)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from voirie.store.base import ModerationRecord
from voirie.store.statements.session import Session


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
        it on one report must leave the file public while another still shows it."""
        s = self.session
        shown = []
        for name in names:
            row = s.run(
                "SELECT 1 FROM reports WHERE jurisdiction_id = ? AND id <> ? "
                "AND media_url LIKE ? UNION ALL "
                "SELECT 1 FROM report_tracking WHERE jurisdiction_id = ? AND report_id <> ? "
                "AND ' ' || photos || ' ' LIKE ?",
                (
                    s.jurisdiction_id,
                    int(report_id),
                    f"%/{name}",
                    s.jurisdiction_id,
                    int(report_id),
                    f"% {name} %",
                ),
            ).fetchone()
            if row is not None:
                shown.append(name)
        return tuple(shown)
