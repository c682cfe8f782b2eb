"""Retention and erasure of citizens' personal data (issue 17 item 5), on both backends.

Two reports of one problem give their contacts, a citizen says "me too" with an email and
another follows; the incident is then closed. ``voirie privacy purge`` erases all of it
once ``privacy.retention_days`` have passed since the closing, not before, and leaves an
open incident's reporter alone; ``voirie privacy erase EMAIL`` erases one address
everywhere, whatever its case. Both keep the reports and the counts, and record events
that say why, never whom. The worker runs the purge by itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from clirunner import run_voirie

from voirie.city import City, Privacy
from voirie.errors import InvalidInput
from voirie.model import Contact, Report, Status
from voirie.notify.worker import start_in_thread
from voirie.services import citizens, privacy, workflow
from voirie.services.auth import Principal, Role
from voirie.services.pipeline import Pipeline
from voirie.settings import OutboxSettings
from voirie.store.base import Store
from voirie.store.statements.unit import SqlUnitOfWork

LAMP = "Lampadaire en mauvais état"
LON, LAT = 2.35183, 48.85658  # Place de l'Hôtel de Ville
ELSEWHERE = 2.37990, 48.86610  # Rue Oberkampf
RETENTION_DAYS = 30
ADMIN = Principal("test", Role.ADMIN, frozenset())
REPORTERS = ("Camille@Example.org", "dominique@example.org")
SUPPORTER, FOLLOWER, OTHER = "sam@example.org", "lou@example.org", "alex@example.org"
PHONE = "+33 6 12 34 56 78"


@dataclass
class World:
    pipeline: Pipeline
    city: City
    closed: int  # the closed incident
    closed_reports: list[int]
    open_report: int  # the report of an incident still open
    closed_at: datetime


def _report(pipeline: Pipeline, email: str, lon: float, lat: float, n: int) -> Report:
    return Report(
        external_id=f"privacy-{n}",
        source="test",
        service_code=pipeline.city.services_by_name[LAMP.casefold()].code,
        lon=lon,
        lat=lat,
        requested_at=datetime.now(UTC) - timedelta(hours=2),
        description="Lampadaire éteint",
        contact=Contact(name=f"Personne {n}", email=email, phone=PHONE, device_id=f"device-{n}"),
    )


@pytest.fixture
def world(store: Store, paris: City, paris_gis: object) -> World:
    city = City(
        paris.folder,
        paris.config.model_copy(update={"privacy": Privacy(retention_days=RETENTION_DAYS)}),
    )
    pipeline = Pipeline(city, store, paris_gis)  # type: ignore[arg-type]
    first, second = (
        pipeline.intake.submit(_report(pipeline, email, LON, LAT, n))
        for n, email in enumerate(REPORTERS)
    )
    assert first.incident_id == second.incident_id
    other = pipeline.intake.submit(_report(pipeline, OTHER, *ELSEWHERE, 9))
    assert other.incident_id != first.incident_id
    citizens.support(pipeline, first.incident_id, SUPPORTER)
    citizens.follow(pipeline, first.incident_id, FOLLOWER)
    citizens.follow(pipeline, other.incident_id, SUPPORTER)  # an open incident: kept by purge
    closed_at = datetime.now(UTC)
    workflow.change_status(store, city, first.incident_id, ADMIN, Status.RESOLVED, at=closed_at)
    return World(
        pipeline,
        city,
        first.incident_id,
        [first.report_id, second.report_id],
        other.report_id,
        closed_at,
    )


def _contacts(world: World, report_ids: list[int]) -> list[tuple[object, ...]]:
    rows = world.pipeline.store.lookup(
        "report_contacts", world.city.jurisdiction_id, "report_id", report_ids
    )
    values = rows[["name", "email", "phone", "device_id"]].itertuples(index=False, name=None)
    return [tuple(None if pd.isna(v) else v for v in row) for row in values]


def _sql(world: World, text: str, *params: object) -> list[tuple[object, ...]]:
    """A read of tables no public interface shows (the supporters' emails, consent)."""
    with world.pipeline.store.transaction(world.city.jurisdiction_id) as uow:
        assert isinstance(uow, SqlUnitOfWork)
        return list(uow.session.run(text, (world.city.jurisdiction_id, *params)).fetchall())


def _subscribers(world: World, incident_id: int) -> list[str]:
    with world.pipeline.store.transaction(world.city.jurisdiction_id) as uow:
        return uow.citizens.subscribers(incident_id)


def _erased_events(world: World) -> list[tuple[str, int, str]]:
    events = world.pipeline.store.lookup(
        "events", world.city.jurisdiction_id, "kind", ["contact_erased"]
    )
    return sorted(
        (str(e.entity), int(e.entity_id), str(e.reason)) for e in events.itertuples(index=False)
    )


def _supporter_emails(world: World, incident_id: int) -> list[object]:
    rows = _sql(
        world,
        "SELECT email FROM incident_supporters WHERE jurisdiction_id = ? AND incident_id = ?",
        incident_id,
    )
    return [row[0] for row in rows]


def _supporters(world: World) -> int:
    rows = _sql(
        world, "SELECT supporters FROM incidents WHERE jurisdiction_id = ? AND id = ?", world.closed
    )
    return int(rows[0][0])  # type: ignore[call-overload]


def test_purge_waits_for_the_retention_then_erases_the_closed_incidents_people(
    world: World,
) -> None:
    before = _contacts(world, world.closed_reports)
    assert [c[1] for c in before] == list(REPORTERS)
    assert _subscribers(world, world.closed) == sorted([*REPORTERS, FOLLOWER, SUPPORTER])

    too_soon = world.closed_at + timedelta(days=RETENTION_DAYS - 1)
    assert privacy.purge(world.pipeline.store, world.city, too_soon).reports == []
    assert _contacts(world, world.closed_reports) == before

    later = world.closed_at + timedelta(days=RETENTION_DAYS, minutes=1)
    erased = privacy.purge(world.pipeline.store, world.city, later)
    assert erased.reports == sorted(world.closed_reports)
    assert erased.incidents == [world.closed]
    assert _contacts(world, world.closed_reports) == [(None, None, None, None)] * 2
    assert _subscribers(world, world.closed) == []
    assert _supporter_emails(world, world.closed) == [None]
    assert _supporters(world) == 1  # the "me too" still counts
    # The open incident's reporter and follower are kept.
    assert _contacts(world, [world.open_report])[0][1] == OTHER
    events = _erased_events(world)
    assert [(e[0], e[1]) for e in events] == sorted(
        [("incident", world.closed)] + [("report", r) for r in world.closed_reports]
    )
    for _, _, reason in events:
        assert "30 days" in reason
        assert "@" not in reason
        assert "Personne" not in reason
    # Nothing is left to erase: a second purge finds nothing.
    again = privacy.purge(world.pipeline.store, world.city, later)
    assert (again.reports, again.incidents) == ([], [])


def test_erase_removes_one_address_everywhere_whatever_its_case(world: World) -> None:
    erased = privacy.erase(world.pipeline.store, world.city, "  camille@EXAMPLE.org ")
    assert erased.reports == [world.closed_reports[0]]
    contacts = _contacts(world, world.closed_reports)
    assert contacts[0] == (None, None, None, None)
    assert contacts[1][1] == REPORTERS[1]  # another reporter's contact stays

    to_supporter = "SELECT status FROM outbox WHERE jurisdiction_id = ? AND target = ?"
    assert _sql(world, to_supporter, SUPPORTER)  # asked to confirm the address
    erased = privacy.erase(world.pipeline.store, world.city, SUPPORTER)
    assert erased.reports == []
    assert sorted(erased.incidents) == sorted({world.closed, _incident_of(world)})
    assert erased.consents >= 1  # the confirmation asked of the address
    assert _supporter_emails(world, world.closed) == [None]
    assert SUPPORTER not in _subscribers(world, world.closed)
    assert _sql(
        world,
        "SELECT count(*) FROM email_consents WHERE jurisdiction_id = ? AND email = ?",
        SUPPORTER,
    ) == [(0,)]
    assert _sql(world, to_supporter, SUPPORTER) == []  # every email to it lost its target
    assert erased.messages >= 1
    assert FOLLOWER in _subscribers(world, world.closed)
    for _, _, reason in _erased_events(world):
        assert reason == privacy.ERASE_REASON


def _incident_of(world: World) -> int:
    links = world.pipeline.store.lookup(
        "incident_reports", world.city.jurisdiction_id, "report_id", [world.open_report]
    )
    return int(links["incident_id"].iloc[0])


@pytest.mark.parametrize("email", ["", "nobody", "a b@example.org"])
def test_erase_refuses_what_is_not_an_email(world: World, email: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        privacy.erase(world.pipeline.store, world.city, email)
    assert refused.value.field == "email"


def test_the_worker_purges_by_itself(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker reads the clock itself: the closing is moved back past the retention.
    past = world.closed_at - timedelta(days=RETENTION_DAYS + 1)
    with world.pipeline.store.transaction(world.city.jurisdiction_id) as uow:
        uow.incidents.update(world.closed, {"updated_at": past})
    thread, stop = start_in_thread(
        world.pipeline.store, world.city, OutboxSettings(worker_interval_s=0.2)
    )
    try:
        deadline = time.monotonic() + 30
        while _contacts(world, world.closed_reports)[0][1] is not None:
            assert time.monotonic() < deadline, "the worker did not purge"
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert _contacts(world, world.closed_reports) == [(None, None, None, None)] * 2
    assert _contacts(world, [world.open_report])[0][1] == OTHER


def test_the_commands(tmp_path: Path) -> None:
    """``voirie privacy`` on the shipped Paris (no retention set): erase works, purge
    says which key to set."""
    erased = run_voirie(tmp_path, "privacy", "erase", "nobody@example.org")
    assert erased.returncode == 0, erased.stderr
    assert "erased: 0 reports' contacts" in erased.stderr
    purged = run_voirie(tmp_path, "privacy", "purge")
    assert purged.returncode == 2
    assert "privacy.retention_days" in purged.stderr
    refused = run_voirie(tmp_path, "privacy", "erase", "nobody")
    assert refused.returncode == 2
    assert "email" in refused.stderr
