"""Every bad input is a 4xx naming the field, never a 500, on both backends.

The inputs a hostile or broken client sends (found answering 500 before): NUL and other
control characters in query, path and body text (PostgreSQL refuses NUL), lone
surrogates in JSON (not encodable), JSON nested 100,000 deep, non-ASCII digits in ids,
numbers beyond 64 bits, a due date of year 9999. Each is sent through HTTP to the app on
a store of each backend holding 200 real Paris reports; the store is checked unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx2
import pytest
from databases import prepare_server, scratch_database
from open311_support import API, CARTONS, VALMY, Served, assert_error, serve

from voirie.city import City
from voirie.gis.enrich import CityGIS

# One route of each family, with the text parameter the bad value goes into.
QUERY_ROUTES = [
    ("/exports/reports.csv", "team"),
    ("/exports/incidents.geojson", "service"),
    ("/ogc/collections/incidents/items", "status"),
    ("/ogc/collections/reports/items", "street_name"),
    ("/api/v1/incidents", "q"),
    ("/api/v1/geocode", "q"),
    (f"{API}/requests.json", "service_code"),
    (f"{API}/requests.xml", "status"),
    ("/maps/dispatch", "team"),
]
BAD_TEXT = {
    "NUL": ("rue\x00de la Paix", "NUL byte"),
    "control": ("rue\x1bde la Paix", "control character"),
}


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, paris: City, paris_gis: CityGIS
) -> Iterator[dict[str, Served]]:
    """The app over each backend's store of the 200 reports (built once: a load takes
    seconds), the PostGIS one on a scratch database."""
    folder = tmp_path_factory.mktemp("bad_http")
    databases = scratch_database(prepare_server())
    served = {
        "sqlite": serve(f"sqlite:///{folder / 'v.gpkg'}", paris, paris_gis, folder / "m1"),
        "postgis": serve(next(databases), paris, paris_gis, folder / "m2"),
    }
    yield served
    for app in served.values():
        app.store.close()
    databases.close()


@pytest.fixture(params=["sqlite", "postgis"])
def backend(request: pytest.FixtureRequest, world: dict[str, Served]) -> Served:
    """The app over the store of each backend."""
    return world[request.param]


@pytest.fixture
def served(backend: Served) -> Iterator[Served]:
    """The app over the store of each backend, checked unchanged by the test."""
    before = _counts(backend)
    yield backend
    assert _counts(backend) == before  # nothing bad was stored


def _counts(served: Served) -> tuple[int, ...]:
    j = served.pipeline.city.jurisdiction_id
    return tuple(served.store.count(t, j) for t in ("reports", "incidents", "events"))


def _staff(served: Served) -> dict[str, str]:
    return {"Authorization": f"Bearer {served.dispatcher_key}"}


def _first_incident(served: Served) -> dict[str, object]:
    page = served.client.get("/api/v1/incidents?limit=1", headers=_staff(served)).json()
    incident: dict[str, object] = page["incidents"][0]
    return incident


def _other_team(served: Served, incident: dict[str, object]) -> str:
    """A team of the city the incident is not assigned to."""
    teams = sorted(served.pipeline.city.teams)
    return next(team for team in teams if team != incident["team"])


def _assert_refused(response: httpx2.Response, field: str, *words: str) -> None:
    """A 4xx whose body names ``field`` (and ``words``), in the route's error shape."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    path = response.request.url.path
    if path.startswith("/open311"):
        assert_error(response, response.status_code, field, *words)
        return
    body = response.text
    assert field in body, body
    for word in words:
        assert word in body, body


@pytest.mark.parametrize("kind", BAD_TEXT)
@pytest.mark.parametrize(("path", "name"), QUERY_ROUTES)
def test_unstorable_text_in_a_query_is_400_naming_the_parameter(
    served: Served, path: str, name: str, kind: str
) -> None:
    text, words = BAD_TEXT[kind]
    response = served.client.get(path, params={name: text}, headers=_staff(served))
    assert response.status_code == 400
    _assert_refused(response, name, words)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"{API}/requests/12%0034.json", "service_request_id"),
        (f"{API}/services/abc%07.json", "service_code"),
        ("/ogc/collections/incidents%00/items", "collectionId"),
    ],
)
def test_unstorable_text_in_a_path_is_400_naming_it(served: Served, path: str, field: str) -> None:
    _assert_refused(served.client.get(path), field, "contains a")


