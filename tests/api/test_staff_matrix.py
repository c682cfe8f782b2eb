"""The authorization matrix: every role × every staff route × own/other team, allowed or
denied, on every backend; and no public response ever contains reporter contact data.

The expected table is written out by hand (not derived from ``voirie.services.auth.PERMISSIONS``),
so a change of the rules in code that is not also made here fails.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from staffworld import CONTACT_MARKERS, OTHER_TEAM, OWN_TEAM, StaffWorld

from voirie.city import TRIAGE_TEAM
from voirie.services import merging
from voirie.store.selection import Selection

THIRD_TEAM = "DVD"  # neither the agent's team nor the other one
# Open311 lists the last 90 days by default; the sample is from summer 2023.
SAMPLE_DATES = "start_date=2023-07-01T00:00:00Z&end_date=2023-09-01T00:00:00Z"
ROLES = ("admin", "dispatcher", "agent", "gis", "client")
Y, N = True, False


Fresh = Callable[[str], int]
"""A team -> an incident of that team no earlier call has touched."""


@dataclass(frozen=True)
class StaffRoute:
    """One staff route as the matrix calls it on an incident of a team."""

    name: str
    method: str
    path: str
    """The route's path template, as declared in the app."""
    call: Callable[[StaffWorld, int, Fresh, str], tuple[str, dict[str, Any] | None]]
    """(world, incident id, fresh, team) -> (URL, JSON body)."""
    writes: bool = True
    found: tuple[int, ...] = (200, 201)
    """The answers of an allowed call."""


def _report_of(world: StaffWorld, incident_id: int) -> int:
    reports = world.pipeline.reads.reports(Selection(incident_ids=(incident_id,)))
    return int(reports["report_id"].iloc[-1])


def _splittable(world: StaffWorld, incident_id: int, fresh: Fresh, team: str) -> str:
    """The split URL of a report of ``incident_id``; for a real split (a fresh incident),
    another fresh incident of the team is first merged into it so it has two reports."""
    if incident_id not in world.incident_ids(team)[-3:]:
        merging.merge(world.pipeline, incident_id, fresh(team), "matrix setup", "two reports")
    reports = world.pipeline.reads.reports(Selection(incident_ids=(incident_id,)))
    return f"/api/v1/reports/{int(reports['report_id'].iloc[-1])}/split"


ROUTES = (
    StaffRoute(
        "list",
        "GET",
        "/api/v1/incidents",
        lambda w, i, fresh, team: (f"/api/v1/incidents?team={team}", None),
        writes=False,
    ),
    StaffRoute(
        "detail",
        "GET",
        "/api/v1/incidents/{incident_id}",
        lambda w, i, fresh, team: (f"/api/v1/incidents/{i}", None),
        writes=False,
    ),
    StaffRoute(
        "status",
        "POST",
        "/api/v1/incidents/{incident_id}/status",
        lambda w, i, fresh, team: (
            f"/api/v1/incidents/{i}/status",
            {"status": "acknowledged", "reason": "matrix"},
        ),
    ),
    StaffRoute(
        "assign",
        "POST",
        "/api/v1/incidents/{incident_id}/assignment",
        lambda w, i, fresh, team: (
            f"/api/v1/incidents/{i}/assignment",
            {"team": THIRD_TEAM, "reason": "matrix"},
        ),
    ),
    StaffRoute(
        "hand back",
        "POST",
        "/api/v1/incidents/{incident_id}/assignment",
        lambda w, i, fresh, team: (
            f"/api/v1/incidents/{i}/assignment",
            {"team": TRIAGE_TEAM, "reason": "matrix"},
        ),
    ),
    StaffRoute(
        "comment",
        "POST",
        "/api/v1/incidents/{incident_id}/comments",
        lambda w, i, fresh, team: (f"/api/v1/incidents/{i}/comments", {"text": "matrix"}),
    ),
    StaffRoute(
        "merge",
        "POST",
        "/api/v1/incidents/{incident_id}/merge",
        lambda w, i, fresh, team: (
            f"/api/v1/incidents/{i}/merge",
            {"into": fresh(team), "reason": "matrix"},
        ),
    ),
    StaffRoute(
        "split",
        "POST",
        "/api/v1/reports/{report_id}/split",
        lambda w, i, fresh, team: (_splittable(w, i, fresh, team), {"reason": "matrix"}),
    ),
    StaffRoute(
        "not duplicate",
        "POST",
        "/api/v1/incidents/{incident_id}/not-duplicate",
        lambda w, i, fresh, team: (
            f"/api/v1/incidents/{i}/not-duplicate",
            {"other": fresh(team), "reason": "matrix"},
        ),
    ),
    StaffRoute(
        "moderation",
        "GET",
        "/api/v1/moderation/reports/{report_id}",
        lambda w, i, fresh, team: (f"/api/v1/moderation/reports/{_report_of(w, i)}", None),
        writes=False,
    ),
    StaffRoute(
        "moderate",
        "POST",
        "/api/v1/moderation/reports/{report_id}",
        lambda w, i, fresh, team: (
            f"/api/v1/moderation/reports/{_report_of(w, i)}",
            {"reason": "matrix", "text": "hide"},
        ),
    ),
    StaffRoute(
        "hidden photo",
        "GET",
        "/api/v1/moderation/photos/{name}",
        lambda w, i, fresh, team: ("/api/v1/moderation/photos/" + "0" * 64 + ".jpg", None),
        writes=False,
        # Authorized, then no such hidden photo (the sample has none): the authorization
        # is what this table checks.
        found=(404,),
    ),
)
_MODERATION = ("moderation", "moderate", "hidden photo")
_STAFF_ONLY = {
    "merge": (Y, Y),
    "split": (Y, Y),
    "not duplicate": (Y, Y),
    **dict.fromkeys(_MODERATION, (Y, Y)),
}
_NOBODY = {
    "merge": (N, N),
    "split": (N, N),
    "not duplicate": (N, N),
    **dict.fromkeys(_MODERATION, (N, N)),
}

