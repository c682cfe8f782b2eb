"""Moving an incident's pin (issue 16) on every backend: the new point is snapped and its
zones looked up as intake does, the city's rules route the incident again from there
(team, priority, due date, an assignment naming the rule, a notice to a new team), and
the history says where it moved from and to and what routing decided. Real places: a
graffiti of the sample moved into the Bois de Vincennes goes to the parks department by
the city's zone rule, and back on its street to the team its street's rules name.

The incident's zones are where it stands now: moved across an arrondissement boundary,
it is found under its new arrondissement by the queue, the staff API, OGC CQL2 filters
and the exports, and its case page says so. A team given by a person (a dispatcher's
reassignment) stays through a move and a change of category; the history says what the
rules would have decided."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pytest
from boundaries import across_the_boundary, unaligned_incident
from fastapi.testclient import TestClient
from staffworld import OTHER_TEAM, OWN_TEAM, PASSWORD, StaffWorld, signed_in

from voirie.errors import Forbidden, InvalidInput
from voirie.model import EventKind
from voirie.notify.escalation import ESCALATION_ACTOR
from voirie.notify.outbox import team_channels
from voirie.services.auth import Principal, Role
from voirie.services.staff_edits import move, recategorize
from voirie.services.staff_users import add_user
from voirie.services.workflow import assigned_by_rules, reassign
from voirie.store.base import AssignmentRecord
from voirie.store.selection import Selection

PARK_LAYER, PARK = "espace_vert", "10132"  # the Bois de Vincennes in the city's layer
PARK_RULE = "zone-graffitis-tags-affiches-espace_vert-10132"
PARK_TEAM = "DEVE"
DISPATCHER = Principal("Dominique", Role.DISPATCHER)
AGENT = Principal("Alex", Role.AGENT, frozenset({OWN_TEAM}))


def _park_point(world: StaffWorld) -> tuple[float, float]:
    """A point inside the Bois de Vincennes (WGS84), from the city's zone layer."""
    zones = world.pipeline.gis.zones[PARK_LAYER].zones
    park = zones[zones["code"].astype(str) == PARK].to_crs(4326)
    point = park.representative_point().iloc[0]
    return float(point.x), float(point.y)


def _graffiti(world: StaffWorld, n: int = 0) -> int:
    """The ``n``-th incident of the agent's team (graffiti removal) outside any park, as
    imported (each test moves its own)."""
    incidents = world.incidents[world.incidents["team"] == OWN_TEAM]
    outside = incidents[incidents[f"zone_{PARK_LAYER}"].isna()]
    return int(outside["incident_id"].iloc[n])


def _events(world: StaffWorld, incident_id: int) -> list[tuple[str, str]]:
    found = world.pipeline.reads.lookup("events", "entity_id", [incident_id])
    found = found[found["entity"] == "incident"].sort_values("id")
    return [(str(k), str(r)) for k, r in zip(found["kind"], found["reason"], strict=True)]


def _assignments(world: StaffWorld, incident_id: int) -> list[dict[str, object]]:
    found = world.pipeline.reads.lookup("assignments", "incident_id", [incident_id])
    return found.sort_values("id").to_dict("records")


