"""Open311 POST requests: form and JSON bodies, attributes, api_key, location, retries; on
both storage backends."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from open311_support import (
    ALL_OF_2023,
    API,
    CARTONS,
    ENCOMBRANTS,
    GRAFFITI,
    VALMY,
    Served,
    assert_error,
    xml,
)

from voirie.services.auth import issue_token, revoke_token
from voirie.store.base import KNOWN_REPORT_COLUMNS

HERE = {"lat": str(VALMY["lat"]), "long": str(VALMY["long"])}

pytestmark = pytest.mark.empty_store  # every report in the store is posted by the test


def _count(served: Served) -> int:
    return served.store.count("reports", served.pipeline.city.jurisdiction_id)


def _form(served: Served, **fields: object) -> dict[str, object]:
    return {"api_key": served.client_key, "service_code": CARTONS, **HERE, **fields}


def test_form_post_stores_enriches_and_routes_before_answering(served: Served) -> None:
    response = served.client.post(
        f"{API}/requests.json",
        data=_form(
            served,
            description="Cartons devant le 91",
            email="habitant@example.org",
            first_name="Camille",
            last_name="Martin",
            phone="0102030405",
            device_id="device-42",
            address_string=VALMY["address"],
        ),
    )
    assert response.status_code == 201, response.text
    (created,) = response.json()
    assert set(created) == {
        "service_request_id",
        "token",
        "service_notice",
        "account_id",
        "incident_id",
        "attached",
    }
    assert created["attached"] is False
    report_id = created["service_request_id"]
    assert isinstance(report_id, str)
    (stored,) = served.client.get(f"{API}/requests/{report_id}.json").json()
    assert stored["service_code"] == CARTONS
    assert stored["incident_id"] == created["incident_id"]
    assert stored["description"] == "Cartons devant le 91"
    assert stored["agency_responsible"] == "Propreté – divisions territoriales (DPE-STPP)"
    report = served.pipeline.reads.reports().iloc[0]
    assert report["segment_id"] is not None
    assert report["zone_arrondissement"] == "10"
    j = served.pipeline.city.jurisdiction_id
    (contact,) = served.store.lookup("report_contacts", j, "report_id", [int(report_id)]).to_dict(
        "records"
    )
    assert (contact["name"], contact["email"], contact["device_id"]) == (
        "Camille Martin",
        "habitant@example.org",
        "device-42",
    )
    public = served.client.get(f"{API}/requests.json", params={"service_request_id": report_id})
    for private in ("habitant@example.org", "Camille", "0102030405", "device-42"):
        assert private not in public.text
    token = created["token"]
    answer = served.client.get(f"{API}/tokens/{token}.json").json()
    assert answer == [{"service_request_id": report_id, "token": token}]
    root = xml(served.client.get(f"{API}/tokens/{token}.xml").text)
    assert root.findtext("request/service_request_id") == report_id


def test_json_post_with_xml_answer_and_a_second_report_joining_the_incident(
    served: Served,
) -> None:
    first = served.client.post(
        f"{API}/requests.xml", json=_form(served, lat=VALMY["lat"], long=VALMY["long"])
    )
    assert first.status_code == 201
    root = xml(first.text)
    assert root.tag == "service_requests"
    assert [c.tag for c in root.find("request") or []] == [
        "service_request_id",
        "token",
        "service_notice",
        "account_id",
        "incident_id",
        "attached",
    ]
    incident = root.findtext("request/incident_id")
    # Someone else, 5 m away, reports the same cardboard: it joins the incident.
    second = served.client.post(
        f"{API}/requests.json",
        json=_form(served, lat=48.873530, long=2.363170, device_id="another-phone"),
    )
    (created,) = second.json()
    assert second.status_code == 201
    assert created["attached"] is True
    assert created["incident_id"] == incident
    assert created["service_request_id"] != root.findtext("request/service_request_id")
    assert _count(served) == 2


def test_attributes_are_checked_against_the_service_definition(served: Served) -> None:
    post = served.client.post
    missing = post(f"{API}/requests.json", data=_form(served, service_code=ENCOMBRANTS))
    assert_error(missing, 400, "attribute[volume]", "required")
    wrong = post(
        f"{API}/requests.xml",
        data=_form(served, service_code=ENCOMBRANTS, **{"attribute[volume]": "énorme"}),
    )
    assert_error(wrong, 400, "attribute[volume]", "'énorme'", "petit")
    unknown = post(
        f"{API}/requests.json",
        data=_form(
            served,
            service_code=ENCOMBRANTS,
            **{"attribute[volume]": "petit", "attribute[couleur]": "rouge"},
        ),
    )
    assert_error(unknown, 400, "attribute[couleur]")
    two = post(
        f"{API}/requests.json",
        data=_form(served, service_code=ENCOMBRANTS, **{"attribute[volume][]": ["petit", "grand"]}),
    )
    assert_error(two, 400, "attribute[volume]", "one value")
    number = post(
        f"{API}/requests.json",
        data=_form(served, service_code=GRAFFITI, **{"attribute[surface_m2]": "beaucoup"}),
    )
    assert_error(number, 400, "attribute[surface_m2]", "not a number")
    assert _count(served) == 0

    ok = post(
        f"{API}/requests.json",
        data=_form(
            served,
            service_code=ENCOMBRANTS,
            **{"attribute[volume]": "moyen", "attribute[objets][]": ["meuble", "matelas"]},
        ),
    )
    assert ok.status_code == 201, ok.text
    report_id = int(ok.json()[0]["service_request_id"])
    j = served.pipeline.city.jurisdiction_id
    rows = served.store.lookup("report_attributes", j, "report_id", [report_id])
    assert sorted(zip(rows["code"], rows["value"], strict=True)) == [
        ("objets", "matelas"),
        ("objets", "meuble"),
        ("volume", "moyen"),
    ]
    as_json = post(
        f"{API}/requests.json",
        json=_form(served, service_code=GRAFFITI, attribute={"surface_m2": "2.5"}),
    )
    assert as_json.status_code == 201, as_json.text


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_api_key_is_required_and_must_be_a_client_key(served: Served, fmt: str) -> None:
    url = f"{API}/requests.{fmt}"
    form = _form(served)
    del form["api_key"]
    assert_error(served.client.post(url, data=form), 403, "api_key", "missing")
    assert_error(
        served.client.post(url, data={**form, "api_key": "voirie_nope"}), 403, "api_key", "unknown"
    )
    staff = served.client.post(url, data={**form, "api_key": served.dispatcher_key})
    assert_error(staff, 403, "api_key", "dispatcher")
    assert _count(served) == 0


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_revoked_or_expired_key_is_refused_saying_so(served: Served, fmt: str) -> None:
    # The same reason the staff API gives (``identify``), in GeoReport v2's 403.
    url = f"{API}/requests.{fmt}"
    j = served.pipeline.city.jurisdiction_id
    revoked = issue_token(served.store, j, "ancienne-appli", "client")
    revoke_token(served.store, j, "ancienne-appli")
    answer = served.client.post(url, data=_form(served, api_key=revoked))
    assert_error(answer, 403, "api_key: API token revoked on ")
    yesterday = datetime.now(UTC) - timedelta(days=1)
    expired = issue_token(served.store, j, "appli-test", "client", expires_at=yesterday)
    answer = served.client.post(url, data=_form(served, api_key=expired))
    assert_error(answer, 403, f"api_key: API token expired on {yesterday:%Y-%m-%d %H:%M} UTC")
    assert _count(served) == 0


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_location_is_lat_long_or_an_address_on_the_street_layer(served: Served, fmt: str) -> None:
    url = f"{API}/requests.{fmt}"
    base = {"api_key": served.client_key, "service_code": CARTONS}
    by_address = served.client.post(url, data={**base, "address_string": VALMY["address"]})
    assert by_address.status_code == 201, by_address.text
    report = served.pipeline.reads.reports().iloc[-1]
    assert report["street_name"] == "Quai de Valmy"
    assert report["snap_distance_m"] < 1
    gis = served.pipeline.gis
    x, y = gis.project(
        np.array([report["lon"], VALMY["long"]]), np.array([report["lat"], VALMY["lat"]])
    )
    assert np.hypot(x[0] - x[1], y[0] - y[1]) < 1500  # on the quay, 1.4 km long

    assert_error(
        served.client.post(url, data={**base, "address_string": "1 rue du Zorglub"}),
        400,
        "address_string",
        "Zorglub",
    )
    assert_error(served.client.post(url, data=base), 400, "lat", "address_string")
    assert_error(served.client.post(url, data={**base, "lat": "48.87"}), 400, "long")
    assert_error(
        served.client.post(url, data={**base, "lat": "nord", "long": "2.36"}),
        400,
        "lat",
        "not a number",
    )
    assert_error(
        served.client.post(url, data={**base, "lat": "46.0", "long": "-8.0"}),
        400,
        "outside the territory of Paris",
    )
    assert _count(served) == 1


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_bad_fields_name_the_field(served: Served, fmt: str) -> None:
    url = f"{API}/requests.{fmt}"
    assert_error(
        served.client.post(url, data=_form(served, service_code="nid-de-poule")),
        400,
        "service_code",
        "nid-de-poule",
    )
    form = _form(served)
    del form["service_code"]
    assert_error(served.client.post(url, data=form), 400, "service_code", "required")
    assert_error(served.client.post(url, data=_form(served, email="pas-un-email")), 400, "email")
    assert_error(
        served.client.post(url, data=_form(served, media_url="file:///etc/passwd")),
        400,
        "media_url",
    )
    assert_error(
        served.client.post(url, data=_form(served, description="x" * 4001)),
        400,
        "description",
        "too long",
    )
    assert_error(
        served.client.post(url, data=_form(served, jurisdiction_id="lyon.fr")),
        404,
        "jurisdiction_id",
    )
    assert_error(
        served.client.post(url, content=b"<a/>", headers={"content-type": "text/xml"}),
        400,
        "request body",
    )
    assert_error(
        served.client.post(url, content=b"{not json", headers={"content-type": "application/json"}),
        400,
        "not valid JSON",
    )
    assert_error(served.client.post(url, json=[1, 2]), 400, "JSON object")
    assert _count(served) == 0


def test_idempotency_key_returns_the_first_answer(served: Served) -> None:
    headers = {"Idempotency-Key": "4c1e0b8e-retry"}
    first = served.client.post(f"{API}/requests.json", data=_form(served), headers=headers)
    again = served.client.post(f"{API}/requests.json", data=_form(served), headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    other = served.client.post(
        f"{API}/requests.json", data=_form(served), headers={"Idempotency-Key": "another"}
    )
    assert other.status_code == 201
    assert other.json()[0]["service_request_id"] != first.json()[0]["service_request_id"]
    assert _count(served) == 2
    assert_error(
        served.client.post(
            f"{API}/requests.json", data=_form(served), headers={"Idempotency-Key": "x" * 300}
        ),
        400,
        "Idempotency-Key",
    )


def test_same_report_resent_without_key_returns_the_first(served: Served) -> None:
    form = _form(served, device_id="phone-1", description="Sacs poubelle")
    first = served.client.post(f"{API}/requests.json", data=form)
    again = served.client.post(f"{API}/requests.json", data=form)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    # Another description, or another device: another report (attached to the incident).
    for change in ({"description": "Encore des sacs"}, {"device_id": "phone-2"}):
        changed = {**form, **change}
        new = served.client.post(f"{API}/requests.json", data=changed)
        assert new.status_code == 201
        assert new.json()[0]["attached"] is True
        resent = served.client.post(f"{API}/requests.json", data=changed)
        assert resent.status_code == 200
        assert resent.json() == new.json()  # attached, as the first answer said
    assert _count(served) == 3


def test_concurrent_retries_store_one_report(served: Served) -> None:
    def post(_: int) -> str:
        response = served.client.post(
            f"{API}/requests.json", data=_form(served), headers={"Idempotency-Key": "same-key"}
        )
        assert response.status_code in (200, 201), response.text
        return str(response.json()[0]["service_request_id"])

    with ThreadPoolExecutor(4) as pool:
        ids = set(pool.map(post, range(8)))
    assert len(ids) == 1
    assert _count(served) == 1


def test_known_reports_is_a_keyed_lookup_with_ids(served: Served) -> None:
    created = served.client.post(f"{API}/requests.json", data=_form(served)).json()[0]
    known = served.pipeline.reads.known_reports("open311", [created["token"], "absent"])
    assert list(known.columns) == KNOWN_REPORT_COLUMNS
    (row,) = known.to_dict("records")
    assert (str(row["report_id"]), str(row["incident_id"])) == (
        created["service_request_id"],
        created["incident_id"],
    )
    assert row["received_at"].tzinfo is not None
    assert row["raw_digest"] is None  # a report submitted alone has no source row
    assert served.pipeline.reads.known_reports("dansmarue", [created["token"]]).empty
    assert json.loads(served.client.get(f"{API}/requests.json", params=ALL_OF_2023).text) == []
