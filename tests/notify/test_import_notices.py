"""An import tells a team only of the incidents still within their SLA when stored: a
city's history does not mail or call every team once per old incident. The per-report path
(Open311 POST, the citizens' form) announces every incident it opens. On both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from old_and_new import GRAFFITI, import_old_and_new

from voirie.city import City, Route, Sla, Team
from voirie.gis.enrich import CityGIS
from voirie.model import Report
from voirie.services.pipeline import Pipeline
from voirie.store import Store


@pytest.fixture
def city(paris: City) -> City:
    """Paris with graffiti (30 days to answer) sent to a team reached by webhook and
    e-mail."""
    rule = Route(id="graffiti", team="graffitis", service=GRAFFITI, sla=Sla(hours=24 * 30))
    team = Team(
        code="graffitis",
        name="Graffitis",
        webhook="http://127.0.0.1:9/hook",
        email="graffitis@example.org",
    )
    routing = paris.config.routing.model_copy(update={"rules": [rule]})
    config = paris.config.model_copy(
        update={"routing": routing, "teams": [*paris.config.teams, team]}
    )
    return City(paris.folder, config)


def _assigned(store: Store, city: City) -> list[tuple[int, str]]:
    """(incident id, channel) of every "assigned" notice queued, sorted."""
    rows = store.lookup("outbox", city.jurisdiction_id, "kind", ["assigned"])
    return sorted(zip(rows["entity_id"].astype(int), rows["channel"], strict=True))


def test_an_import_announces_only_the_incidents_still_within_their_sla(
    city: City, paris_gis: CityGIS, store: Store
) -> None:
    old, new = import_old_and_new(city, store, paris_gis)  # of the rule's service
    assert _assigned(store, city) == [(new, "email"), (new, "webhook")]
    # The old one is the team's all the same: assigned, in its queue, overdue.
    incidents = store.lookup("incidents", city.jurisdiction_id, "id", [old])
    assert incidents["team"].tolist() == ["graffitis"]
    assert incidents["due_at"].iloc[0] < datetime.now(UTC)


def test_a_report_sent_late_is_announced_all_the_same(city: City, store: Store) -> None:
    """The per-report path is unchanged: an incident it opens is announced even when its
    report was made long ago (the team hears of it now, through voirie)."""
    submitted = Pipeline(city, store).intake.submit(
        Report(
            external_id="late-1",
            source="test",
            service_code=GRAFFITI,
            lon=2.35,
            lat=48.85,
            requested_at=datetime.now(UTC).replace(microsecond=0) - timedelta(days=400),
        )
    )
    incident = submitted.incident_id
    assert _assigned(store, city) == [(incident, "email"), (incident, "webhook")]
