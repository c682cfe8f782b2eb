"""The OpenAPI document lists the city's values, and the server takes exactly those.

Each declared pattern or enum is read back from ``/openapi.json`` and tried (with
Python's ``re``, which reads these patterns as JSON Schema's ECMA 262 does) against the
city's own values and against values city.yaml does not have; the server is asked the
same and must agree.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient
from open311_support import API, Served

from voirie.api.openapi_city import list_of
from voirie.city import City


def _parameter(document: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    (found,) = [p for p in document["paths"][path]["get"]["parameters"] if p["name"] == name]
    schema: dict[str, Any] = found["schema"]
    return next(b for b in schema.get("anyOf", [schema]) if b.get("type") != "null")


def _fullmatch(pattern: str, text: str) -> bool:
    return re.search(pattern, text) is not None


def test_lists_are_comma_separated_blanks_and_spaces_ignored() -> None:
    pattern = list_of(["a-1", "b.2"])
    for text in ("", "a-1", " a-1 , b.2", "a-1,,b.2,", ","):
        assert _fullmatch(pattern, text), text
    for text in ("a", "a-12", "a-1;b.2", "b:2", "a-1 b.2"):
        assert not _fullmatch(pattern, text), text


def test_export_filters_take_exactly_the_city_values(city_served: Served, paris: City) -> None:
    client: TestClient = city_served.client
    document = client.get("/openapi.json").json()
    path = "/exports/{layer}.{fmt}"
    cases = {
        "team": (sorted(paris.teams)[:3], "nobody"),
        "service": (sorted(paris.services)[:3], "nid-de-poule"),
        "status": (["new", "closed"], "open"),
        "zone": (["arrondissement:75110", "quartier:7511038"], "commune:75056"),
    }
    for name, (known, unknown) in cases.items():
        pattern = _parameter(document, path, name)["pattern"]
        listed = ",".join(known) if name != "zone" else known[0]
        assert _fullmatch(pattern, listed), (name, listed)
        assert client.get("/exports/incidents.csv", params={name: listed}).status_code == 200
        assert not _fullmatch(pattern, unknown), (name, unknown)
        refused = client.get("/exports/incidents.csv", params={name: unknown})
        assert refused.status_code == 400
        assert refused.json()["field"] == name
    crs = _parameter(document, path, "crs")["enum"]
    assert set(crs) == {"EPSG:4326", "OGC:CRS84", "EPSG:2154", "EPSG:3857"}
    for listed in crs:
        answer = client.get("/exports/incidents.csv", params={"crs": listed, "status": "closed"})
        assert answer.status_code == 200, (listed, answer.text)


def test_staff_and_open311_values_come_from_city_yaml(city_served: Served, paris: City) -> None:
    document = city_served.client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert set(schemas["Reassignment"]["properties"]["team"]["enum"]) == set(paris.teams)
    zone = _parameter(document, "/api/v1/incidents", "zone")["pattern"]
    assert _fullmatch(zone, "quartier:7511038")
    assert not _fullmatch(zone, "commune:75056")
    assert set(_parameter(document, "/maps/dispatch", "team")["enum"]) == set(paris.teams)
    definition = _parameter(document, f"{API}/services/{{service_code}}.{{fmt}}", "service_code")
    assert set(definition["enum"]) == set(paris.services)
    jurisdiction = _parameter(document, f"{API}/services.{{fmt}}", "jurisdiction_id")
    assert jurisdiction["enum"] == [paris.jurisdiction_id]
    body = document["paths"][f"{API}/requests.{{fmt}}"]["post"]["requestBody"]["content"]
    for media in body.values():
        assert set(media["schema"]["properties"]["service_code"]["enum"]) == set(paris.services)
    status = _parameter(document, f"{API}/requests.{{fmt}}", "status")["pattern"]
    for text in ("open", "closed", " open , closed", ",open"):
        assert _fullmatch(status, text), text
    for text in ("", ",", "fixed", "Open"):
        assert not _fullmatch(status, text), text
        answer = city_served.client.get(f"{API}/requests.json", params={"status": text})
        assert answer.status_code == 400, text
    updates = document["paths"][f"{API}/servicerequestupdates.{{fmt}}"]["post"]["requestBody"]
    for media in updates["content"].values():
        pattern = media["schema"]["properties"]["status"]["pattern"]
        assert _fullmatch(pattern, "FIXED")
        assert _fullmatch(pattern, "In_Progress")
        assert not _fullmatch(pattern, "done")


def test_tile_coordinates_are_bounded(city_served: Served) -> None:
    document = city_served.client.get("/openapi.json").json()
    path = "/tiles/incidents/{z}/{x}/{y}.mvt"
    z = document["paths"][path]["get"]["parameters"][0]["schema"]
    assert (z["minimum"], z["maximum"]) == (0, 22)
    assert city_served.client.get("/tiles/incidents/23/0/0.mvt").status_code == 400
