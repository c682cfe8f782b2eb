"""The staff API over HTTP on real Paris reports, on every storage backend: filters, case
files with contact data for staff only, the workflow, reassignment, comments, errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from staffworld import OTHER_TEAM, OWN_TEAM, StaffWorld

from voirie.city import TRIAGE_TEAM
from voirie.services.workflow import REASSIGNED_PUBLICLY
from voirie.store.selection import Selection

# A bbox around the 11th arrondissement (WGS84).
BBOX_11 = (2.36, 48.85, 2.40, 48.87)


def _list(world: StaffWorld, who: str = "dispatcher", **params: Any) -> dict[str, Any]:
    response = world.client.get("/api/v1/incidents", params=params, headers=world.headers(who))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_list_filters_match_the_stored_incidents(world: StaffWorld) -> None:
    everything = world.pipeline.reads.incidents()
    page = _list(world, limit=10, offset=5)
    assert page["total"] == len(everything) > 150
    assert [i["incident_id"] for i in page["incidents"]] == [
        int(i) for i in everything["incident_id"].iloc[5:15]
    ]
    by_team = _list(world, team=[OWN_TEAM, OTHER_TEAM], limit=1000)
    assert by_team["total"] == int(everything["team"].isin([OWN_TEAM, OTHER_TEAM]).sum())
    assert {i["team"] for i in by_team["incidents"]} == {OWN_TEAM, OTHER_TEAM}
    service = str(everything["service_code"].value_counts().index[0])
    assert _list(world, service=service)["total"] == int(
        (everything["service_code"] == service).sum()
    )
    in_11 = _list(world, zone="arrondissement:11", limit=1000)
    assert in_11["total"] == int((everything["zone_arrondissement"] == "11").sum()) > 0
    assert {i["zones"]["arrondissement"] for i in in_11["incidents"]} == {"11"}
    boxed = _list(world, bbox=",".join(map(str, BBOX_11)), limit=1000)
    inside = everything["lon"].between(BBOX_11[0], BBOX_11[2]) & everything["lat"].between(
        BBOX_11[1], BBOX_11[3]
    )
    assert boxed["total"] == int(inside.sum()) > 0
    oberkampf = _list(world, q="OBERKAMPF", limit=1000)
    named = everything["street_name"].fillna("").str.contains("Oberkampf")
    assert oberkampf["total"] >= int(named.sum()) > 0
    new = int((everything["status"] == "new").sum())
    assert _list(world, status=["new"])["total"] == new
    assert _list(world, status=["new", "closed"])["total"] == new + int(
        (everything["status"] == "closed").sum()
    )
    now = datetime.now(UTC)
    late = everything["status"].isin(["new", "acknowledged", "scheduled", "in_progress"]) & (
        everything["due_at"] < now
    )
    overdue = _list(world, overdue="true", limit=1000)
    assert overdue["total"] == int(late.sum())
    assert all(i["overdue"] for i in overdue["incidents"])


def test_an_agent_lists_only_their_team(world: StaffWorld) -> None:
    mine = _list(world, "agent", limit=1000)
    teams = world.pipeline.reads.incidents()["team"]
    assert mine["total"] == int((teams == OWN_TEAM).sum()) > 0
    assert {i["team"] for i in mine["incidents"]} == {OWN_TEAM}
    refused = world.client.get(
        "/api/v1/incidents", params={"team": OTHER_TEAM}, headers=world.headers("agent")
    )
    assert refused.status_code == 403
    assert "'Ramen'" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"zone": "arrondissement"}, "zone", "expected layer:code"),
        ({"zone": "canton:12"}, "zone", "unknown zone layer 'canton'"),
        ({"bbox": "2.3,48.8,2.4"}, "bbox", "4 numbers"),
        ({"bbox": "2.4,48.8,2.3,48.9"}, "bbox", "min before max"),
    ],
)
def test_bad_filters_name_the_field(
    world: StaffWorld, params: dict[str, str], field: str, words: str
) -> None:
    response = world.client.get(
        "/api/v1/incidents", params=params, headers=world.headers("dispatcher")
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["field"] == field
    assert words in body["detail"]


def test_unknown_status_or_page_is_422(world: StaffWorld) -> None:
    for params in ({"status": "done"}, {"limit": 0}, {"limit": 1001}, {"offset": -1}):
        response = world.client.get(
            "/api/v1/incidents", params=params, headers=world.headers("dispatcher")
        )
        assert response.status_code == 422, params


def test_case_file_has_reports_history_and_contacts_for_staff(world: StaffWorld) -> None:
    incident_id = world.incident_ids(OWN_TEAM)[3]
    url = f"/api/v1/incidents/{incident_id}"
    full = world.client.get(url, headers=world.headers("agent")).json()
    assert full["incident"]["incident_id"] == incident_id
    assert full["contacts_visible"] is True
    assert len(full["reports"]) == full["incident"]["report_count"] >= 1
    contact = full["reports"][0]["contact"]
    assert contact["name"].startswith("Camille Temoin")
    assert contact["email"].endswith("@exemple.invalid")
    assert contact["phone"].startswith("+33-6-99-")
    assert contact["device_id"].startswith("dev-7f3a")
    kinds = [e["kind"] for e in full["history"]]
    assert kinds[:1] == ["received"]
    assert "routed" in kinds
    assert full["assignments"][0]["team"] == OWN_TEAM
    assert full["assignments"][0]["actor"] == "voirie"
    gis = world.client.get(url, headers=world.headers("gis")).json()
    assert gis["contacts_visible"] is False
    assert [r["contact"] for r in gis["reports"]] == [None] * len(gis["reports"])
    assert "Temoin" not in str(gis)
    missing = world.client.get("/api/v1/incidents/999999", headers=world.headers("admin"))
    assert missing.status_code == 404
    assert missing.json()["detail"] == "incident 999999 does not exist"


def test_status_changes_follow_the_workflow(world: StaffWorld) -> None:
    incident_id = world.incident_ids(OTHER_TEAM)[0]
    url = f"/api/v1/incidents/{incident_id}/status"
    headers = world.headers("dispatcher")
    moved = world.client.post(
        url, json={"status": "in_progress", "reason": "équipe sur place"}, headers=headers
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "in_progress"
    assert moved.json()["allowed_statuses"] == ["scheduled", "resolved"]
    refused = world.client.post(url, json={"status": "closed"}, headers=headers)
    assert refused.status_code == 409
    body = refused.json()
    assert body["allowed"] == ["scheduled", "resolved"]
    assert body["field"] == "status"
    assert "allowed from in_progress: scheduled, resolved" in body["detail"]
    unnamed = world.client.post(url, json={"status": "rejected"}, headers=headers)
    assert unnamed.status_code == 409
    history = world.client.get(f"/api/v1/incidents/{incident_id}", headers=headers).json()
    change = [e for e in history["history"] if e["kind"] == "status_changed"]
    assert len(change) == 1
    assert change[0]["actor"] == "dispatcher user"
    assert change[0]["reason"] == "new → in_progress: équipe sur place"
    invalid = world.client.post(url, json={"status": "fixed"}, headers=headers)
    assert invalid.status_code == 422


def test_reassign_and_hand_back(world: StaffWorld) -> None:
    own = world.incident_ids(OWN_TEAM)[0]
    moved = world.client.post(
        f"/api/v1/incidents/{own}/assignment",
        json={
            "team": OTHER_TEAM,
            "reason": "chantier Ramen",
            "priority": 2,
            "due_at": "2024-06-01T12:00:00+02:00",
        },
        headers=world.headers("dispatcher"),
    )
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert (body["team"], body["priority"], body["due_at"]) == (
        OTHER_TEAM,
        2,
        "2024-06-01T10:00:00Z",
    )
    assert body["routing_reason"] == REASSIGNED_PUBLICLY
    assert body["rule_id"] is None
    # Open and past its new due date: overdue for the dispatcher's list.
    assert body["overdue"] is True
    assert own in [i["incident_id"] for i in _list(world, overdue="true")["incidents"]]
    # Now another team's: the agent no longer sees it.
    assert (
        world.client.get(f"/api/v1/incidents/{own}", headers=world.headers("agent")).status_code
        == 403
    )
    second = world.incident_ids(OWN_TEAM)[1]
    elsewhere = world.client.post(
        f"/api/v1/incidents/{second}/assignment",
        json={"team": OTHER_TEAM, "reason": "x"},
        headers=world.headers("agent"),
    )
    assert elsewhere.status_code == 403
    assert "only hand incidents back to triage" in elsewhere.json()["detail"]
    back = world.client.post(
        f"/api/v1/incidents/{second}/assignment",
        json={"team": TRIAGE_TEAM, "reason": "pas un graffiti"},
        headers=world.headers("agent"),
    )
    assert back.status_code == 200, back.text
    assert back.json()["team"] == TRIAGE_TEAM
    unknown = world.client.post(
        f"/api/v1/incidents/{second}/assignment",
        json={"team": "NOPE", "reason": "x"},
        headers=world.headers("dispatcher"),
    )
    assert unknown.status_code == 400
    assert unknown.json()["field"] == "team"


def test_comments_join_the_history(world: StaffWorld) -> None:
    incident_id = world.incident_ids(OWN_TEAM)[2]
    posted = world.client.post(
        f"/api/v1/incidents/{incident_id}/comments",
        json={"text": "Riverain rappelé, passage jeudi"},
        headers=world.headers("agent"),
    )
    assert posted.status_code == 201, posted.text
    event = posted.json()
    assert (event["kind"], event["actor"], event["entity_id"]) == (
        "commented",
        "agent user",
        incident_id,
    )
    history = world.client.get(
        f"/api/v1/incidents/{incident_id}", headers=world.headers("gis")
    ).json()["history"]
    assert history[-1] == event
    empty = world.client.post(
        f"/api/v1/incidents/{incident_id}/comments",
        json={"text": ""},
        headers=world.headers("agent"),
    )
    assert empty.status_code == 422


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "missing API token: send the header 'Authorization: Bearer TOKEN'"),
        ({"Authorization": "Bearer voirie_not-a-token"}, "unknown API token"),
        ({"Authorization": "Basic YWRtaW46YWRtaW4="}, "missing API token"),
    ],
)
def test_no_or_unknown_token_is_401(
    world: StaffWorld, headers: dict[str, str], detail: str
) -> None:
    incident_id = world.incident_ids(OWN_TEAM)[0]
    for method, url in (
        ("GET", "/api/v1/incidents"),
        ("GET", f"/api/v1/incidents/{incident_id}"),
        ("POST", f"/api/v1/incidents/{incident_id}/comments"),
    ):
        response = world.client.request(method, url, headers=headers, json={"text": "x"})
        assert response.status_code == 401, url
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"].startswith(detail)


def test_openapi_declares_security_and_errors(world: StaffWorld) -> None:
    spec = world.client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    staff = {
        (path, method): operation
        for path, item in spec["paths"].items()
        if path.startswith("/api/v1/")
        for method, operation in item.items()
        if "staff" in operation.get("tags", [])
    }
    assert len(staff) >= 5
    for (path, method), operation in staff.items():
        assert operation["security"] == [{"HTTPBearer": []}], (path, method)
        for code in ("401", "403", "404"):
            content = operation["responses"][code]["content"]
            for media_type in ("application/json", "application/problem+json"):
                schema = content[media_type]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, (path, code)


def test_merge_split_and_not_duplicate(world: StaffWorld) -> None:
    headers = world.headers("dispatcher")
    survivor, merged, third = world.incident_ids(OTHER_TEAM)[1:4]
    counts = world.pipeline.reads.incidents(Selection(ids=(survivor, merged))).set_index(
        "incident_id"
    )["report_count"]
    done = world.client.post(
        f"/api/v1/incidents/{merged}/merge",
        json={"into": survivor, "reason": "même dépôt"},
        headers=headers,
    )
    assert done.status_code == 200, done.text
    assert done.json() == {
        "survivor_id": survivor,
        "merged_id": merged,
        "reports_moved": int(counts[merged]),
        "report_count": int(counts.sum()),
        "supporters": 0,
    }
    gone = world.client.get(f"/api/v1/incidents/{merged}", headers=headers).json()
    assert gone["incident"]["status"] == "duplicate"
    assert gone["incident"]["allowed_statuses"] == []
    assert gone["history"][-1]["kind"] == "merged"
    assert gone["history"][-1]["actor"] == "dispatcher user"
    moved = world.client.get(f"/api/v1/incidents/{survivor}", headers=headers).json()
    report_id = moved["reports"][-1]["report_id"]
    split = world.client.post(
        f"/api/v1/reports/{report_id}/split",
        json={"reason": "deux dépôts distincts"},
        headers=headers,
    )
    assert split.status_code == 201, split.text
    new = split.json()
    assert new["incident_id"] not in (survivor, merged)
    assert (new["status"], new["report_count"]) == ("new", 1)
    # Split apart: the two are now marked not duplicates, so merging them is refused.
    again = world.client.post(
        f"/api/v1/incidents/{new['incident_id']}/merge",
        json={"into": survivor, "reason": "oops"},
        headers=headers,
    )
    assert again.status_code == 409
    assert "marked not duplicates" in again.json()["detail"]
    marked = world.client.post(
        f"/api/v1/incidents/{survivor}/not-duplicate",
        json={"other": third, "reason": "autre trottoir"},
        headers=headers,
    )
    assert marked.json() == {"incident_id": survivor, "other": third, "marked": True}
    twice = world.client.post(
        f"/api/v1/incidents/{third}/not-duplicate",
        json={"other": survivor, "reason": "autre trottoir"},
        headers=headers,
    )
    assert twice.json()["marked"] is False
    itself = world.client.post(
        f"/api/v1/incidents/{third}/merge", json={"into": third, "reason": "x"}, headers=headers
    )
    assert itself.status_code == 400
    assert itself.json()["field"] == "into"
