"""A status change writes its incident's row once: the status, ``updated_at`` and the
dashboard's moments of migration 0019 in one UPDATE, with the moments the history gives
(``refresh_timings``), backdated changes included. On both backends, counted by a trigger
of the database itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from voirie.city import City
from voirie.model import Report
from voirie.services.auth import Principal, Role
from voirie.services.pipeline import Pipeline
from voirie.services.workflow import change_status
from voirie.store import Store

DISPATCHER = Principal("Dominique (dispatch)", Role.DISPATCHER)
T0 = datetime(2024, 5, 2, 9, 30, tzinfo=UTC)

_COUNTER = {
    "sqlite": [
        "CREATE TABLE incident_updates (id INTEGER)",
        "CREATE TRIGGER incident_updated AFTER UPDATE ON incidents "
        "BEGIN INSERT INTO incident_updates VALUES (NEW.id); END",
    ],
    "postgis": [
        "CREATE TABLE incident_updates (id bigint)",
        "CREATE FUNCTION incident_updated() RETURNS trigger LANGUAGE plpgsql AS "
        "'BEGIN INSERT INTO incident_updates VALUES (NEW.id); RETURN NEW; END'",
        "CREATE TRIGGER incident_updated AFTER UPDATE ON incidents FOR EACH ROW "
        "EXECUTE FUNCTION incident_updated()",
    ],
}


def _count_updates(store: Store) -> None:
    """From now on, every row update of ``incidents`` adds a row to ``incident_updates``."""
    with store.transaction("paris.fr") as uow:
        for statement in _COUNTER[store.backend]:
            uow.session.run(statement)


def _updates(store: Store) -> int:
    ((n,),) = store.rows("SELECT count(*) FROM incident_updates", ())
    return int(n)


def _moments(store: Store, incident_id: int) -> list[datetime | None]:
    """The incident's acknowledged_at and resolved_at, aware."""
    ((ack, res),) = store.rows(
        f"SELECT acknowledged_at, resolved_at FROM incidents WHERE id = {int(incident_id)}", ()
    )
    return [None if v is None else pd.Timestamp(str(v)).to_pydatetime() for v in (ack, res)]


def test_a_status_change_updates_its_incident_once_with_the_historys_moments(
    paris: City, store: Store
) -> None:
    pipeline = Pipeline(paris, store)
    incident = pipeline.intake.submit(
        Report(
            external_id="s1",
            source="test",
            service_code="graffitis-tags-a-914fea",
            lon=2.35,
            lat=48.85,
            requested_at=T0,
        )
    ).incident_id
    _count_updates(store)
    steps = [
        ("acknowledged", T0 + timedelta(hours=5), (5, None)),
        ("in_progress", T0 + timedelta(hours=6), (5, None)),
        # Backdated (``at`` given): the earliest change is the acknowledgement.
        ("resolved", T0 + timedelta(hours=2), (2, 2)),
        ("closed", T0 + timedelta(hours=9), (2, 2)),
    ]
    for n, (status, at, (ack, res)) in enumerate(steps, start=1):
        change_status(store, paris, incident, DISPATCHER, status, at=at)
        assert _updates(store) == n
        expected = [T0 + timedelta(hours=ack), None if res is None else T0 + timedelta(hours=res)]
        assert _moments(store, incident) == expected
    incidents = store.lookup("incidents", "paris.fr", "id", [incident])
    assert incidents["status"].tolist() == ["closed"]
    assert incidents["updated_at"].tolist() == [T0 + timedelta(hours=9)]
    # The history agrees: recomputing the moments from the events changes nothing.
    kept = _moments(store, incident)
    with store.transaction("paris.fr") as uow:
        uow.incidents.refresh_timings([incident])
    assert _moments(store, incident) == kept
