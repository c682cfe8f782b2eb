"""No staff name, token name or internal note reaches anything the public can fetch.

A dispatcher whose token is named after a person reassigns an incident with an internal
reason and comments on it; then every GET route of the app that answers without a token
(taken from the app's own OpenAPI document, plus the documentation pages) is fetched with
every value its path takes here, and no answer may contain the name, the reason, the
comment or any reporter contact data. A route whose path takes a parameter this test does
not know fails the test, so a new public route cannot slip past it.
"""

from __future__ import annotations

import re
import sqlite3
from itertools import product
from pathlib import Path
from typing import Any

import morecantile
import pandas as pd
import pytest
from pydantic import ValidationError
from staffworld import CONTACT_MARKERS, OTHER_TEAM, OWN_TEAM, StaffWorld

from voirie.city import City, Publication, load_city
from voirie.maps.ogc import collections
from voirie.services.auth import Role, issue_token
from voirie.services.workflow import public_reassignment
from voirie.store.base import Store
from voirie.store.selection import Selection

STAFF_NAME = "Jeanne Dupont"
INTERNAL_REASON = "dans un square"
INTERNAL_COMMENT = "voir avec Jeanne au dépôt"
SECRETS = (STAFF_NAME, INTERNAL_REASON, INTERNAL_COMMENT, *CONTACT_MARKERS)
GRIDS = ("WebMercatorQuad", "WorldCRS84Quad")
# Routes hidden from the OpenAPI document that anyone may still fetch.
UNDOCUMENTED = ("/openapi.json", "/docs", "/redoc", "/ogc/")


@pytest.fixture(scope="module")
def world(world: StaffWorld, paris: City) -> StaffWorld:
    """The Paris sample with contacts, one incident reassigned and commented by a person."""
    token = issue_token(
        world.pipeline.store, paris.jurisdiction_id, STAFF_NAME, Role.DISPATCHER, []
    )
    headers = {"Authorization": f"Bearer {token}"}
    incident_id = world.incident_ids(OWN_TEAM)[0]
    moved = world.client.post(
        f"/api/v1/incidents/{incident_id}/assignment",
        json={"team": OTHER_TEAM, "reason": INTERNAL_REASON},
        headers=headers,
    )
    assert moved.status_code == 200, moved.text
    commented = world.client.post(
        f"/api/v1/incidents/{incident_id}/comments",
        json={"text": INTERNAL_COMMENT},
        headers=headers,
    )
    assert commented.status_code == 201, commented.text
    return world


def _target(world: StaffWorld) -> tuple[dict[str, Any], list[int]]:
    """The reassigned incident (as stored now) and its reports' ids."""
    incident_id = world.incident_ids(OWN_TEAM)[0]
    incident = world.pipeline.reads.incidents(Selection(ids=(incident_id,))).iloc[0].to_dict()
    reports = world.pipeline.reads.reports(Selection(incident_ids=(incident_id,)))
    return incident, [int(i) for i in reports["report_id"]]


def _tiles(lon: float, lat: float, grid: str = "WebMercatorQuad") -> list[dict[str, str]]:
    """The tiles of a tile matrix set holding a point, at a clustered and an unclustered
    zoom."""
    tms = morecantile.tms.get(grid)
    tiles = (tms.tile(lon, lat, zoom) for zoom in (12, 17))
    return [{"z": str(t.z), "x": str(t.x), "y": str(t.y)} for t in tiles]


def _values(world: StaffWorld, path: str) -> list[dict[str, str]]:
    """Every combination of path values this test fetches ``path`` with."""
    incident, report_ids = _target(world)
    names = re.findall(r"{(\w+)}", path)
    tiles = _tiles(float(incident["lon"]), float(incident["lat"]))
    if path.startswith("/tiles/"):
        return tiles
    if "{tileMatrix}" in path:  # OGC API Tiles: the same tiles, and those in CRS84
        return [
            {
                "collectionId": "incidents",
                "tileMatrixSetId": grid,
                "tileMatrix": t["z"],
                "tileRow": t["y"],
                "tileCol": t["x"],
            }
            for grid in GRIDS
            for t in _tiles(float(incident["lon"]), float(incident["lat"]), grid)
        ]
    ids = [str(incident["incident_id"])]
    choices: dict[str, list[str]] = {
        "layer": ["incidents", "reports"],
        "fmt": ["json", "xml"] if path.startswith("/open311/") else ["geojson", "gpkg", "csv"],
        "collectionId": list(collections(world.pipeline)),
        "service_code": [str(incident["service_code"])],
        "service_request_id": [str(i) for i in report_ids],
        "report_id": [str(i) for i in report_ids],
        "token": ["no-such-token"],
        "name": ["no-such-file.jpg"],
        "incident_id": ids,
        "tileMatrixSetId": list(GRIDS),
    }
    unknown = [n for n in names if n not in choices and n != "featureId"]
    assert not unknown, f"{path}: no test value for {unknown}; add one to _values"
    combos = [
        dict(zip(names, c, strict=True)) for c in product(*(choices.get(n, [""]) for n in names))
    ]
    if "featureId" not in names:
        return combos
    features = {"incidents": ids, "reports": [str(i) for i in report_ids]}
    return [
        {**c, "featureId": f}
        for c in combos
        if c["collectionId"] in features
        for f in features[c["collectionId"]]
    ]