# role -> route -> (allowed on the agent's own team's incident, on another team's).
EXPECTED: dict[str, dict[str, tuple[bool, bool]]] = {
    "admin": {
        "list": (Y, Y),
        "detail": (Y, Y),
        "status": (Y, Y),
        "assign": (Y, Y),
        "hand back": (Y, Y),
        "comment": (Y, Y),
        **_STAFF_ONLY,
    },
    "dispatcher": {
        "list": (Y, Y),
        "detail": (Y, Y),
        "status": (Y, Y),
        "assign": (Y, Y),
        "hand back": (Y, Y),
        "comment": (Y, Y),
        **_STAFF_ONLY,
    },
    "agent": {
        "list": (Y, N),
        "detail": (Y, N),
        "status": (Y, N),
        "assign": (N, N),
        "hand back": (Y, N),
        "comment": (Y, N),
        **_NOBODY,
    },
    "gis": {
        "list": (Y, Y),
        "detail": (Y, Y),
        "status": (N, N),
        "assign": (N, N),
        "hand back": (N, N),
        "comment": (N, N),
        **_NOBODY,
    },
    "client": {
        "list": (N, N),
        "detail": (N, N),
        "status": (N, N),
        "assign": (N, N),
        "hand back": (N, N),
        "comment": (N, N),
        **_NOBODY,
    },
}
# Who sees reporters' contact data in a case file: (own team, other team).
CONTACTS_VISIBLE = {"admin": (Y, Y), "dispatcher": (Y, Y), "agent": (Y, N), "gis": (N, N)}


def test_the_matrix_covers_every_staff_route(world: StaffWorld) -> None:
    # Every operation the app documents under the staff tag (the OpenAPI document lists
    # every route, wherever its router was included).
    paths = world.client.get("/openapi.json").json()["paths"]
    declared = {
        (method.upper(), path)
        for path, item in paths.items()
        for method, operation in item.items()
        if "staff" in operation.get("tags", [])
    }
    assert declared == {(r.method, r.path) for r in ROUTES}
    assert set(EXPECTED) == set(ROLES)
    assert all(set(row) == {r.name for r in ROUTES} for row in EXPECTED.values())


def test_every_role_on_every_route_for_own_and_other_team(world: StaffWorld) -> None:
    # Allowed writes each get a fresh incident, so the workflow never refuses them; refused
    # writes all aim at one bystander incident per team, which must stay untouched. The
    # last incidents of each team are kept for reads.
    unused = {team: iter(world.incident_ids(team)[:-3]) for team in (OWN_TEAM, OTHER_TEAM)}

    def fresh(team: str) -> int:
        return next(unused[team])

    bystander = {team: world.incident_ids(team)[-3] for team in (OWN_TEAM, OTHER_TEAM)}
    before = {
        team: world.pipeline.reads.incidents(Selection(ids=(i,))).iloc[0]
        for team, i in bystander.items()
    }
    outcomes: dict[tuple[str, str, str], int] = {}
    for role in ROLES:
        for route in ROUTES:
            for team, allowed in zip(
                (OWN_TEAM, OTHER_TEAM), EXPECTED[role][route.name], strict=True
            ):
                if not route.writes:
                    incident_id = world.incident_ids(team)[-1]
                else:
                    incident_id = fresh(team) if allowed else bystander[team]
                url, body = route.call(world, incident_id, fresh, team)
                response = world.client.request(
                    route.method, url, json=body, headers=world.headers(role)
                )
                outcomes[(role, route.name, team)] = response.status_code
                where = (role, route.name, team, response.text)
                if allowed:
                    assert response.status_code in route.found, where
                else:
                    assert response.status_code == 403, where
                    assert response.json()["title"] == "Forbidden"
    assert len(outcomes) == len(ROLES) * len(ROUTES) * 2
    # The refused writes left nothing behind: no event, same status, team and reports.
    j = world.pipeline.city.jurisdiction_id
    for team, incident_id in bystander.items():
        reports = world.pipeline.reads.reports(Selection(incident_ids=(incident_id,)))
        history = world.pipeline.store.lookup(
            "events", j, "entity_id", [incident_id, *reports["report_id"]]
        )
        assert set(history["actor"]) == {"voirie"}, team
        after = world.pipeline.reads.incidents(Selection(ids=(incident_id,))).iloc[0]
        for column in ("status", "team", "report_count", "updated_at"):
            assert after[column] == before[team][column], (team, column)


