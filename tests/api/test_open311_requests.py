"""Open311 GET requests (every filter and extension), requests/{id} and tokens/{token}, in
JSON and XML, on both storage backends."""

from __future__ import annotations

import math
from datetime import datetime

import pandas as pd
import pytest
from open311_support import (
    ALL_OF_2023,
    API,
    CARTONS,
    OBERKAMPF,
    VALMY,
    Served,
    assert_error,
    xml,
)

from voirie.city import City
from voirie.services.auth import authenticate
from voirie.services.workflow import change_status
from voirie.store.selection import Selection

FIELDS = [
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
    "incident_id",
    "detailed_status",
]


def _get(served: Served, **params: object) -> list[dict[str, object]]:
    wanted = {k: v for k, v in {**ALL_OF_2023, **params}.items() if v is not None}
    response = served.client.get(f"{API}/requests.json", params=wanted)
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, list)
    return body


def _close(served: Served, incident_id: int) -> None:
    """Resolve then close an incident through the staff workflow."""
    pipeline = served.pipeline
    principal = authenticate(served.store, pipeline.city.jurisdiction_id, served.dispatcher_key)
    assert principal is not None
    change_status(served.store, pipeline.city, incident_id, principal, "resolved", "fait")
    change_status(served.store, pipeline.city, incident_id, principal, "closed")


def test_requests_json_are_complete_and_typed(served: Served, paris: City) -> None:
    found = _get(served, page_size=1000)
    assert len(found) == 200
    first = found[0]
    assert list(first) == FIELDS
    assert isinstance(first["service_request_id"], str)
    assert isinstance(first["service_code"], str)
    assert first["status"] == "open"
    assert first["address"] == "126 Rue Oberkampf, 75011 PARIS"
    assert first["zipcode"] == "75011"
    assert math.isclose(first["lat"], OBERKAMPF["lat"])  # type: ignore[arg-type]
    requested = datetime.fromisoformat(str(first["requested_datetime"]))
    assert requested.utcoffset() is not None
    assert str(first["requested_datetime"]).endswith("+02:00")  # Paris summer time
    team_names = {t.name for t in paris.teams.values()}
    assert {r["agency_responsible"] for r in found} <= team_names
    # Reporters' contact data is never in a public answer.
    assert "@" not in served.client.get(f"{API}/requests.json", params=ALL_OF_2023).text


def test_requests_xml_has_one_request_element_per_report(served: Served) -> None:
    response = served.client.get(f"{API}/requests.xml", params={**ALL_OF_2023, "page_size": 7})
    assert response.headers["content-type"] == "application/xml; charset=utf-8"
    root = xml(response.text)
    assert root.tag == "service_requests"
    requests = root.findall("request")
    assert len(requests) == 7
    assert [child.tag for child in requests[0]] == FIELDS
    assert requests[0].findtext("status") == "open"
    assert requests[0].findtext("service_notice") == ""


def test_service_request_id_list_overrides_every_other_filter(served: Served) -> None:
    ids = [r["service_request_id"] for r in _get(served, page_size=1000)][:3]
    # A date window and a service that exclude them are ignored when ids are given.
    response = served.client.get(
        f"{API}/requests.json",
        params={
            "service_request_id": ",".join(map(str, ids)),
            "service_code": "nope",
            "start_date": "2001-01-01T00:00:00Z",
            "end_date": "2001-01-02T00:00:00Z",
        },
    )
    assert [r["service_request_id"] for r in response.json()] == ids
    bad = served.client.get(f"{API}/requests.xml", params={"service_request_id": "1,abc"})
    assert_error(bad, 400, "service_request_id")