def test_a_move_into_a_park_routes_the_incident_to_the_parks(world: StaffWorld) -> None:
    pipeline = world.pipeline
    incident_id = _graffiti(world)
    before = pipeline.reads.incidents(Selection(ids=(incident_id,))).iloc[0]
    assert before["team"] == OWN_TEAM
    lon, lat = _park_point(world)
    events, assignments = _events(world, incident_id), _assignments(world, incident_id)

    # The agent may correct the pin, not hand the incident to another team: refused whole.
    with pytest.raises(Forbidden, match="reassign"):
        move(pipeline, AGENT, incident_id, lon, lat, "dans le bois")
    assert _events(world, incident_id) == events
    assert len(_assignments(world, incident_id)) == len(assignments)
    unchanged = pipeline.reads.incidents(Selection(ids=(incident_id,))).iloc[0]
    assert (unchanged["lon"], unchanged["team"]) == (before["lon"], OWN_TEAM)

    moved = move(pipeline, DISPATCHER, incident_id, lon, lat, "dans le bois, allée nord")
    assert moved.zones[PARK_LAYER] == PARK
    assert (moved.previous_team, moved.team, moved.rule_id) == (OWN_TEAM, PARK_TEAM, PARK_RULE)
    after = pipeline.reads.incidents(Selection(ids=(incident_id,))).iloc[0]
    assert after["team"] == PARK_TEAM
    assert after["rule_id"] == PARK_RULE
    assert after["routing_reason"] == moved.routing_reason
    assert (after["lon"], after["lat"]) == pytest.approx((lon, lat))
    # The parks' team finds it on its own map, where the pin now is.
    box = (lon - 0.001, lat - 0.001, lon + 0.001, lat + 0.001)
    near = pipeline.reads.incidents(Selection(teams=(PARK_TEAM,), bbox=box))
    assert incident_id in set(near["incident_id"])

    newest = _assignments(world, incident_id)[-1]
    assert (newest["team"], newest["rule_id"], newest["actor"]) == (
        PARK_TEAM,
        PARK_RULE,
        DISPATCHER.name,
    )
    history = _events(world, incident_id)[len(events) :]
    assert [kind for kind, _ in history] == [EventKind.ENRICHED.value, EventKind.ROUTED.value]
    assert f"{PARK_LAYER} ? → {PARK}" in history[0][1]
    assert history[0][1].endswith(": dans le bois, allée nord")
    assert f"team {OWN_TEAM} → {PARK_TEAM}" in history[1][1]
    outbox = pipeline.reads.lookup("outbox", "entity_id", [incident_id])
    notices = outbox[(outbox["entity"] == "incident") & (outbox["kind"] == "reassigned")]
    # The parks are told, on every way the city gives to reach them (none in Paris's file).
    reach = team_channels(pipeline.city, PARK_TEAM)
    assert sorted(zip(notices["channel"], notices["target"], strict=True)) == sorted(reach)

    # Back on its street: its street's rules decide again, as for a new report there.
    back = move(
        pipeline,
        DISPATCHER,
        incident_id,
        float(before["lon"]),
        float(before["lat"]),
        "erreur, le tag est bien dans la rue",
    )
    assert back.zones[PARK_LAYER] is None
    assert back.team == OWN_TEAM
    assert back.street_name == before["street_name"]
    assert back.segment_id == before["segment_id"]


def test_a_move_on_the_same_street_keeps_the_team_and_records_the_decision(
    world: StaffWorld,
) -> None:
    pipeline = world.pipeline
    incident_id = _graffiti(world)
    spot = pipeline.reads.incidents(Selection(ids=(incident_id,))).iloc[0]
    count = len(_assignments(world, incident_id))
    # A few metres along the street: the agent's own correction, allowed.
    lon, lat = float(spot["lon"]) + 0.00005, float(spot["lat"])
    moved = move(pipeline, AGENT, incident_id, lon, lat, "devant le n° 12")
    assert moved.team == OWN_TEAM == moved.previous_team
    snapped = pipeline.gis.enrich(np.array([lon]), np.array([lat])).iloc[0]
    assert moved.segment_id == snapped["segment_id"]
    assert moved.street_name == snapped["street_name"]
    assignments = _assignments(world, incident_id)
    assert len(assignments) == count + 1
    assert assignments[-1]["rule_id"] == moved.rule_id is not None
    kinds = [kind for kind, _ in _events(world, incident_id)[-2:]]
    assert kinds == [EventKind.ENRICHED.value, EventKind.ROUTED.value]


def test_a_move_is_refused_outside_the_city_or_scope(world: StaffWorld) -> None:
    pipeline = world.pipeline
    incident_id = _graffiti(world)
    with pytest.raises(InvalidInput, match="lon"):
        move(pipeline, DISPATCHER, incident_id, 2.2, 48.6, "ailleurs")  # Essonne
    with pytest.raises(InvalidInput, match="reason"):
        move(pipeline, DISPATCHER, incident_id, 2.35, 48.85, "   ")
    other = int(world.incidents.loc[world.incidents["team"] == OTHER_TEAM, "incident_id"].iloc[0])
    spot = world.incidents.set_index("incident_id").loc[other]
    with pytest.raises(Forbidden):
        move(pipeline, AGENT, other, float(spot["lon"]), float(spot["lat"]), "ici")


ARRONDISSEMENT = "arrondissement"


