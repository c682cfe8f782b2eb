"""What the delivery wing (``voirie.notify``) stores: the outbox and its leases, the routing
rules' versions, and the escalations due."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd

from voirie.store.schema import COLUMNS
from voirie.store.statements.incidents import OPEN
from voirie.store.statements.session import Session
from voirie.values import aware_utc


class SqlOutbox:
    """``Outbox`` over a session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def claim(self, worker: str, now: datetime, lease_until: datetime, limit: int) -> pd.DataFrame:
        """Lease up to ``limit`` pending rows due by ``now`` to ``worker`` until
        ``lease_until`` (columns of ``outbox``, by id). Rows leased to another worker are
        skipped; so are rows another transaction is claiming (PostgreSQL's ``SKIP
        LOCKED``; sqlite's ``BEGIN IMMEDIATE`` lets one writer claim at a time)."""
        s, d = self.session, self.session.dialect
        names = COLUMNS["outbox"]
        at = d.instant(now)
        frame = s.frame(
            f"SELECT {', '.join(names)} FROM outbox WHERE jurisdiction_id = ? "
            "AND status = 'pending' AND next_attempt_at <= ? "
            "AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY id LIMIT ?"
            + d.skip_locked("outbox"),
            (s.jurisdiction_id, at, at, int(limit)),
            names,
        )
        if len(frame):
            s.run(
                "UPDATE outbox SET claimed_by = ?, claimed_until = ? "
                f"WHERE jurisdiction_id = ? AND {d.in_array('id', 'bigint')}",
                (
                    worker,
                    d.instant(lease_until),
                    s.jurisdiction_id,
                    d.array(s.ints(frame["id"])),
                ),
            )
        frame["claimed_by"] = worker
        frame["claimed_until"] = pd.Timestamp(aware_utc(lease_until)).tz_convert(UTC)
        return frame

    def finish(self, rows: pd.DataFrame) -> None:
        """Record delivery attempts (columns id, status, attempts, next_attempt_at,
        last_error, delivered_at) and release the rows' lease."""
        if not len(rows):
            return
        s, d = self.session, self.session.dialect
        columns = [
            ("id", "bigint"),
            ("status", "text"),
            ("attempts", "integer"),
            ("next_attempt_at", "timestamptz"),
            ("last_error", "text"),
            ("delivered_at", "timestamptz"),
        ]
        values: list[Sequence[object]] = [
            s.ints(rows["id"]),
            [str(v) for v in rows["status"]],
            s.ints(rows["attempts"]),
            s.column("next_attempt_at", rows["next_attempt_at"]),
            s.column("last_error", rows["last_error"]),
            s.column("delivered_at", rows["delivered_at"]),
        ]
        s.run(
            "UPDATE outbox AS o SET status = u.status, attempts = u.attempts, "
            "next_attempt_at = u.next_attempt_at, last_error = u.last_error, "
            "delivered_at = u.delivered_at, claimed_by = NULL, claimed_until = NULL "
            f"FROM {d.rows(columns)} WHERE o.jurisdiction_id = ? AND o.id = u.id",
            (*d.rows_params(values), s.jurisdiction_id),
        )


class SqlRules:
    """``Rules`` over a session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def versions(self, rule_ids: Sequence[str]) -> pd.DataFrame:
        """Stored versions of these routing rules (columns of ``routing_rules``), after
        taking the lock that serializes processes recording rules in this jurisdiction."""
        s, d = self.session, self.session.dialect
        s.lock([f"{s.jurisdiction_id}/routing_rules"])
        names = COLUMNS["routing_rules"]
        return s.frame(
            f"SELECT {', '.join(names)} FROM routing_rules WHERE jurisdiction_id = ? "
            f"AND {d.in_array('rule_id', 'text')} ORDER BY rule_id, version",
            (s.jurisdiction_id, d.array(list(rule_ids))),
            names,
        )


class SqlEscalations:
    """``Escalations`` over a session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def due(self, now: datetime, limit: int) -> pd.DataFrame:
        """Open incidents whose escalation time has passed and that were not escalated
        (columns incident_id, escalate_at, escalate_to), locked until commit; rows another
        transaction holds are skipped."""
        s, d = self.session, self.session.dialect
        return s.frame(
            "SELECT e.incident_id, e.escalate_at, e.escalate_to FROM escalations e "
            "JOIN incidents i ON i.id = e.incident_id AND i.jurisdiction_id = e.jurisdiction_id "
            "WHERE e.jurisdiction_id = ? AND e.escalated_at IS NULL AND e.escalate_at <= ? "
            f"AND {d.in_array('i.status', 'text')} ORDER BY e.incident_id LIMIT ?"
            + d.skip_locked("e"),
            (s.jurisdiction_id, d.instant(now), d.array(OPEN), int(limit)),
            ["incident_id", "escalate_at", "escalate_to"],
        )

    def mark_escalated(self, incident_ids: Sequence[int], at: datetime) -> None:
        """Record that these incidents were escalated at ``at``."""
        s, d = self.session, self.session.dialect
        s.run(
            "UPDATE escalations SET escalated_at = ? "
            f"WHERE jurisdiction_id = ? AND {d.in_array('incident_id', 'bigint')}",
            (d.instant(at), s.jurisdiction_id, d.array([int(i) for i in incident_ids])),
        )
