"""``Store.events_between``: the history of one kind in a time window, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from voirie.model import EventKind
from voirie.store import Store

JURISDICTION = "paris.fr"
T0 = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)


def test_events_of_one_kind_in_a_window_oldest_first(store: Store) -> None:
    with store.transaction(JURISDICTION) as uow:
        for hours, kind in [
            (3, EventKind.STATUS_CHANGED),
            (0, EventKind.STATUS_CHANGED),
            (1, EventKind.COMMENTED),
            (2, EventKind.STATUS_CHANGED),
            (5, EventKind.STATUS_CHANGED),
        ]:
            uow.events.append(
                "incident",
                hours,
                kind,
                "agent",
                f"at +{hours} h",
                at=T0 + timedelta(hours=hours),
            )
    with store.transaction("elsewhere.example") as uow:
        uow.events.append(
            "incident",
            9,
            EventKind.STATUS_CHANGED,
            "agent",
            "another city",
            at=T0 + timedelta(hours=1),
        )
    found = store.events_between(
        JURISDICTION, EventKind.STATUS_CHANGED.value, T0, T0 + timedelta(hours=3)
    )
    # Both ends included; other kinds, later events and other cities left out.
    assert found["reason"].tolist() == ["at +0 h", "at +2 h", "at +3 h"]
    assert found["at"].tolist() == [T0 + timedelta(hours=h) for h in (0, 2, 3)]