def _queries(path: str, incident: dict[str, Any], report_ids: list[int]) -> list[dict[str, str]]:
    """Query strings worth fetching a path with (the plain one first)."""
    near = {"lat": str(incident["lat"]), "lon": str(incident["lon"])}
    if path.startswith("/ogc"):
        return [{}, {"f": "html"}]
    if path == "/api/v1/nearby":
        return [{**near, "radius_m": "200"}]
    if path == "/maps/nearby":
        return [near, {**near, "lang": "en"}]
    if path.startswith("/maps/"):
        return [{}, {"lang": "en"}]
    if path == "/open311/v2/requests.{fmt}":
        ids = ",".join(str(i) for i in report_ids)
        return [{"service_request_id": ids}, {"lat": near["lat"], "long": near["lon"]}]
    if path == "/open311/v2/servicerequestupdates.{fmt}":
        return [{"start_date": "2000-01-01T00:00:00Z"}]
    if path == "/api/v1/geocode":
        return [{"q": str(incident["street_name"])}]
    return [{}]


def test_no_staff_name_or_internal_note_on_any_public_route(world: StaffWorld) -> None:
    client = world.client
    incident, report_ids = _target(world)
    assert incident["team"] == OTHER_TEAM
    assert incident["routing_reason"] == public_reassignment(world.pipeline.city)
    document = client.get("/openapi.json").json()
    paths = [p for p, ops in document["paths"].items() if "get" in ops]
    checked: list[str] = []
    for path in [*paths, *UNDOCUMENTED]:
        for values, query in product(_values(world, path), _queries(path, incident, report_ids)):
            url = path.format_map(values)
            response = client.get(url, params=query)
            if response.status_code in (401, 403):
                continue  # staff only
            assert response.status_code < 500, f"{url} {query}: {response.text[:300]}"
            body = response.content.decode("utf-8", errors="replace")
            for secret in SECRETS:
                assert secret not in body, f"{url} {query} shows {secret!r}"
            checked.append(url)
    # Every kind of public answer was looked at: layers, pages, tiles, Open311, exports.
    for expected in (
        "/ogc/collections/incidents/items",
        "/exports/incidents.gpkg",
        "/open311/v2/requests.xml",
        "/maps/dispatch",
        "/tiles/incidents/17/",
        "/ogc/collections/incidents/tiles/WebMercatorQuad/17/",
        "/ogc/collections/incidents/tiles/WorldCRS84Quad/17/",
        "/ogc/collections/incidents/queryables",
    ):
        assert any(url.startswith(expected) for url in checked), expected
    # Staff still see who reassigned it and why.
    staff = client.get(
        f"/api/v1/incidents/{incident['incident_id']}", headers=world.headers("dispatcher")
    ).json()
    assert any(
        e["actor"] == STAFF_NAME and INTERNAL_REASON in e["reason"] for e in staff["history"]
    )


def test_the_geopackage_download_holds_no_personal_data(world: StaffWorld, tmp_path: Path) -> None:
    """The GeoPackage a GIS officer is invited to open has only public columns and values."""
    for layer in ("reports", "incidents"):
        response = world.client.get(f"/exports/{layer}.gpkg")
        assert response.status_code == 200, response.text
        target = tmp_path / f"{layer}.gpkg"
        target.write_bytes(response.content)
        with sqlite3.connect(target) as db:
            tables = [r[0] for r in db.execute("SELECT table_name FROM gpkg_contents")]
            assert tables == [layer]
            columns = [r[1] for r in db.execute(f'PRAGMA table_info("{layer}")')]
            rows = db.execute(f'SELECT * FROM "{layer}"').fetchall()
        private = {"contact_name", "contact_email", "contact_phone", "device_id", "actor"}
        assert not private & set(columns), columns
        assert len(rows) == world.pipeline.reads.count(layer)
        text = repr(rows)
        for secret in SECRETS:
            assert secret not in text, f"{layer}.gpkg holds {secret!r}"


