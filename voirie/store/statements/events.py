"""Events: the append-only history, one row per thing that happened, written in the
transaction of the change it records (routing, status change, merge, "me too"...)."""

from __future__ import annotations

from datetime import UTC, datetime

from voirie.model import EventKind
from voirie.store.base import Tables


class SqlEvents:
    """``Events`` over the unit of work's tables, in its jurisdiction."""

    def __init__(self, tables: Tables, jurisdiction_id: str) -> None:
        self.tables = tables
        self.jurisdiction_id = jurisdiction_id

    def append(
        self,
        entity: str,
        entity_id: int,
        kind: EventKind,
        actor: str,
        reason: str,
        at: datetime | None = None,
    ) -> int:
        """Append one event at ``at`` (now when None); return its id."""
        (event_id,) = self.tables.reserve_ids("events", 1)
        row = {
            "id": int(event_id),
            "jurisdiction_id": self.jurisdiction_id,
            "entity": entity,
            "entity_id": int(entity_id),
            "kind": kind.value,
            "actor": actor,
            "reason": reason,
            "at": at or datetime.now(UTC),
        }
        self.tables.insert_rows("events", [row])
        return int(event_id)
