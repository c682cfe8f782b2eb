"""Never lose a distinct report: only a real retry of one submission gets the first answer.

Through HTTP on both backends. Without an Idempotency-Key, a re-sent request is the same
submission only when it comes from the same token with the same device or reporter
contact and says the same thing; anything else is a new report (attached to the same
incident by deduplication). An Idempotency-Key is scoped to one token, and reused with
another body it is refused with 422.
"""

from __future__ import annotations

import pytest
from open311_support import API, CARTONS, VALMY, Served, assert_error

from voirie.services.auth import issue_token

HERE = {"lat": str(VALMY["lat"]), "long": str(VALMY["long"])}
SAME_WORDS = {"service_code": CARTONS, **HERE, "description": "Sacs devant le 91"}

pytestmark = pytest.mark.empty_store  # every report in the store is posted by the test


def _post(served: Served, key: str | None = None, **fields: str) -> list[dict[str, object]]:
    headers = {} if key is None else {"Idempotency-Key": key}
    form = {"api_key": served.client_key, **SAME_WORDS, **fields}
    response = served.client.post(f"{API}/requests.json", data=form, headers=headers)
    assert response.status_code in (200, 201), response.text
    answer: list[dict[str, object]] = response.json()
    return [{**answer[0], "status": response.status_code}]


def _emails(served: Served, incident_id: object) -> list[str]:
    """The reporters' emails of an incident's reports ("" for none), as a dispatcher
    reads them."""
    case = served.client.get(
        f"/api/v1/incidents/{incident_id}",
        headers={"Authorization": f"Bearer {served.dispatcher_key}"},
    )
    assert case.status_code == 200, case.text
    return sorted(str((r["contact"] or {}).get("email") or "") for r in case.json()["reports"])


def _count(served: Served) -> int:
    return served.store.count("reports", served.pipeline.city.jurisdiction_id)


def test_two_citizens_of_one_app_are_two_reports_of_one_incident(served: Served) -> None:
    """The issue's repro: same app key, no device, same service, spot and words."""
    [first] = _post(served)
    [second] = _post(served, email="voisine@example.org", first_name="Alix")
    [third] = _post(served)
    assert [a["status"] for a in (first, second, third)] == [201, 201, 201]
    ids = {a["service_request_id"] for a in (first, second, third)}
    assert len(ids) == 3
    assert {a["incident_id"] for a in (first, second, third)} == {first["incident_id"]}
    assert (second["attached"], third["attached"]) == (True, True)
    assert _count(served) == 3
    # The second citizen's contact is kept, not dropped for the first one's answer.
    assert _emails(served, first["incident_id"]) == ["", "", "voisine@example.org"]


def test_a_resend_from_the_same_device_or_contact_is_the_first_answer(served: Served) -> None:
    for who in ({"device_id": "tel-1"}, {"email": "habitant@example.org"}, {"phone": "0601"}):
        [first] = _post(served, **who)
        [again] = _post(served, **who)
        assert (first["status"], again["status"]) == (201, 200)
        assert again["service_request_id"] == first["service_request_id"]
    # The same contact written with other capitals is the same person.
    [again] = _post(served, email="Habitant@Example.org")
    assert again["status"] == 200
    assert _count(served) == 3


def test_the_same_device_saying_something_else_is_a_new_report(served: Served) -> None:
    [first] = _post(served, device_id="tel-1")
    changes = (
        {"description": "Et un matelas"},
        {"media_url": "https://photos.example.org/1.jpg"},
        {"first_name": "Alix"},
    )
    for change in changes:
        [other] = _post(served, device_id="tel-1", **change)
        assert other["status"] == 201
        assert other["service_request_id"] != first["service_request_id"]
    assert _count(served) == 1 + len(changes)


def test_two_tokens_sending_the_same_device_and_words_are_two_reports(served: Served) -> None:
    j = served.pipeline.city.jurisdiction_id
    other_key = issue_token(served.store, j, "appli-mobile", "client")  # same name
    [first] = _post(served, device_id="tel-1")
    [other] = _post(served, device_id="tel-1", api_key=other_key)
    assert (first["status"], other["status"]) == (201, 201)
    assert _count(served) == 2


def test_an_idempotency_key_is_scoped_to_one_token(served: Served) -> None:
    j = served.pipeline.city.jurisdiction_id
    other_key = issue_token(served.store, j, "appli-mobile", "client")
    [first] = _post(served, key="k-1")
    [again] = _post(served, key="k-1")
    [other] = _post(served, key="k-1", api_key=other_key)
    assert [a["status"] for a in (first, again, other)] == [201, 200, 201]
    assert again["service_request_id"] == first["service_request_id"]
    assert other["service_request_id"] != first["service_request_id"]
    assert _count(served) == 2


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_an_idempotency_key_reused_with_another_body_is_422(served: Served, fmt: str) -> None:
    [first] = _post(served, key="k-1", description="Sacs")
    for change in ({"description": "Autre chose"}, {"email": "autre@example.org"}):
        response = served.client.post(
            f"{API}/requests.{fmt}",
            data={"api_key": served.client_key, **SAME_WORDS, **change},
            headers={"Idempotency-Key": "k-1"},
        )
        assert_error(response, 422, "Idempotency-Key", "another")
    [again] = _post(served, key="k-1", description="Sacs")
    assert again["service_request_id"] == first["service_request_id"]
    assert _count(served) == 1