def test_service_code_list_and_status_filters(served: Served) -> None:
    cartons = _get(served, service_code=CARTONS)
    assert len(cartons) == 5
    both = _get(served, service_code=f"{CARTONS},graffitis-tags-a-90f516", page_size=1000)
    assert len(both) == 5 + 26
    assert {r["service_code"] for r in both} == {CARTONS, "graffitis-tags-a-90f516"}
    incident = int(str(cartons[0]["incident_id"]))
    _close(served, incident)
    closed = _get(served, status="closed")
    assert {r["incident_id"] for r in closed} == {str(incident)}
    assert {(r["status"], r["detailed_status"]) for r in closed} == {("closed", "closed")}
    open_ = _get(served, status="open", page_size=1000)
    assert len(open_) + len(closed) == 200
    assert len(_get(served, status="open,closed", page_size=1000)) == 200
    assert_error(
        served.client.get(f"{API}/requests.json", params={"status": "fixed"}), 400, "status"
    )


def test_date_window(served: Served) -> None:
    july = _get(
        served,
        start_date="2023-07-19T00:00:00+02:00",
        end_date="2023-07-24T23:59:59+02:00",
        page_size=1000,
    )
    assert len(july) == 5 + 1 + 2 + 1 + 7
    assert all(str(r["requested_datetime"]) < "2023-07-25" for r in july)
    # Only a start: the 90 days after it.
    assert len(_get(served, start_date="2023-08-26T00:00:00+02:00", end_date=None)) == 3
    # No dates at all: the 90 days up to the newest request stored (this history is old).
    stored = served.pipeline.reads.reports()["requested_at"]
    last_days = stored[stored >= stored.max() - pd.Timedelta(days=90)]
    recent = served.client.get(f"{API}/requests.json", params={"page_size": 1000}).json()
    assert len(recent) == len(last_days) > 0
    assert (
        min(r["requested_datetime"] for r in recent)
        >= (stored.max() - pd.Timedelta(days=90)).isoformat()[:10]
    )
    too_long = served.client.get(
        f"{API}/requests.json",
        params={"start_date": "2023-01-01T00:00:00Z", "end_date": "2023-06-01T00:00:00Z"},
    )
    assert_error(too_long, 400, "end_date", "at most 90")
    backwards = served.client.get(
        f"{API}/requests.xml",
        params={"start_date": "2023-08-01T00:00:00Z", "end_date": "2023-07-01T00:00:00Z"},
    )
    assert_error(backwards, 400, "end_date", "before start_date")
    assert_error(
        served.client.get(f"{API}/requests.json", params={"start_date": "hier"}), 400, "start_date"
    )


