"""Private tracking links of reports: the hash of each link's token, the report it opens
and the report's photos."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from voirie.store.base import TrackedReport
from voirie.store.statements.session import Session


class SqlTracking:
    """``Tracking`` over a session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, token_hash: str, report_id: int, photos: Sequence[str], at: datetime) -> None:
        """Keep a new link's token hash for a report, with the report's photo names."""
        s = self.session
        s.run(
            "INSERT INTO report_tracking (jurisdiction_id, token_hash, report_id, photos, "
            "created_at) VALUES (?, ?, ?, ?, ?)",
            (
                s.jurisdiction_id,
                token_hash,
                int(report_id),
                " ".join(photos),
                s.dialect.instant(at),
            ),
        )
        if photos:  # which reports show a photo (migration 0022, moderation)
            s.run(
                "INSERT INTO report_photos (jurisdiction_id, name, report_id) "
                f"SELECT ?, u.name, ? FROM {s.dialect.rows([('name', 'text')])} "
                # WHERE true: without it sqlite parses ON CONFLICT as a join's ON.
                "WHERE true ON CONFLICT DO NOTHING",
                (s.jurisdiction_id, int(report_id), *s.dialect.rows_params([list(photos)])),
            )

    def find(self, token_hash: str) -> TrackedReport | None:
        """The report a token hash opens, or None."""
        s = self.session
        row = s.run(
            "SELECT report_id, photos FROM report_tracking "
            "WHERE jurisdiction_id = ? AND token_hash = ?",
            (s.jurisdiction_id, token_hash),
        ).fetchone()
        if row is None:
            return None
        report_id, photos = row
        return TrackedReport(int(report_id), tuple(str(photos).split()))
