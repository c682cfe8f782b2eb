"""The review list of learned routing rules (``/staff/regles``, issue 18 item 2) over HTTP,
on every backend: a dispatcher's reassignments propose a rule, a dispatcher accepts it
from the page (anti-forgery token required), then reverts it; an agent may read the list
but not decide."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from staffworld import PASSWORD, StaffWorld, signed_in

from voirie.city import City
from voirie.services import learned_routing, workflow
from voirie.services.auth import Principal, Role
from voirie.services.staff_users import add_user

DISPATCHER = Principal("Dominique (dispatch)", Role.DISPATCHER)


@pytest.fixture(scope="module")
def world(world: StaffWorld) -> StaffWorld:
    """The app over the sample, a dispatcher and an agent account, and a proposed rule:
    most incidents of one sub-category reassigned to another team (review mode, the
    default, with a support of 2)."""
    store, city = world.pipeline.store, world.pipeline.city
    add_user(store, city.jurisdiction_id, "dispatcher", "dispatcher", (), PASSWORD)
    add_user(store, city.jurisdiction_id, "agent", "agent", ("Ramen",), PASSWORD)
    learning = city.config.routing.learning.model_copy(update={"min_support": 2})
    routing = city.config.routing.model_copy(update={"learning": learning})
    world.pipeline.city = City(city.folder, city.config.model_copy(update={"routing": routing}))
    incidents = world.incidents
    counts = incidents.groupby("service_code")["team"].agg(["count", "nunique", "first"])
    service = str(counts[counts["count"].between(3, 4) & (counts["nunique"] == 1)].index[0])
    given = str(counts.loc[service, "first"])
    other = next(t for t in sorted(city.teams) if t not in (given, "triage"))
    ids = incidents.loc[incidents["service_code"] == service, "incident_id"].astype(int)
    for incident_id in ids.iloc[: len(ids) // 2 + 1]:
        workflow.reassign(store, world.pipeline.city, incident_id, DISPATCHER, other, "secteur")
    return world


def _token(client: TestClient) -> str:
    found = re.search(
        r'<meta name="csrf-token" content="([^"]+)"', client.get("/staff/regles").text
    )
    assert found is not None
    return found.group(1)


def _service(world: StaffWorld) -> str:
    (rule,) = learned_routing.versions(world.pipeline.store, world.pipeline.city)
    return rule.service_code


def test_the_list_shows_the_proposal_and_its_reason(world: StaffWorld) -> None:
    page = signed_in(world, "dispatcher").get("/staff/regles")
    assert page.status_code == 200
    assert "Règles apprises des réaffectations" in page.text
    assert "proposée" in page.text
    assert "learned from 2 reassignments by dispatchers since" in page.text
    assert ">Accepter</button>" in page.text
    english = signed_in(world, "dispatcher").get("/staff/regles?lang=en")
    assert "Rules learned from reassignments" in english.text


def test_an_agent_reads_the_list_but_may_not_decide(world: StaffWorld) -> None:
    client = signed_in(world, "agent")
    page = client.get("/staff/regles")
    assert page.status_code == 200
    assert '<button type="submit">Accepter' not in page.text
    answer = client.post(
        f"/staff/regles/{_service(world)}/reject", data={"csrf_token": _token(client)}
    )
    assert answer.status_code == 403
    assert "may not review the learned routing rules" in answer.text


def test_a_dispatcher_accepts_then_reverts_from_the_page(world: StaffWorld) -> None:
    client, service = signed_in(world, "dispatcher"), _service(world)
    refused = client.post(f"/staff/regles/{service}/accept", data={"csrf_token": "forged"})
    assert refused.status_code == 403
    assert "csrf_token" in refused.text
    answer = client.post(f"/staff/regles/{service}/accept", data={"csrf_token": _token(client)})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/staff/regles"
    (rule,) = learned_routing.versions(world.pipeline.store, world.pipeline.city)
    assert (rule.status, rule.decided_by) == ("active", "dispatcher")
    assert "en vigueur" in client.get("/staff/regles").text
    answer = client.post(f"/staff/regles/{service}/revert", data={"csrf_token": _token(client)})
    assert answer.status_code == 303
    (rule,) = learned_routing.versions(world.pipeline.store, world.pipeline.city)
    assert rule.status == "reverted"
    # Nothing left to revert: a clear 404 naming the field.
    again = client.post(f"/staff/regles/{service}/revert", data={"csrf_token": _token(client)})
    assert again.status_code == 404
    assert "has no active learned rule" in again.text


def test_signed_out_visitors_are_sent_to_the_sign_in_page(world: StaffWorld) -> None:
    client = TestClient(world.client.app, follow_redirects=False)
    answer = client.get("/staff/regles")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/staff/login?next=")
