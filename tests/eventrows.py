"""Rows of the ``events`` table for the store tests that need rows of some table and
whose content does not matter beyond an id and a reason: one as a dict (``insert_rows``),
many as a DataFrame (a bulk ``insert``), and the reasons read back in id order."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from voirie.store import Store

JURISDICTION = "paris.fr"
AT = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def event(event_id: int, reason: str) -> dict[str, object]:
    """One event row (for ``insert_rows``)."""
    return {
        "id": event_id,
        "jurisdiction_id": JURISDICTION,
        "entity": "report",
        "entity_id": 1,
        "kind": "received",
        "actor": "voirie",
        "reason": reason,
        "at": AT,
    }


def events(ids: np.ndarray, reason: object = "imported") -> pd.DataFrame:
    """Event rows for ``ids`` (a bulk insert: sent behind when there are enough)."""
    return pd.DataFrame(
        {
            "id": ids,
            "jurisdiction_id": JURISDICTION,
            "entity": "report",
            "entity_id": ids,
            "kind": "received",
            "actor": "system",
            "reason": reason,
            "at": AT,
        }
    )


def reasons(store: Store, ids: list[int]) -> list[str]:
    """The reasons of the stored events of ``ids``, in id order."""
    marks = ", ".join(str(int(i)) for i in ids)
    rows = store.rows(f"SELECT reason FROM events WHERE id IN ({marks}) ORDER BY id", ())
    return [str(reason) for (reason,) in rows]
