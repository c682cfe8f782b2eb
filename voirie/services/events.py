"""The history: appending events (what happened to a report or an incident, who, why).

Events are append-only; every domain operation (routing, status change, merge...) records
one or more through its unit of work, in the same transaction as the change itself.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from voirie.model import EventKind
from voirie.store.base import UnitOfWork

SYSTEM_ACTOR = "voirie"
"""The actor of what voirie itself does (attaching, routing), as opposed to a person."""


def record(
    uow: UnitOfWork,
    jurisdiction_id: str,
    entity: str,
    entity_id: int,
    kind: EventKind,
    actor: str,
    reason: str,
    at: datetime | None = None,
) -> int:
    """Append one event (``entity`` is ``"report"`` or ``"incident"``); return its id."""
    (event_id,) = uow.reserve_ids("events", 1)
    uow.insert(
        "events",
        pd.DataFrame(
            {
                "id": [int(event_id)],
                "jurisdiction_id": jurisdiction_id,
                "entity": entity,
                "entity_id": int(entity_id),
                "kind": kind.value,
                "actor": actor,
                "reason": reason,
                "at": pd.Timestamp(at or datetime.now(UTC)),
            }
        ),
    )
    return int(event_id)
