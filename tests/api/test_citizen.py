"""Citizens' domain operations on real Paris reports, on every storage backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from voirie.city import City
from voirie.errors import Conflict, InvalidInput, NotFound
from voirie.model import Report, Status
from voirie.services import citizens
from voirie.services.pipeline import Pipeline
from voirie.store.selection import Selection

NOW = datetime(2024, 6, 1, tzinfo=UTC)
SERVICE = "Cartons ou sacs de déchets ménagers"


def _incident(pipeline: Pipeline, incident_id: int) -> pd.Series:
    return pipeline.reads.incidents(Selection(ids=(incident_id,))).iloc[0]


def _events(pipeline: Pipeline, incident_id: int) -> pd.DataFrame:
    events = pipeline.store.lookup(
        "events", pipeline.city.jurisdiction_id, "entity_id", [incident_id]
    )
    return events[(events["entity"] == "incident") & (events["entity_id"] == incident_id)]


def _nearby(pipeline: Pipeline, lon: float, lat: float, radius_m: float) -> list[dict[str, object]]:
    """The open incidents ``/api/v1/nearby`` lists around a point (its first page)."""
    open_statuses = tuple(s.value for s in Status if s.is_open)
    selection = Selection(statuses=open_statuses, limit=citizens.MAX_NEARBY)
    return pipeline.reads.nearby_records(lon, lat, radius_m, selection, NOW)[0]


def _first_open(pipeline: Pipeline) -> int:
    incidents = pipeline.reads.incidents()
    return int(incidents.loc[incidents["status"] == Status.NEW, "incident_id"].iloc[0])


def test_me_too_counts_once_per_email_and_never_opens_an_incident(pipeline: Pipeline) -> None:
    incident_id = _first_open(pipeline)
    before = _incident(pipeline, incident_id)
    incidents_before = pipeline.reads.count("incidents")

    first = citizens.support(pipeline, incident_id, " Voisine@Example.org ")
    again = citizens.support(pipeline, incident_id, "voisine@example.org")
    anonymous = [citizens.support(pipeline, incident_id) for _ in range(2)]

    assert (first.counted, first.following, first.supporters) == (True, True, 1)
    assert (again.counted, again.supporters) == (False, 1)
    assert [a.supporters for a in anonymous] == [2, 3]
    after = _incident(pipeline, incident_id)
    assert after["supporters"] == 3
    assert after["report_count"] == before["report_count"]  # reports and supporters apart
    assert pipeline.reads.count("incidents") == incidents_before
    history = _events(pipeline, incident_id)
    supported = history[history["kind"] == "supported"]
    assert len(supported) == 3  # the repeated email left no event
    assert set(supported["actor"]) == {citizens.CITIZEN_ACTOR}
    assert "example.org" not in history.to_csv()


def test_anonymous_me_too_counts_once_per_device_and_day(pipeline: Pipeline) -> None:
    incident_id = _first_open(pipeline)
    phone = citizens.Client("192.0.2.10", "Mozilla/5.0 (Android 14)")
    laptop = citizens.Client("192.0.2.10", "Mozilla/5.0 (X11; Linux)")
    day_one = datetime(2024, 6, 1, 9, tzinfo=UTC)
    outcomes = [
        citizens.support(pipeline, incident_id, client=phone, at=day_one),
        citizens.support(pipeline, incident_id, client=phone, at=day_one),
        citizens.support(pipeline, incident_id, client=laptop, at=day_one),  # other browser
        citizens.support(
            pipeline, incident_id, "voisin@example.org", client=phone, at=day_one
        ),  # an email counts on its own
        citizens.support(pipeline, incident_id, client=phone, at=day_one + timedelta(days=1)),
    ]
    assert [o.counted for o in outcomes] == [True, False, True, True, True]
    assert outcomes[-1].supporters == 4
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        # Yesterday's salt is gone: yesterday's keys can no longer be traced to an address.
        assert uow.citizens.client_salt("2024-06-02") != uow.citizens.client_salt("2024-06-03")
        rows = uow.session.conn.execute(  # type: ignore[attr-defined]
            "SELECT day FROM client_salts WHERE jurisdiction_id = 'paris.fr'"
        ).fetchall()
    assert [tuple(r) for r in rows] == [("2024-06-03",)]


def test_emails_never_reach_public_reads(pipeline: Pipeline) -> None:
    incident_id = _first_open(pipeline)
    citizens.support(pipeline, incident_id, "secret.voisin@example.org")
    citizens.follow(pipeline, incident_id, "autre.voisin@example.org")
    incident = _incident(pipeline, incident_id)

    public = [
        pipeline.reads.incidents().drop(columns="geometry").to_csv(),
        pipeline.reads.reports().drop(columns="geometry").to_csv(),
        str(_nearby(pipeline, float(incident["lon"]), float(incident["lat"]), 300)),
    ]
    assert not any("voisin@" in text for text in public)


def test_follow_and_unfollow_are_idempotent(pipeline: Pipeline) -> None:
    incident_id = _first_open(pipeline)

    assert citizens.follow(pipeline, incident_id, "a@example.org") is True
    assert citizens.follow(pipeline, incident_id, "A@example.org") is False
    assert citizens.unfollow(pipeline, incident_id, "a@example.org") is True
    assert citizens.unfollow(pipeline, incident_id, "a@example.org") is False
    kinds = _events(pipeline, incident_id)["kind"].tolist()
    assert kinds.count("followed") == 1
    assert kinds.count("unfollowed") == 1


def test_closed_incident_refuses_me_too_and_follow(pipeline: Pipeline) -> None:
    incident_id = _first_open(pipeline)
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        uow.incidents.update(incident_id, {"status": Status.RESOLVED.value})

    with pytest.raises(Conflict, match=f"incident {incident_id} is resolved") as caught:
        citizens.support(pipeline, incident_id, "b@example.org")
    assert caught.value.status == 409
    with pytest.raises(Conflict, match="report it again"):
        citizens.follow(pipeline, incident_id, "b@example.org")
    assert _incident(pipeline, incident_id)["supporters"] == 0
    assert citizens.unfollow(pipeline, incident_id, "b@example.org") is False


def test_unknown_incident_and_bad_email(pipeline: Pipeline) -> None:
    with pytest.raises(NotFound, match="incident 999999 does not exist") as caught:
        citizens.support(pipeline, 999_999)
    assert (caught.value.status, caught.value.field) == (404, "incident_id")
    with pytest.raises(NotFound):
        citizens.unfollow(pipeline, 999_999, "c@example.org")
    with pytest.raises(InvalidInput, match="email: not an email address") as bad:
        citizens.support(pipeline, _first_open(pipeline), "not-an-email")
    assert bad.value.field == "email"


def test_nearby_lists_open_incidents_nearest_first(pipeline: Pipeline) -> None:
    incident_id = _first_open(pipeline)
    citizens.support(pipeline, incident_id)
    centre = _incident(pipeline, incident_id)

    found = pd.DataFrame(_nearby(pipeline, float(centre["lon"]), float(centre["lat"]), 2000))

    assert list(found.columns) == [  # the order of the API's JSON fields
        "incident_id",
        "service_code",
        "service_name",
        "status",
        "street_name",
        "description",
        "lon",
        "lat",
        "distance_m",
        "first_reported_at",
        "last_reported_at",
        "age_days",
        "report_count",
        "supporters",
    ]
    assert found["incident_id"].iloc[0] == incident_id
    assert found["distance_m"].iloc[0] == 0
    assert found["distance_m"].is_monotonic_increasing
    assert (found["distance_m"] <= 2000).all()
    assert found["status"].isin([s.value for s in Status if s.is_open]).all()
    assert found["supporters"].iloc[0] == 1
    assert (found["age_days"] >= 0).all()
    first_report = pd.Timestamp(centre["first_reported_at"])
    assert found["age_days"].iloc[0] == (pd.Timestamp(NOW) - first_report).days


def test_nearby_carries_the_first_report_text_verbatim(pipeline: Pipeline, paris: City) -> None:
    """Escaping is the page's job: the API returns what the citizen wrote."""
    text = "<img src=x onerror=alert(1)> devant le n°91"
    submitted = pipeline.intake.submit(
        Report(
            external_id="xss-1",
            source="app",
            lon=2.363114,
            lat=48.873504,
            service_code=paris.services_by_name[SERVICE.casefold()].code,
            requested_at=datetime(2024, 5, 30, 9, 30, tzinfo=UTC),
            description=text,
        )
    )

    found = _nearby(pipeline, 2.363114, 48.873504, 50)

    (row,) = [r for r in found if r["incident_id"] == submitted.incident_id]
    assert row["description"] == text
    assert row["age_days"] == 1