@pytest.fixture(scope="module")
def dispatcher(world: StaffWorld) -> TestClient:
    """A dispatcher signed in on the staff pages (a session of the module's world)."""
    add_user(
        world.pipeline.store,
        world.pipeline.city.jurisdiction_id,
        "dispatcher",
        "dispatcher",
        (),
        PASSWORD,
    )
    return signed_in(world, "dispatcher")


def _csrf(client: TestClient) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get("/staff/").text)
    assert found is not None
    return found.group(1)


def _csv_rows(client: TestClient, path: str) -> dict[str, dict[str, str]]:
    """The rows of a CSV export, by their first column (the layer's id)."""
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    key = next(iter(rows[0]))
    return {row[key]: row for row in rows}


def _found(world: StaffWorld, client: TestClient, incident_id: int, code: str) -> dict[str, bool]:
    """Whether each zone filter of the incidents finds the incident under arrondissement
    ``code``: the queue, the staff API, an OGC CQL2 filter and the CSV download."""
    zone = f"{ARRONDISSEMENT}:{code}"
    queue = client.get("/staff/api/queue", params={"zone": zone, "status": "all", "limit": 200})
    api = world.client.get(
        "/api/v1/incidents",
        params={"zone": zone, "limit": 200},
        headers=world.headers("dispatcher"),
    )
    ogc = world.client.get(
        "/ogc/collections/incidents/items",
        params={"filter": f"zone_{ARRONDISSEMENT} = '{code}'", "limit": 10000},
    )
    export = _csv_rows(world.client, f"/exports/incidents.csv?zone={zone}")
    for answer in (queue, api, ogc):
        assert answer.status_code == 200, answer.text
    return {
        "queue": incident_id in {i["incident_id"] for i in queue.json()["incidents"]},
        "api": incident_id in {i["incident_id"] for i in api.json()["incidents"]},
        "ogc": incident_id in {f["id"] for f in ogc.json()["features"]},
        "export": str(incident_id) in export,
    }


def _case_page_zone(client: TestClient, incident_id: int) -> str:
    """The arrondissement the case page shows in its summary, checked against the data
    its script reads."""
    page = client.get(f"/staff/incidents/{incident_id}")
    assert page.status_code == 200, page.text
    found = re.search(r'<script type="application/json" id="voirie-data">(.*?)</script>', page.text)
    assert found is not None
    code = str(json.loads(found.group(1))["incident"]["zones"][ARRONDISSEMENT])
    shown = re.search(r'<dt>Arrondissement</dt><dd class="voirie-zone">([^<]*)</dd>', page.text)
    assert shown is not None
    assert shown.group(1) == code
    return code


def test_a_pin_moved_across_an_arrondissement_is_found_in_its_new_one(
    world: StaffWorld, dispatcher: TestClient
) -> None:
    incident_id = unaligned_incident(world.pipeline)
    spot = world.pipeline.reads.incidents(Selection(ids=(incident_id,))).iloc[0]
    old = str(spot[f"zone_{ARRONDISSEMENT}"])
    gis = world.pipeline.gis
    lon, lat = across_the_boundary(gis, ARRONDISSEMENT, float(spot["lon"]), float(spot["lat"]))
    exported = _csv_rows(world.client, "/exports/incidents.csv")
    reports = _csv_rows(world.client, "/exports/reports.csv")
    assert _found(world, dispatcher, incident_id, old) == dict.fromkeys(
        ("queue", "api", "ogc", "export"), True
    )
    assert _case_page_zone(dispatcher, incident_id) == old

    answer = dispatcher.post(
        f"/staff/api/incidents/{incident_id}/location",
        json={"lon": lon, "lat": lat, "reason": "le tag est sur l'autre trottoir"},
        headers={"X-CSRF-Token": _csrf(dispatcher)},
    )
    assert answer.status_code == 200, answer.text
    new = answer.json()["zones"][ARRONDISSEMENT]
    assert new not in (None, old)

    everywhere = dict.fromkeys(("queue", "api", "ogc", "export"), True)
    assert _found(world, dispatcher, incident_id, new) == everywhere
    assert _found(world, dispatcher, incident_id, old) == dict.fromkeys(everywhere, False)
    assert _case_page_zone(dispatcher, incident_id) == new
    # The whole-layer downloads: the moved incident in its new zone (GeoJSON, CSV); every
    # other incident exactly as before; its reports keep the zone they were made in.
    geojson = world.client.get("/exports/incidents.geojson").json()
    (feature,) = [f for f in geojson["features"] if f["id"] == incident_id]
    assert feature["properties"][f"zone_{ARRONDISSEMENT}"] == new
    after = _csv_rows(world.client, "/exports/incidents.csv")
    zone_column = next(k for k in after[str(incident_id)] if ARRONDISSEMENT in k.lower())
    assert after[str(incident_id)][zone_column] == new
    assert exported[str(incident_id)][zone_column] == old
    assert {k: v for k, v in after.items() if k != str(incident_id)} == {
        k: v for k, v in exported.items() if k != str(incident_id)
    }
    assert _csv_rows(world.client, "/exports/reports.csv") == reports


