"""Staff sign-in over HTTP on real Paris reports, on every backend: the login form, the
session cookie, CSRF on every write from the pages, expiry, and the authorization of
every new ``/staff`` route by role and team."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from staffworld import (
    OTHER_TEAM,
    OWN_TEAM,
    PASSWORD,
    StaffWorld,
    login_form,
    signed_in,
)

from voirie.city import TRIAGE_TEAM, City
from voirie.model import Status
from voirie.services.staff_users import StaffSettings, add_user, sign_in
from voirie.store.selection import Selection

ROLES = ("admin", "dispatcher", "agent", "gis")


@pytest.fixture(scope="module")
def world(world: StaffWorld, paris: City) -> StaffWorld:
    """One app per backend, with a staff account per role (the agent in OWN_TEAM)."""
    for role in ROLES:
        teams = (OWN_TEAM,) if role == "agent" else ()
        add_user(world.pipeline.store, paris.jurisdiction_id, role, role, teams, PASSWORD)
    return world


def _csrf(client: TestClient, path: str = "/staff/") -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get(path).text)
    assert found is not None
    return found.group(1)


def test_login_sets_a_secure_session_cookie_and_goes_to_next(world: StaffWorld) -> None:
    client = TestClient(world.client.app, follow_redirects=False)
    assert 'autocomplete="current-password"' in client.get("/staff/login").text
    token = login_form(client, "/staff/login?next=/staff/incidents/1")
    answer = client.post(
        "/staff/login",
        data={
            "name": "dispatcher",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "/staff/incidents/1",
        },
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/staff/incidents/1"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("voirie_staff="))
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http here
    assert client.get("/staff/").status_code == 200

    https = signed_in(world, "gis", base_url="https://testserver")
    assert https.cookies.get("voirie_staff")
    again = TestClient(world.client.app, base_url="https://testserver", follow_redirects=False)
    token = login_form(again)
    answer = again.post(
        "/staff/login", data={"name": "gis", "password": PASSWORD, "csrf_token": token}
    )
    assert "Secure" in answer.headers["set-cookie"]


def test_login_refusals(world: StaffWorld) -> None:
    client = TestClient(world.client.app, follow_redirects=False)
    token = login_form(client)
    wrong = client.post(
        "/staff/login", data={"name": "admin", "password": "pas le bon", "csrf_token": token}
    )
    assert wrong.status_code == 401
    assert "incorrect" in wrong.text
    assert "voirie_staff" not in wrong.headers.get("set-cookie", "")
    # Without the form's anti-forgery value (a post from another site): refused.
    forged = TestClient(world.client.app, follow_redirects=False).post(
        "/staff/login", data={"name": "admin", "password": PASSWORD, "csrf_token": "x"}
    )
    assert forged.status_code == 403
    # Another site as the target of next: the sign-in stays on this app.
    token = login_form(client)
    answer = client.post(
        "/staff/login",
        data={
            "name": "admin",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "//evil.example/",
        },
    )
    assert answer.headers["location"] == "/staff/"


def test_pages_redirect_to_login_and_json_says_401(world: StaffWorld) -> None:
    anonymous = TestClient(world.client.app, follow_redirects=False)
    page = anonymous.get("/staff/?team=x")
    assert page.status_code == 303
    assert page.headers["location"] == "/staff/login?next=%2Fstaff%2F%3Fteam%3Dx"
    case = anonymous.get("/staff/incidents/1")
    assert case.status_code == 303
    assert anonymous.get("/staff/api/queue").status_code == 401
    # An API token is for machines: it does not open the pages.
    token = anonymous.get("/staff/", headers=world.headers("admin"))
    assert token.status_code == 303


def test_expired_or_ended_sessions_send_back_to_login(world: StaffWorld) -> None:
    store, j = world.pipeline.store, world.pipeline.city.jurisdiction_id
    settings = StaffSettings()
    old = sign_in(store, j, "dispatcher", PASSWORD, settings, datetime.now(UTC) - timedelta(days=1))
    client = TestClient(world.client.app, follow_redirects=False)
    client.cookies.set("voirie_staff", old.session_id)
    assert client.get("/staff/").status_code == 303
    assert client.get("/staff/api/queue").status_code == 401

    live = signed_in(world, "dispatcher")
    token = _csrf(live)
    assert live.post("/staff/logout", data={"csrf_token": "wrong"}).status_code == 403
    out = live.post("/staff/logout", data={"csrf_token": token})
    assert out.status_code == 303
    assert out.headers["location"] == "/staff/login"
    assert live.get("/staff/").status_code == 303


def _queue(client: TestClient, **params: Any) -> dict[str, Any]:
    answer = client.get("/staff/api/queue", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_queue_filters_sorts_and_scopes(world: StaffWorld) -> None:
    dispatcher = signed_in(world, "dispatcher")
    incidents = world.pipeline.reads.incidents()
    everything = _queue(dispatcher, status="all", limit=200)
    assert everything["total"] == len(incidents)
    assert sum(everything["counts"].values()) == len(incidents)
    by_reports = _queue(dispatcher, status="all", sort="reports", order="desc", limit=200)
    counts = [i["report_count"] for i in by_reports["incidents"]]
    assert counts == sorted(counts, reverse=True)
    by_age = _queue(dispatcher, status="all", sort="age", limit=200)
    firsts = [i["first_reported_at"] for i in by_age["incidents"]]
    assert firsts == sorted(firsts)
    team = _queue(dispatcher, status="all", team=OTHER_TEAM, limit=200)
    assert team["total"] == int((incidents["team"] == OTHER_TEAM).sum())
    named = incidents.dropna(subset=["street_name"]).iloc[0]
    found = _queue(dispatcher, status="all", q=str(named["street_name"]), limit=200)
    assert int(named["incident_id"]) in {i["incident_id"] for i in found["incidents"]}
    assert found["total"] < len(incidents)
    page = _queue(dispatcher, status="all", limit=5, offset=5)
    assert [i["incident_id"] for i in page["incidents"]] == [
        i["incident_id"] for i in by_age["incidents"][5:10]
    ]

    agent = signed_in(world, "agent")
    own = _queue(agent, status="all", limit=200)
    assert own["total"] == int((incidents["team"] == OWN_TEAM).sum())
    assert {i["team"] for i in own["incidents"]} == {OWN_TEAM}
    assert agent.get("/staff/api/queue", params={"team": OTHER_TEAM}).status_code == 403
    assert agent.get("/staff/api/queue", params={"status": "nope"}).status_code == 400


def _post(client: TestClient, path: str, body: dict[str, Any], csrf: str | None) -> Any:
    headers = {"X-CSRF-Token": csrf} if csrf is not None else {}
    return client.post(path, json=body, headers=headers)


def test_every_write_needs_the_sessions_csrf_token(world: StaffWorld) -> None:
    dispatcher = signed_in(world, "dispatcher")
    other = signed_in(world, "admin")
    incident = world.incident_ids(OTHER_TEAM)[0]
    path = f"/staff/api/incidents/{incident}/comments"
    assert _post(dispatcher, path, {"text": "note"}, None).status_code == 403
    assert _post(dispatcher, path, {"text": "note"}, "0" * 64).status_code == 403
    # Another session's token is not this session's.
    assert _post(dispatcher, path, {"text": "note"}, _csrf(other)).status_code == 403
    assert _post(dispatcher, path, {"text": "note"}, _csrf(dispatcher)).status_code == 201


def test_case_page_and_actions_follow_roles_and_teams(world: StaffWorld) -> None:
    clients = {role: signed_in(world, role) for role in ROLES}
    tokens = {role: _csrf(client) for role, client in clients.items()}
    own, other = world.incident_ids(OWN_TEAM), world.incident_ids(OTHER_TEAM)
    for role, client in clients.items():
        assert client.get(f"/staff/incidents/{own[0]}").status_code == 200
        expected = 403 if role == "agent" else 200
        assert client.get(f"/staff/incidents/{other[0]}").status_code == expected, role
        assert client.get("/staff/").status_code == 200
    assert "voirie-status-form" not in clients["gis"].get(f"/staff/incidents/{own[0]}").text
    assert "voirie-status-form" in clients["agent"].get(f"/staff/incidents/{own[0]}").text

    def status(role: str, incident: int) -> int:
        answer = _post(
            clients[role],
            f"/staff/api/incidents/{incident}/status",
            {"status": "acknowledged", "reason": "vu"},
            tokens[role],
        )
        return int(answer.status_code)

    assert status("gis", own[1]) == 403
    assert status("agent", other[1]) == 403
    assert status("agent", own[1]) == 200
    assert status("dispatcher", other[1]) == 200
    assert status("dispatcher", other[1]) == 409  # acknowledged -> acknowledged: not allowed

    def reassign(role: str, incident: int, team: str) -> int:
        answer = _post(
            clients[role],
            f"/staff/api/incidents/{incident}/assignment",
            {"team": team, "reason": "mauvaise équipe"},
            tokens[role],
        )
        return int(answer.status_code)

    assert reassign("agent", own[2], OTHER_TEAM) == 403
    assert reassign("gis", own[2], OTHER_TEAM) == 403
    assert reassign("admin", own[2], OTHER_TEAM) == 200
    assert reassign("agent", own[8], TRIAGE_TEAM) == 200  # an agent hands back to triage

    def merge(role: str, merged: int, into: int) -> int:
        answer = _post(
            clients[role],
            f"/staff/api/incidents/{merged}/merge",
            {"into": into, "reason": "doublon"},
            tokens[role],
        )
        return int(answer.status_code)

    assert merge("agent", own[3], own[4]) == 403
    assert merge("gis", other[3], other[4]) == 403
    not_dup = _post(
        clients["agent"],
        f"/staff/api/incidents/{own[3]}/not-duplicate",
        {"other": own[4], "reason": "distincts"},
        tokens["agent"],
    )
    assert not_dup.status_code == 403
    comment = _post(
        clients["gis"], f"/staff/api/incidents/{own[3]}/comments", {"text": "x"}, tokens["gis"]
    )
    assert comment.status_code == 403

    def category(role: str, incident: int, code: str) -> Any:
        return _post(
            clients[role],
            f"/staff/api/incidents/{incident}/category",
            {"service_code": code, "reason": "mauvaise catégorie"},
            tokens[role],
        )

    codes = sorted(world.pipeline.city.services)
    assert category("agent", own[6], codes[0]).status_code == 403
    assert category("gis", own[6], codes[0]).status_code == 403
    assert category("admin", own[6], "no-such-service").status_code == 400
    rerouted = category("admin", own[6], codes[0])
    assert rerouted.status_code == 200, rerouted.text
    assert rerouted.json()["service_code"] == codes[0]
    assert rerouted.json()["rule_id"] is not None
    history = world.pipeline.reads.lookup("events", "entity_id", [own[6]])
    assert any(
        f"→ {codes[0]}: mauvaise catégorie" in str(r)
        for r in history.loc[history["entity"] == "incident", "reason"]
    )
    assert category("admin", own[6], codes[0]).status_code == 409

    def location(role: str, incident: int, lon: float, lat: float) -> Any:
        return _post(
            clients[role],
            f"/staff/api/incidents/{incident}/location",
            {"lon": lon, "lat": lat, "reason": "devant le n° 12"},
            tokens[role],
        )

    spot = world.incidents.set_index("incident_id").loc[own[7]]
    lon, lat = float(spot["lon"]) + 0.0003, float(spot["lat"])
    assert location("gis", own[7], lon, lat).status_code == 403
    assert location("agent", other[7], lon, lat).status_code == 403
    assert location("agent", own[7], 0.0, 0.0).status_code == 400  # outside the city
    moved = location("agent", own[7], lon, lat)
    assert moved.status_code == 200, moved.text
    assert moved.json()["lon"] == pytest.approx(lon)
    assert moved.json()["street_name"]

    bulk = _post(
        clients["agent"],
        "/staff/api/bulk",
        {"action": "status", "ids": [own[5], other[5]], "status": "acknowledged"},
        tokens["agent"],
    )
    assert bulk.status_code == 403
    # Nothing of a refused bulk action was kept.
    assert _statuses(world, [own[5], other[5]]) == [Status.NEW.value] * 2


def _statuses(world: StaffWorld, ids: list[int]) -> list[str]:
    found = world.pipeline.reads.incidents(Selection(ids=tuple(ids))).set_index("incident_id")
    return [str(found.loc[i, "status"]) for i in ids]


def test_bulk_actions_are_one_transaction_with_events(world: StaffWorld) -> None:
    dispatcher = signed_in(world, "dispatcher")
    token = _csrf(dispatcher)
    ids = world.incident_ids(OTHER_TEAM)[-6:]
    done = _post(
        dispatcher,
        "/staff/api/bulk",
        {"action": "status", "ids": ids[:3], "status": "scheduled", "reason": "tournée"},
        token,
    )
    assert done.status_code == 200, done.text
    assert done.json()["changed"] == ids[:3]
    assert _statuses(world, ids[:3]) == ["scheduled"] * 3
    events = world.pipeline.reads.lookup("events", "entity_id", ids[:3])
    changed = events[(events["kind"] == "status_changed") & (events["entity"] == "incident")]
    assert sorted(changed["entity_id"]) == sorted(ids[:3])
    assert set(changed["actor"]) == {"dispatcher"}

    # One incident refuses (scheduled -> acknowledged is not allowed): none changes.
    refused = _post(
        dispatcher,
        "/staff/api/bulk",
        {"action": "status", "ids": [ids[3], ids[0]], "status": "acknowledged"},
        token,
    )
    assert refused.status_code == 409
    assert str(ids[0]) in refused.json()["detail"]
    assert _statuses(world, [ids[3], ids[0]]) == ["new", "scheduled"]

    moved = _post(
        dispatcher,
        "/staff/api/bulk",
        {"action": "assign", "ids": ids[3:5], "team": OWN_TEAM, "reason": "secteur"},
        token,
    )
    assert moved.status_code == 200, moved.text
    teams = world.pipeline.reads.incidents(Selection(ids=tuple(ids[3:5])))["team"]
    assert set(teams) == {OWN_TEAM}

    merged = _post(
        dispatcher,
        "/staff/api/bulk",
        {"action": "merge", "ids": [ids[5], ids[3], ids[4]], "reason": "même dépôt"},
        token,
    )
    assert merged.status_code == 200, merged.text
    assert merged.json()["changed"] == [ids[3], ids[4]]
    assert _statuses(world, [ids[3], ids[4]]) == ["duplicate", "duplicate"]
    assert (
        _post(dispatcher, "/staff/api/bulk", {"action": "status", "ids": []}, token).status_code
        == 422
    )