def test_a_date_alone_is_a_w3c_datetime_at_midnight_city_time(served: Served) -> None:
    # GeoReport v2's dates are W3C datetimes, whose profile allows a date alone: accepted,
    # and declared in the schema; an incomplete date is refused naming the field.
    by_date = _get(served, start_date="2023-07-19", end_date="2023-07-25", page_size=1000)
    by_time = _get(
        served,
        start_date="2023-07-19T00:00:00+02:00",
        end_date="2023-07-25T00:00:00+02:00",
        page_size=1000,
    )
    assert [r["service_request_id"] for r in by_date] == [r["service_request_id"] for r in by_time]
    assert by_date
    assert all("2023-07-19" <= str(r["requested_datetime"])[:10] <= "2023-07-25" for r in by_date)
    updates = served.client.get(f"{API}/servicerequestupdates.json?start_date=2023-07-19")
    assert updates.status_code == 200, updates.text
    for field in ("start_date", "end_date"):
        month = served.client.get(f"{API}/requests.json", params={field: "2023-07"})
        assert_error(month, 400, field)
    # Years no data is near are refused naming the field (year 1 or 9999 overflowed: 500).
    for value in ("0001-01-05", "9999-12-31", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-12:00"):
        for field in ("start_date", "end_date", "updated_after"):
            far = served.client.get(f"{API}/requests.xml", params={field: value})
            assert_error(far, 400, field, "outside 1900..2199")
        far = served.client.get(f"{API}/servicerequestupdates.json", params={"end_date": value})
        assert_error(far, 400, "end_date", "outside 1900..2199")
    parameters = served.client.get("/openapi.json").json()["paths"]["/open311/v2/requests.{fmt}"]
    (start,) = [p for p in parameters["get"]["parameters"] if p["name"] == "start_date"]
    formats = {branch.get("format") for branch in start["schema"]["anyOf"][0]["anyOf"]}
    assert formats == {"date-time", "date"}


def test_radius_bbox_and_paging_extensions(served: Served) -> None:
    near = _get(served, lat=VALMY["lat"], long=VALMY["long"], radius=300, page_size=1000)
    assert near
    assert any(r["address"] == VALMY["address"] for r in near)
    gis = served.pipeline.gis
    import numpy as np

    x, y = gis.project(
        np.array([r["long"] for r in near], dtype=float),
        np.array([r["lat"] for r in near], dtype=float),
    )
    cx, cy = gis.project(np.array([VALMY["long"]]), np.array([VALMY["lat"]]))
    assert np.hypot(x - cx[0], y - cy[0]).max() <= 300
    wider = _get(served, lat=VALMY["lat"], long=VALMY["long"], radius=1500, page_size=1000)
    assert len(wider) > len(near)
    assert_error(served.client.get(f"{API}/requests.json", params={"lat": 48.87}), 400, "long")
    assert_error(
        served.client.get(
            f"{API}/requests.json", params={"lat": 48.87, "long": 2.36, "radius": 99_000}
        ),
        400,
        "radius",
    )

    box = (2.36, 48.86, 2.39, 48.88)
    inside = _get(served, bbox=",".join(map(str, box)), page_size=1000)
    assert inside
    assert all(box[0] <= float(str(r["long"])) <= box[2] for r in inside)
    assert all(box[1] <= float(str(r["lat"])) <= box[3] for r in inside)
    assert_error(served.client.get(f"{API}/requests.xml", params={"bbox": "2.3,48.8"}), 400, "bbox")

    every = [r["service_request_id"] for r in _get(served, page_size=1000)]
    pages = [
        [r["service_request_id"] for r in _get(served, page=page, page_size=60)]
        for page in (1, 2, 3, 4)
    ]
    assert [len(p) for p in pages] == [60, 60, 60, 20]
    assert [rid for page in pages for rid in page] == every
    assert_error(
        served.client.get(f"{API}/requests.json", params={"page_size": 5000}), 400, "page_size"
    )
    assert_error(served.client.get(f"{API}/requests.json", params={"page": 0}), 400, "page")


def test_updated_after_keeps_changed_incidents(served: Served) -> None:
    before = served.pipeline.reads.incidents(Selection(limit=1)).iloc[0]
    stamp = datetime.now().astimezone().isoformat()
    assert _get(served, updated_after=stamp) == []
    _close(served, int(before["incident_id"]))
    changed = _get(served, updated_after=stamp)
    assert {r["incident_id"] for r in changed} == {str(int(before["incident_id"]))}


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_one_request_is_a_one_element_array(served: Served, fmt: str) -> None:
    response = served.client.get(f"{API}/requests/3.{fmt}")
    assert response.status_code == 200
    if fmt == "json":
        (request,) = response.json()
        assert request["service_request_id"] == "3"
        assert request["address"] == VALMY["address"]
    else:
        root = xml(response.text)
        assert root.tag == "service_requests"
        assert [r.findtext("service_request_id") for r in root.findall("request")] == ["3"]
    assert_error(served.client.get(f"{API}/requests/999999.{fmt}"), 404, "999999")
    assert_error(served.client.get(f"{API}/requests/abc.{fmt}"), 404, "service_request_id")
    assert_error(
        served.client.get(f"{API}/requests/3.{fmt}", params={"jurisdiction_id": "lyon.fr"}),
        404,
        "jurisdiction_id",
    )


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_unknown_token_is_404(served: Served, fmt: str) -> None:
    assert_error(served.client.get(f"{API}/tokens/k-unknown.{fmt}"), 404, "token")