def test_a_dispatchers_reassignment_stays_through_a_move_and_a_category_change(
    world: StaffWorld,
) -> None:
    pipeline = world.pipeline
    incident_id = _graffiti(world, 2)
    reassign(
        pipeline.store, pipeline.city, incident_id, DISPATCHER, OTHER_TEAM, "c'est leur secteur"
    )
    before = pipeline.reads.incidents(Selection(ids=(incident_id,))).iloc[0]
    count = len(_assignments(world, incident_id))
    lon, lat = _park_point(world)

    # The rules would give it to the parks from there: the dispatcher's team stays.
    moved = move(pipeline, DISPATCHER, incident_id, lon, lat, "dans le bois")
    assert (moved.team, moved.kept_by) == (OTHER_TEAM, DISPATCHER.name)
    assert (moved.rule_id, moved.zones[PARK_LAYER]) == (PARK_RULE, PARK)
    after = pipeline.reads.incidents(Selection(ids=(incident_id,))).iloc[0]
    for column in ("team", "priority", "due_at", "rule_id", "routing_reason"):
        assert after[column] == before[column] or (after[column] is before[column] is None)
    assert after[f"zone_{PARK_LAYER}"] == PARK  # the place and zones are corrected all the same
    assert len(_assignments(world, incident_id)) == count
    kind, words = _events(world, incident_id)[-1]
    assert kind == EventKind.ROUTED.value
    assert f"team {OTHER_TEAM} kept (assigned by {DISPATCHER.name}" in words
    assert f"the rules would now say: {moved.routing_reason}" in words
    assert PARK_RULE in words

    # Another graffiti category: the rules name the parks again, the team stays.
    other = next(
        code
        for code, service in sorted(pipeline.city.services.items())
        if service.group == "graffitis-tags-affiches" and code != before["service_code"]
    )
    rerouted = recategorize(pipeline, DISPATCHER, incident_id, other, "tag, pas affiche")
    assert (rerouted.team, rerouted.kept_by, rerouted.rule_id) == (
        OTHER_TEAM,
        DISPATCHER.name,
        PARK_RULE,
    )
    after = pipeline.reads.incidents(Selection(ids=(incident_id,))).iloc[0]
    assert (after["service_code"], after["team"]) == (other, OTHER_TEAM)
    assert len(_assignments(world, incident_id)) == count
    assert f"team {OTHER_TEAM} kept" in _events(world, incident_id)[-1][1]
    outbox = pipeline.reads.lookup("outbox", "entity_id", [incident_id])
    assert not len(outbox[(outbox["entity"] == "incident") & (outbox["kind"] == "reassigned")])


@pytest.mark.parametrize(
    ("current", "by_rules"),
    [
        (AssignmentRecord(OWN_TEAM, PARK_RULE, 3, "voirie"), True),
        # The city's default team, given by the rules on a move: routing again may change it.
        (AssignmentRecord(OWN_TEAM, None, 0, DISPATCHER.name), True),
        (AssignmentRecord(OTHER_TEAM, None, None, DISPATCHER.name), False),  # a reassignment
        (AssignmentRecord(PARK_TEAM, None, None, ESCALATION_ACTOR), False),  # an escalation
        (None, True),
    ],
)
def test_only_what_the_rules_decided_is_routed_again(
    current: AssignmentRecord | None, by_rules: bool
) -> None:
    assert assigned_by_rules(current) is by_rules
