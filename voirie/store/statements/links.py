"""Links between reports and incidents, and between incidents: the members of incidents,
reports pointed at other incidents, and the pairs staff marked as not duplicates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd

from voirie.store.base import MEMBER_COLUMNS
from voirie.store.statements.incidents import OPEN
from voirie.store.statements.session import Session


class SqlLinks:
    """``Links`` over a session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def members(self, incident_ids: Sequence[int] | None = None) -> pd.DataFrame:
        """Reports linked to these incidents (to every open incident when None), with what
        deduplication reads (columns ``MEMBER_COLUMNS``), in time order then by id."""
        s, d = self.session, self.session.dialect
        if incident_ids is None:
            where, values = d.in_array("i.status", "text"), d.array(OPEN)
        else:
            where = d.in_array("l.incident_id", "bigint")
            values = d.array([int(i) for i in incident_ids])
        return s.frame(
            "SELECT r.id, l.incident_id, r.service_code, r.lon, r.lat, r.address, r.requested_at, "
            "e.segment_id, e.street_name, l.score, l.reason FROM incident_reports l "
            "JOIN incidents i ON i.id = l.incident_id AND i.jurisdiction_id = l.jurisdiction_id "
            "JOIN reports r ON r.id = l.report_id AND r.jurisdiction_id = l.jurisdiction_id "
            "JOIN enrichments e ON e.report_id = r.id AND e.jurisdiction_id = r.jurisdiction_id "
            f"WHERE l.jurisdiction_id = ? AND {where} ORDER BY r.requested_at, r.id",
            (s.jurisdiction_id, values),
            MEMBER_COLUMNS,
        )

    def relink(self, links: pd.DataFrame) -> None:
        """Point reports at other incidents (columns report_id, incident_id, score, reason,
        linked_at), one statement for all of them."""
        if not len(links):
            return
        s, d = self.session, self.session.dialect
        columns = [
            ("report_id", "bigint"),
            ("incident_id", "bigint"),
            ("score", "float8"),
            ("reason", "text"),
            ("linked_at", "timestamptz"),
        ]
        values: list[Sequence[object]] = [
            s.ints(links["report_id"]),
            s.ints(links["incident_id"]),
            [float(v) for v in links["score"]],
            [str(v) for v in links["reason"]],
            s.column("linked_at", links["linked_at"]),
        ]
        s.run(
            "UPDATE incident_reports AS l SET incident_id = u.incident_id, score = u.score, "
            f"reason = u.reason, linked_at = u.linked_at FROM {d.rows(columns)} "
            "WHERE l.jurisdiction_id = ? AND l.report_id = u.report_id",
            (*d.rows_params(values), s.jurisdiction_id),
        )

    def mark_not_duplicates(
        self, incident_a: int, incident_b: int, actor: str, reason: str, at: datetime
    ) -> bool:
        """Remember that two incidents are not duplicates (as the ordered pair); False
        when already remembered."""
        s = self.session
        low, high = sorted((int(incident_a), int(incident_b)))
        cursor = s.run(
            "INSERT INTO not_duplicates (jurisdiction_id, incident_a, incident_b, actor, "
            "reason, marked_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (s.jurisdiction_id, low, high, actor, reason, s.dialect.instant(at)),
        )
        return bool(cursor.rowcount == 1)

    def not_duplicates(self, incident_ids: Sequence[int] | None = None) -> pd.DataFrame:
        """Pairs marked not duplicates (columns incident_a < incident_b) that involve one of
        these incidents (every pair when None), in order."""
        s, d = self.session, self.session.dialect
        where, params = "", list[object]([s.jurisdiction_id])
        if incident_ids is not None:
            ids = d.array([int(i) for i in incident_ids])
            where = (
                f" AND ({d.in_array('incident_a', 'bigint')} "
                f"OR {d.in_array('incident_b', 'bigint')})"
            )
            params += [ids, ids]
        rows = s.run(
            "SELECT incident_a, incident_b FROM not_duplicates WHERE jurisdiction_id = ?"
            f"{where} ORDER BY incident_a, incident_b",
            params,
        ).fetchall()
        return pd.DataFrame(rows, columns=["incident_a", "incident_b"], dtype="int64")
