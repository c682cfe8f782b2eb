"""Due dates on the city's calendar (weekends, French public holidays, working hours,
daylight saving), the overdue state, and escalation on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from old_and_new import GRAFFITI, import_old_and_new

from voirie.city import City, Route, Sla, Team
from voirie.gis.enrich import CityGIS
from voirie.model import Report
from voirie.notify.escalation import escalate
from voirie.routing.sla import add_working_hours, calendar_for, due_dates, overdue
from voirie.services.pipeline import Pipeline
from voirie.store import Store

PARIS_TZ = "Europe/Paris"


def local(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=PARIS_TZ)


# Paris works 08:00-18:00 (10 h a day), Monday to Friday, French public holidays off.
@pytest.mark.parametrize(
    ("reported", "working_hours", "due"),
    [
        # Fri 12 July 10:00 + 2 working days (20 h): Fri 8 h; Sat 13 and Sun 14 (Bastille
        # Day, a holiday on a Sunday) off; Mon 15 10 h; Tue 16 the last 2 h -> 10:00.
        ("2024-07-12 10:00", 20, "2024-07-16 10:00"),
        # Wed 14 August 18:30, after closing; Thu 15 (Assumption) off: counting starts
        # Fri 16 at 08:00, one working day -> Fri 16 18:00.
        ("2024-08-14 18:30", 10, "2024-08-16 18:00"),
        # On a holiday (1 May, Wednesday) at 09:00: starts Thu 2 May 08:00, 4 h -> 12:00.
        ("2024-05-01 09:00", 4, "2024-05-02 12:00"),
        # Before opening: 06:00 counts from 08:00.
        ("2024-03-06 06:00", 3, "2024-03-06 11:00"),
        # Fri 29 March 17:00 + 2 h: 1 h Friday; weekend (clocks go forward on Sunday 31);
        # Mon 1 April is Easter Monday -> Tue 2 April 09:00.
        ("2024-03-29 17:00", 2, "2024-04-02 09:00"),
        # Exactly a full day ends at closing, not at the next opening.
        ("2024-03-06 08:00", 10, "2024-03-06 18:00"),
    ],
)
def test_working_time_across_weekends_and_holidays(
    paris: City, reported: str, working_hours: float, due: str
) -> None:
    start = pd.Series([local(reported).tz_convert("UTC")])
    calendar = calendar_for(paris, start)
    result = add_working_hours(calendar, start, np.array([working_hours]))
    assert result.iloc[0] == local(due)


def test_calendar_hours_ignore_the_calendar_and_factor_scales(paris: City) -> None:
    start = pd.Series([local("2024-07-12 10:00").tz_convert("UTC")] * 2)
    calendar = calendar_for(paris, start)
    due = due_dates(calendar, start, np.array([48.0, np.nan]), np.array([np.nan, 20.0]))
    assert due.tolist() == [local("2024-07-14 10:00"), local("2024-07-16 10:00")]
    later = due_dates(
        calendar, start, np.array([48.0, np.nan]), np.array([np.nan, 20.0]), factor=1.5
    )
    # 30 working hours: Fri 8 h, Mon 10 h, Tue 10 h, Wed 17 July 2 h.
    assert later.tolist() == [local("2024-07-15 10:00"), local("2024-07-17 10:00")]
    assert calendar.is_working_day(local("2024-07-15").date())
    assert not calendar.is_working_day(local("2024-07-14").date())
    assert not calendar.is_working_day(local("2024-11-11").date())


def test_overdue_state() -> None:
    now = datetime.fromisoformat("2024-07-16T12:00:00+00:00")
    incidents = pd.DataFrame(
        {
            "status": ["new", "in_progress", "resolved", "new"],
            "due_at": pd.to_datetime(
                ["2024-07-16T08:00Z", "2024-07-17T08:00Z", "2024-07-15T08:00Z", None], utc=True
            ),
        }
    )
    assert overdue(incidents, now).tolist() == [True, False, False, False]


def escalating_city(paris: City) -> City:
    """Paris with a 4-hour graffiti SLA, escalation after 2x to a supervisor team."""
    rule = Route(
        id="graffiti",
        version=1,
        team="graffitis",
        service=GRAFFITI,
        sla=Sla(hours=4),
        escalate_to="supervision",
    )
    teams = [
        *paris.config.teams,
        Team(code="supervision", name="Supervision", webhook="http://127.0.0.1:9/hook"),
    ]
    routing = paris.config.routing.model_copy(update={"rules": [rule]})
    return City(paris.folder, paris.config.model_copy(update={"routing": routing, "teams": teams}))


def test_escalation_after_factor_of_the_sla(paris: City, store: Store) -> None:
    city = escalating_city(paris)
    # Reported an hour ago: an escalation deadline already past when the incident is
    # stored is never scheduled (see the next test).
    reported = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    pipeline = Pipeline(city, store)
    submitted = pipeline.intake.submit(
        Report(
            external_id="e1",
            source="test",
            service_code=GRAFFITI,
            lon=2.35,
            lat=48.85,
            requested_at=reported,
        )
    )
    incident_id = submitted.incident_id
    incidents = store.lookup("incidents", city.jurisdiction_id, "id", [incident_id])
    assert incidents["due_at"].iloc[0] == pd.Timestamp(reported + timedelta(hours=4))
    assert escalate(store, city, now=reported + timedelta(hours=7)) == []
    assert escalate(store, city, now=reported + timedelta(hours=8, minutes=1)) == [incident_id]
    assert escalate(store, city, now=reported + timedelta(hours=20)) == []
    incident = store.lookup("incidents", city.jurisdiction_id, "id", [incident_id]).iloc[0]
    assert incident["team"] == "supervision"
    assignments = store.lookup("assignments", city.jurisdiction_id, "incident_id", [incident_id])
    assert assignments["team"].tolist() == ["graffitis", "supervision"]
    assert "escalated from graffitis to Supervision" in assignments["reason"].iloc[1]
    history = store.lookup("events", city.jurisdiction_id, "entity_id", [incident_id])
    escalated = history[(history["entity"] == "incident") & (history["kind"] == "escalated")]
    assert len(escalated) == 1
    outbox = store.lookup("outbox", city.jurisdiction_id, "entity_id", [incident_id])
    assert outbox["kind"].tolist() == ["escalated"]
    assert outbox["target"].tolist() == ["http://127.0.0.1:9/hook"]


def test_an_import_schedules_only_the_escalations_still_ahead(
    paris: City, paris_gis: CityGIS, store: Store
) -> None:
    """A history import does not escalate the backlog it brings: an incident whose
    escalation time has already passed when it is stored gets no escalation (it shows as
    overdue); one whose deadline is still ahead is scheduled as a submitted one is."""
    rule = Route(id="graffiti", team="graffitis", service=GRAFFITI, sla=Sla(hours=24 * 30))
    routing = paris.config.routing.model_copy(update={"rules": [rule]})
    city = City(paris.folder, paris.config.model_copy(update={"routing": routing}))
    both = list(import_old_and_new(city, store, paris_gis))  # of the rule's service
    j = city.jurisdiction_id
    scheduled = store.lookup("escalations", j, "incident_id", both)["incident_id"].tolist()
    assert scheduled == [both[1]]
    assert escalate(store, city, now=datetime.now(UTC)) == []  # the old one stays put


def test_route_gives_due_dates_from_the_rule_or_the_priority(paris: City) -> None:
    from voirie.routing.table import route

    rules = [
        Route(
            id="graffiti", team="graffitis", service=GRAFFITI, priority=2, sla=Sla(working_days=2)
        ),
        Route(id="tree", team="DEVE", service="arbres-vegetaux-96314d", priority=1),
    ]
    routing = paris.config.routing.model_copy(update={"rules": rules, "sla": {1: Sla(hours=4)}})
    city = City(paris.folder, paris.config.model_copy(update={"routing": routing}))
    reported = local("2024-07-12 10:00").tz_convert("UTC")
    batch = pd.DataFrame(
        {
            "service_code": [GRAFFITI, "arbres-vegetaux-96314d", "proprete-07915f"],
            "requested_at": [reported] * 3,
        }
    )
    routed = route(city, batch)
    assert routed["due_at"].iloc[0] == local("2024-07-16 10:00")  # 2 working days
    assert routed["due_at"].iloc[1] == local("2024-07-12 14:00")  # priority 1: 4 hours
    assert pd.isna(routed["due_at"].iloc[2])  # no rule, no SLA for priority 3
    # Escalation after 2x: 4 working days -> Thu 18 July 10:00; 8 hours -> 18:00.
    assert routed["escalate_at"].iloc[0] == local("2024-07-18 10:00")
    assert routed["escalate_at"].iloc[1] == local("2024-07-12 18:00")