def test_unstorable_text_in_a_staff_body_is_422_naming_the_field(served: Served) -> None:
    incident = _first_incident(served)
    url = f"/api/v1/incidents/{incident['incident_id']}"
    # Raw JSON text: the lone surrogate is an escape, as a broken client sends it.
    for body, field in [
        (b'{"text": "fuite \\ud800 ici"}', "text"),
        (b'{"text": "fuite \\u0000 ici"}', "text"),
        (b'{"team": "DVD\\u0001", "reason": "x"}', "team"),
        (b'{"into": 1, "reason": "\\udfff"}', "reason"),
    ]:
        action = {"text": "comments", "team": "assignment", "reason": "merge"}[field]
        response = served.client.post(
            f"{url}/{action}",
            content=body,
            headers={**_staff(served), "content-type": "application/json"},
        )
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert detail[0]["loc"][-1] == field, detail
        assert "input" not in detail[0]  # the refused text is not echoed back


def test_unstorable_text_in_an_open311_post_is_400_naming_the_field(served: Served) -> None:
    here = {"api_key": served.client_key, "service_code": CARTONS}
    here |= {"lat": str(VALMY["lat"]), "long": str(VALMY["long"])}
    url = f"{API}/requests.json"
    for field in ("description", "email", "device_id", "address_string", "first_name"):
        response = served.client.post(url, data={**here, field: "a\x00b"})
        assert_error(response, 400, field, "NUL byte")
    as_json = b'{"api_key": "%s", "service_code": "%s", "lat": 48.87, "long": 2.36, '
    as_json %= (served.client_key.encode(), CARTONS.encode())
    response = served.client.post(
        url,
        content=as_json + b'"description": "\\ud83d"}',
        headers={"content-type": "application/json"},
    )
    assert_error(response, 400, "description", "surrogate")


@pytest.mark.parametrize(
    "path",
    [f"{API}/requests.json", f"{API}/servicerequestupdates.json", "/api/v1/incidents/1/comments"],
)
def test_json_nested_100000_deep_is_400(served: Served, path: str) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    response = served.client.post(
        path, content=deep, headers={**_staff(served), "content-type": "application/json"}
    )
    assert response.status_code in (400, 422), response.text
    if path.startswith("/open311"):
        assert_error(response, 400, "body", "nested too deep")


def test_non_ascii_digits_are_not_ids(served: Served) -> None:
    for digits in ("²", "٣", "１"):
        assert_error(served.client.get(f"{API}/requests/{digits}.json"), 404, "service_request_id")
        assert_error(
            served.client.get(f"{API}/requests.json", params={"service_request_id": digits}),
            400,
            "service_request_id",
        )
        response = served.client.get(f"/api/v1/incidents/{digits}", headers=_staff(served))
        assert response.status_code == 422, response.text
    _assert_refused(served.client.get("/ogc/collections/incidents/items/²"), "featureId")


@pytest.mark.parametrize("offset", ["1e19", str(10**19), str(10**40), "-1"])
def test_out_of_range_offsets_are_refused_naming_offset(served: Served, offset: str) -> None:
    for path, query in (
        ("/api/v1/incidents", {}),
        ("/api/v1/nearby", {"lat": "48.87", "lon": "2.36"}),
    ):
        params = {**query, "offset": offset}
        response = served.client.get(path, params=params, headers=_staff(served))
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["query", "offset"]
    response = served.client.get("/ogc/collections/incidents/items", params={"offset": offset})
    assert response.status_code == 400, response.text
    assert "offset" in response.text


