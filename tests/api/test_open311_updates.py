"""The FixMyStreet servicerequestupdates extension: a back office pushes status changes;
on both storage backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from open311_support import ALL_OF_2023, API, CARTONS, Served, assert_error, xml


def _cartons(served: Served) -> list[dict[str, str]]:
    params = {**ALL_OF_2023, "service_code": CARTONS}
    found: list[dict[str, str]] = served.client.get(f"{API}/requests.json", params=params).json()
    return found


def test_back_office_update_changes_the_incident_status(served: Served) -> None:
    request = _cartons(served)[0]
    rid = request["service_request_id"]
    form = {
        "api_key": served.dispatcher_key,
        "service_request_id": rid,
        "status": "FIXED",
        "description": "Enlevés par l'équipe du matin",
    }
    response = served.client.post(f"{API}/servicerequestupdates.json", data=form)
    assert response.status_code == 200, response.text
    ((key, update_id),) = response.json()[0].items()
    assert key == "update_id"
    assert update_id.isdigit()
    (after,) = served.client.get(f"{API}/requests/{rid}.json").json()
    assert (after["status"], after["detailed_status"]) == ("closed", "resolved")
    # The latest status change's note, as the updates feed publishes it.
    assert after["status_notes"] == "Enlevés par l'équipe du matin"
    assert all(
        r["status_notes"] is None
        for r in _cartons(served)
        if r["incident_id"] != request["incident_id"]
    )

    closed = served.client.post(
        f"{API}/servicerequestupdates.xml",
        data={**form, "status": "closed", "description": ""},
    )
    root = xml(closed.text)
    assert root.tag == "service_request_updates"
    assert root.findtext("request_update/update_id", "").isdigit()

    now = datetime.now(UTC)
    window = {
        "start_date": (now - timedelta(hours=1)).isoformat(),
        "end_date": (now + timedelta(hours=1)).isoformat(),
    }
    updates = served.client.get(f"{API}/servicerequestupdates.json", params=window).json()
    mine = [u for u in updates if u["service_request_id"] == rid]
    assert [(u["update_id"], u["status"], u["detailed_status"]) for u in mine] == [
        (update_id, "closed", "resolved"),
        (root.findtext("request_update/update_id"), "closed", "closed"),
    ]
    assert mine[0]["description"] == "Enlevés par l'équipe du matin"
    assert datetime.fromisoformat(mine[0]["updated_datetime"]).utcoffset() is not None
    # Every report of the incident gets the update.
    incident_reports = {
        r["service_request_id"]
        for r in _cartons(served)
        if r["incident_id"] == request["incident_id"]
    }
    assert {u["service_request_id"] for u in updates} == incident_reports
    as_xml = xml(served.client.get(f"{API}/servicerequestupdates.xml", params=window).text)
    assert len(as_xml.findall("request_update")) == len(updates)
    old = {"start_date": "2023-07-01T00:00:00Z", "end_date": "2023-08-01T00:00:00Z"}
    assert served.client.get(f"{API}/servicerequestupdates.json", params=old).json() == []


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_update_errors(served: Served, fmt: str) -> None:
    url = f"{API}/servicerequestupdates.{fmt}"
    rid = _cartons(served)[0]["service_request_id"]
    form = {"api_key": served.dispatcher_key, "service_request_id": rid, "status": "FIXED"}
    assert_error(
        served.client.post(url, data={**form, "api_key": served.client_key}),
        403,
        "api_key",
        "client",
    )
    assert_error(served.client.post(url, data={**form, "api_key": ""}), 403, "api_key")
    assert_error(
        served.client.post(url, data={**form, "service_request_id": "999999"}), 404, "999999"
    )
    assert_error(
        served.client.post(url, data={**form, "status": "PAINTED"}), 400, "status", "FIXED"
    )
    assert served.client.post(url, data=form).status_code == 200
    # The workflow decides: a resolved incident cannot be resolved again.
    assert_error(served.client.post(url, data=form), 409, "resolved")
    assert_error(
        served.client.get(
            url, params={"start_date": "2020-01-01T00:00:00Z", "end_date": "2021-01-01T00:00:00Z"}
        ),
        400,
        "end_date",
    )
