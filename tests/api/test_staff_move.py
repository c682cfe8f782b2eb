"""Moving an incident's pin (issue 16) on every backend: the new point is snapped and its
zones looked up as intake does, the city's rules route the incident again from there
(team, priority, due date, an assignment naming the rule, a notice to a new team), and
the history says where it moved from and to and what routing decided. Real places: a
graffiti of the sample moved into the Bois de Vincennes goes to the parks department by
the city's zone rule, and back on its street to the team its street's rules name."""

from __future__ import annotations

import numpy as np
import pytest
from staffworld import OTHER_TEAM, OWN_TEAM, StaffWorld

from voirie.errors import Forbidden, InvalidInput
from voirie.model import EventKind
from voirie.notify.outbox import team_channels
from voirie.services.auth import Principal, Role
from voirie.services.staff_edits import move
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


def _graffiti(world: StaffWorld) -> int:
    """An incident of the agent's team (graffiti removal), outside any park."""
    incidents = world.pipeline.reads.incidents(Selection(teams=(OWN_TEAM,)))
    outside = incidents[incidents[f"zone_{PARK_LAYER}"].isna()]
    return int(outside["incident_id"].iloc[0])


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