def test_contact_data_only_for_staff_who_may_see_the_incident(world: StaffWorld) -> None:
    for role, (own, other) in CONTACTS_VISIBLE.items():
        for team, visible in ((OWN_TEAM, own), (OTHER_TEAM, other)):
            incident_id = world.incident_ids(team)[-2]
            response = world.client.get(
                f"/api/v1/incidents/{incident_id}", headers=world.headers(role)
            )
            if role == "agent" and team == OTHER_TEAM:
                assert response.status_code == 403
                assert not any(m in response.text for m in CONTACT_MARKERS)
                continue
            assert response.status_code == 200, (role, team)
            body = response.json()
            assert body["contacts_visible"] is visible, (role, team)
            shown = [r["contact"] for r in body["reports"]]
            if visible:
                assert all(c and c["email"].endswith("@exemple.invalid") for c in shown)
            else:
                assert shown == [None] * len(shown)
                assert not any(m in response.text for m in CONTACT_MARKERS), (role, team)
    # Lists never carry contact data, whoever asks.
    for role in ("admin", "dispatcher", "agent", "gis"):
        listed = world.client.get(
            "/api/v1/incidents", params={"limit": 1000}, headers=world.headers(role)
        )
        assert listed.status_code == 200
        assert not any(m in listed.text for m in CONTACT_MARKERS), role


STREET = b"Oberkampf"  # the street of the first report: shows a response carries the data
UPDATE = "passage prevu jeudi"  # the reason of a status change, published as an Open311 update


def _public_urls(world: StaffWorld) -> dict[str, bytes | None]:
    """Every public GET the app serves over the imported data (no token needed), with what
    its answer must contain, so that a pass is never an empty page."""
    report = world.pipeline.reads.reports(Selection(limit=1)).iloc[0]
    report_id, incident_id = int(report["report_id"]), int(report["incident_id"])
    lon, lat = float(report["lon"]), float(report["lat"])
    urls: dict[str, bytes | None] = {
        f"/exports/{layer}.{fmt}": STREET if fmt in ("geojson", "csv") else None
        for layer in ("reports", "incidents")
        for fmt in ("geojson", "csv", "gpkg", "zip")
    }
    return urls | {
        "/exports/voirie.qgs": None,
        "/ogc/collections": None,
        "/ogc/collections/reports": None,
        "/ogc/collections/reports/items?limit=1000": STREET,
        "/ogc/collections/incidents/items?limit=1000": STREET,
        f"/ogc/collections/reports/items/{report_id}": STREET,
        f"/ogc/collections/incidents/items/{incident_id}": STREET,
        f"/open311/v2/requests.json?{SAMPLE_DATES}": STREET,
        f"/open311/v2/requests.xml?{SAMPLE_DATES}": STREET,
        f"/open311/v2/requests/{report_id}.json": STREET,
        f"/open311/v2/requests/{report_id}.xml": STREET,
        "/open311/v2/servicerequestupdates.json": UPDATE.encode(),
        "/open311/v2/servicerequestupdates.xml": UPDATE.encode(),
        f"/api/v1/nearby?lat={lat}&lon={lon}&radius_m=2000": STREET,
        "/api/v1/geocode?q=126%20rue%20Oberkampf": STREET,
        "/tiles/incidents.json": None,
        "/tiles/incidents/12/2074/1409.mvt": None,
        "/maps/dispatch": None,
        "/maps/nearby": None,
    }


def _texts(body: bytes) -> list[bytes]:
    """The bytes to search: a zip's members, anything else as sent."""
    if body[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            return [archive.read(name) for name in archive.namelist()]
    return [body]


def test_no_public_response_contains_reporter_contact_data(world: StaffWorld) -> None:
    # A status change, so that the public updates feed has something to show.
    changed = world.client.post(
        f"/api/v1/incidents/{world.incident_ids(OTHER_TEAM)[-2]}/status",
        json={"status": "scheduled", "reason": UPDATE},
        headers=world.headers("dispatcher"),
    )
    assert changed.status_code == 200, changed.text
    urls = _public_urls(world)
    for url, evidence in urls.items():
        response = world.client.get(url)
        assert response.status_code == 200, (url, response.status_code, response.text[:300])
        assert len(response.content) > 0, url
        if evidence is not None:
            assert evidence in response.content, url
        for text in _texts(response.content):
            for marker in CONTACT_MARKERS:
                assert marker.encode() not in text, (url, marker)
    # The same data with contacts is there: the staff case file shows it to a dispatcher.
    incident_id = int(world.pipeline.reads.reports(Selection(limit=1)).iloc[0]["incident_id"])
    staff = world.client.get(
        f"/api/v1/incidents/{incident_id}", headers=world.headers("dispatcher")
    )
    assert "@exemple.invalid" in staff.text
