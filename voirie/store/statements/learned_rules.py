"""Routing rules learned from dispatchers' reassignments: every version, with its review."""

from __future__ import annotations

from datetime import date, datetime

from voirie.store.base import LearnedRuleRecord
from voirie.store.statements.session import Session
from voirie.values import aware_utc

_COLUMNS = (
    "service_code, version, team, corrections, kept, since, status, learned_at, "
    "decided_by, decided_at"
)


def _instant(value: object) -> datetime:
    """A stored instant as an aware UTC datetime (sqlite gives ISO text)."""
    return aware_utc(value if isinstance(value, datetime) else datetime.fromisoformat(str(value)))


def _record(row: tuple[object, ...]) -> LearnedRuleRecord:
    service, version, team, corrections, kept, since, status, learned, by, decided = row
    return LearnedRuleRecord(
        service_code=str(service),
        version=int(str(version)),
        team=str(team),
        corrections=int(str(corrections)),
        kept=int(str(kept)),
        since=since if isinstance(since, date) else date.fromisoformat(str(since)),
        status=str(status),
        learned_at=_instant(learned),
        decided_by=None if by is None else str(by),
        decided_at=None if decided is None else _instant(decided),
    )


class SqlLearnedRules:
    """``LearnedRules`` over a session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def versions(self) -> list[LearnedRuleRecord]:
        """Every version of every learned rule, by sub-category then version (a handful
        per sub-category at most: the review log)."""
        s = self.session
        rows = s.run(
            f"SELECT {_COLUMNS} FROM learned_rules WHERE jurisdiction_id = ? "
            "ORDER BY service_code, version",
            (s.jurisdiction_id,),
        ).fetchall()
        return [_record(tuple(row)) for row in rows]

    def add(self, rule: LearnedRuleRecord) -> None:
        """Keep a new version."""
        s = self.session
        s.run(
            f"INSERT INTO learned_rules (jurisdiction_id, {_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                s.jurisdiction_id,
                rule.service_code,
                rule.version,
                rule.team,
                rule.corrections,
                rule.kept,
                rule.since.isoformat(),
                rule.status,
                s.dialect.instant(rule.learned_at),
                rule.decided_by,
                None if rule.decided_at is None else s.dialect.instant(rule.decided_at),
            ),
        )

    def decide(
        self, service_code: str, version: int, status: str, actor: str, at: datetime
    ) -> bool:
        """Set a version's status with who and when; False when it does not exist."""
        s = self.session
        cursor = s.run(
            "UPDATE learned_rules SET status = ?, decided_by = ?, decided_at = ? "
            "WHERE jurisdiction_id = ? AND service_code = ? AND version = ?",
            (status, actor, s.dialect.instant(at), s.jurisdiction_id, service_code, version),
        )
        return bool(cursor.rowcount)