@pytest.mark.parametrize("due_at", ["9999-12-31T00:00:00Z", "0001-01-01T00:00:00Z", "2100-01-01"])
def test_a_due_date_beyond_the_horizon_is_refused_not_stored(served: Served, due_at: str) -> None:
    incident = _first_incident(served)
    response = served.client.post(
        f"/api/v1/incidents/{incident['incident_id']}/assignment",
        json={"team": _other_team(served, incident), "reason": "replanifié", "due_at": due_at},
        headers=_staff(served),
    )
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "due_at"
    assert "days from now" in response.json()["detail"]
    again = served.client.get(
        f"/api/v1/incidents/{incident['incident_id']}", headers=_staff(served)
    )
    assert again.json()["incident"]["due_at"] == incident["due_at"]
    # Every Open311 answer that shows the incident still answers.
    assert served.client.get(f"{API}/requests.json").status_code == 200


def test_a_due_date_within_the_horizon_is_kept(backend: Served) -> None:
    incident = _first_incident(backend)
    due = (datetime.now(UTC) + timedelta(days=4 * 365)).replace(microsecond=0)
    response = backend.client.post(
        f"/api/v1/incidents/{incident['incident_id']}/assignment",
        json={
            "team": _other_team(backend, incident),
            "reason": "replanifié",
            "due_at": due.isoformat(),
        },
        headers=_staff(backend),
    )
    assert response.status_code == 200, response.text
    assert datetime.fromisoformat(response.json()["due_at"]) == due


@pytest.mark.parametrize("value", ["0.5", "1700000000"])
def test_a_number_is_not_a_date_time(served: Served, value: str) -> None:
    """pydantic reads numbers as Unix times; the schema says ISO 8601 ``date-time``."""
    for path in (f"{API}/requests.json", f"{API}/servicerequestupdates.json"):
        response = served.client.get(path, params={"start_date": value})
        assert_error(response, 400, "start_date", "ISO 8601")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", f"{API}/requests.json", "GET, POST"),
        ("PUT", f"{API}/requests.xml", "GET, POST"),
        ("PUT", "/api/v1/incidents/1/followers", "DELETE, POST"),
        ("DELETE", "/ogc/collections", "GET"),
    ],
)
def test_a_405_lists_every_method_of_the_path(
    served: Served, method: str, path: str, allow: str
) -> None:
    response = served.client.request(method, path)
    assert response.status_code == 405
    assert response.headers["Allow"] == allow


@pytest.mark.parametrize("blank", [" ", "\u00a0\t", "\u2003"])
def test_a_blank_reason_is_refused_and_invalid_by_the_schema(served: Served, blank: str) -> None:
    # The services strip a reason and refuse it empty; the schema says the same (WORDS).
    incident = _first_incident(served)
    path = f"/api/v1/incidents/{incident['incident_id']}/not-duplicate"
    refused = served.client.post(
        path,
        json={"other": int(str(incident["incident_id"])) + 1, "reason": blank},
        headers=_staff(served),
    )
    assert refused.status_code == 400
    _assert_refused(refused, "reason", "must not be empty")
    schemas = served.client.get("/openapi.json").json()["components"]["schemas"]
    for model, field in [
        ("NotDuplicateIn", "reason"),
        ("MergeIn", "reason"),
        ("CommentIn", "text"),
    ]:
        pattern = schemas[model]["properties"][field]["pattern"]
        assert re.search(pattern, blank) is None, (model, blank)
        assert re.search(pattern, f"{blank}deux problèmes{blank}") is not None, model


def test_a_rejection_without_reason_is_refused_as_the_schema_says(served: Served) -> None:
    # A rule between two fields, stated with if/then (JSON Schema 2020-12, OpenAPI 3.1).
    incident = _first_incident(served)
    path = f"/api/v1/incidents/{incident['incident_id']}/status"
    for body in ({"status": "rejected"}, {"status": "rejected", "reason": "  "}):
        refused = served.client.post(path, json=body, headers=_staff(served))
        assert refused.status_code == 400
        _assert_refused(refused, "reason", "must not be empty")
    schema = served.client.get("/openapi.json").json()["components"]["schemas"]["StatusChange"]
    assert schema["if"]["properties"]["status"]["enum"] == ["rejected"]
    assert schema["then"]["required"] == ["reason"]
    assert re.search(schema["then"]["properties"]["reason"]["pattern"], "  ") is None