LEGACY_NAME = "Paul Legrand"
LEGACY_REASON = "derrière le kiosque"


def _run_sql(store: Store, text: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """One statement on the store's own database, committed: what a row written by an
    older voirie, or an operator, leaves behind."""
    if store.backend == "sqlite":
        conn = store.conn  # type: ignore[attr-defined]
        return list(conn.execute(text.replace("%s", "?"), params).fetchall())
    with store.pool.connection() as conn:  # type: ignore[attr-defined]
        cursor = conn.execute(text, params)
        return list(cursor.fetchall()) if cursor.description else []


def test_migration_0015_rewrites_reassignments_published_the_old_way(world: StaffWorld) -> None:
    """A reassignment stored before issue 15 item 7 ("reassigned by <token name>: <reason>")
    reads as the public wording once migration 0015 has run; who did it stays staff-only."""
    store = world.pipeline.store
    city = world.pipeline.city
    incident_id = world.incident_ids(OWN_TEAM)[1]
    with store.transaction(city.jurisdiction_id) as uow:
        (assignment_id,) = uow.tables.reserve_ids("assignments", 1)
        uow.tables.insert(
            "assignments",
            pd.DataFrame(
                {
                    "id": [int(assignment_id)],
                    "jurisdiction_id": city.jurisdiction_id,
                    "incident_id": incident_id,
                    "team": OTHER_TEAM,
                    "rule_id": None,
                    "rule_version": None,
                    "reason": f"reassigned by {LEGACY_NAME}: {LEGACY_REASON}",
                    "priority": 3,
                    "due_at": [pd.Timestamp("2030-01-01", tz="UTC")],
                    "assigned_at": pd.Timestamp.now(tz="UTC"),
                    "actor": LEGACY_NAME,
                }
            ),
        )
    _run_sql(store, "DELETE FROM voirie_migrations WHERE version = %s", (15,))
    before = world.pipeline.reads.incidents(Selection(ids=(incident_id,)))
    assert LEGACY_NAME in before.iloc[0]["routing_reason"]  # as an older voirie left it

    assert 15 in store.upgrade()

    after = world.pipeline.reads.incidents(Selection(ids=(incident_id,))).iloc[0]
    assert after["routing_reason"] == public_reassignment(city)
    reports = world.pipeline.reads.reports(Selection(incident_ids=(incident_id,)))
    ids = ",".join(str(i) for i in reports["report_id"])
    for url in (
        f"/ogc/collections/incidents/items/{incident_id}",
        f"/ogc/collections/incidents/items/{incident_id}?f=html",
        "/exports/incidents.csv",
        f"/open311/v2/requests.json?service_request_id={ids}",
    ):
        response = world.client.get(url)
        assert response.status_code == 200, response.text
        for secret in (LEGACY_NAME, LEGACY_REASON):
            assert secret not in response.text, f"{url} shows {secret!r}"
    actors = _run_sql(store, "SELECT actor FROM assignments WHERE id = %s", (int(assignment_id),))
    assert actors == [(LEGACY_NAME,)]


def test_the_public_wording_of_a_reassignment_is_the_citys(paris: City) -> None:
    """``publication.reassigned`` in city.yaml, in the city's locale; English, then the
    first wording given, for a locale the city wrote none in."""
    assert public_reassignment(paris) == "réaffecté par le service de dispatch"
    chicago = load_city("chicago")
    assert public_reassignment(chicago) == "reassigned by the city dispatch service"
    assert Publication().reassigned_text("en") == "reassigned by the dispatch service"
    assert Publication().reassigned_text("de") == "reassigned by the dispatch service"
    assert Publication(reassigned={"de": "neu zugewiesen"}).reassigned_text("fr") == (
        "neu zugewiesen"
    )
    with pytest.raises(ValidationError):
        Publication(reassigned={})
    with pytest.raises(ValidationError):
        Publication(reassigned={"fr": ""})
