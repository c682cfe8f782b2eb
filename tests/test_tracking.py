"""A report sent with the form and its private tracking link, on both backends.

The token opens the report and nothing else, only its hash is stored, a retried send keeps
one report, the link is queued for the sender's email in the same transaction, and the
view carries the public facts: status, notes of status changes, photos.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from voirie.errors import NotFound
from voirie.model import Contact, Report, Status
from voirie.services import tracking, workflow
from voirie.services.auth import Principal, Role
from voirie.services.intake import Retry
from voirie.services.pipeline import Pipeline

LON, LAT = 2.35183, 48.85658  # Place de l'Hôtel de Ville
LAMP = "Lampadaire en mauvais état"
PHOTOS = ("a" * 64 + ".jpg", "b" * 64 + ".jpg")


def _report(pipeline: Pipeline, email: str | None = None) -> Report:
    return Report(
        external_id="",
        source="signaler",
        service_code=pipeline.city.services_by_name[LAMP.casefold()].code,
        lon=LON,
        lat=LAT,
        requested_at=datetime.now(UTC),
        description="Lampadaire penché au-dessus de la piste cyclable",
        contact=Contact(name="Camille", email=email),
    )


def _link(token: str) -> str:
    return f"https://voirie.example.org/suivi/{token}"


def _send(pipeline: Pipeline, key: str, email: str | None = None) -> tracking.Sent:
    retry = Retry("signaler", key, 600)
    return tracking.send(pipeline, _report(pipeline, email), retry, PHOTOS, _link)


def test_the_token_opens_the_report_and_only_its_hash_is_kept(pipeline: Pipeline) -> None:
    sent = _send(pipeline, "k1")
    assert len(sent.token) == 43  # 32 random bytes, URL-safe
    mine = tracking.find(pipeline, sent.token)
    assert mine.report_id == sent.submission.report_id
    assert mine.incident_id == sent.submission.incident_id
    assert mine.service_name == LAMP
    assert mine.description == "Lampadaire penché au-dessus de la piste cyclable"
    assert mine.status == Status.NEW.value
    assert mine.open
    assert mine.photos == PHOTOS
    assert mine.history == ()
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        assert uow.tracking.find(sent.token) is None  # the token itself is not a key
        assert uow.tracking.find(tracking.token_hash(sent.token)) is not None


@pytest.mark.parametrize("token", ["", "short", "x" * 43, "é" * 43, "a/" * 22])
def test_other_tokens_open_nothing(pipeline: Pipeline, token: str) -> None:
    _send(pipeline, "k2")
    with pytest.raises(NotFound) as refused:
        tracking.find(pipeline, token)
    assert refused.value.field == "token"


def test_a_retried_send_keeps_one_report_and_both_links_work(pipeline: Pipeline) -> None:
    first = _send(pipeline, "k3")
    again = _send(pipeline, "k3")
    assert again.submission.already_stored
    assert again.submission.report_id == first.submission.report_id
    assert again.token != first.token
    assert tracking.find(pipeline, first.token).report_id == first.submission.report_id
    assert tracking.find(pipeline, again.token).report_id == first.submission.report_id


def test_the_link_is_queued_for_the_senders_email(pipeline: Pipeline) -> None:
    with_email = _send(pipeline, "k4", email=" Camille@Example.org ")
    without = _send(pipeline, "k5")
    outbox = pipeline.reads.lookup(
        "outbox",
        "entity_id",
        [with_email.submission.report_id, without.submission.report_id],
    )
    mails = outbox[outbox["kind"] == tracking.RECEIVED]
    assert list(mails["target"]) == ["camille@example.org"]
    assert list(mails["entity_id"]) == [with_email.submission.report_id]
    payload = json.loads(mails["payload"].iloc[0])
    assert payload["tracking_url"] == _link(with_email.token)
    assert payload["incident_id"] == with_email.submission.incident_id


def test_the_view_follows_status_changes_and_their_public_notes(pipeline: Pipeline) -> None:
    sent = _send(pipeline, "k6")
    dispatcher = Principal("Dispatch", Role.DISPATCHER)
    incident = sent.submission.incident_id
    workflow.change_status(pipeline.store, pipeline.city, incident, dispatcher, Status.ACKNOWLEDGED)
    workflow.change_status(
        pipeline.store, pipeline.city, incident, dispatcher, Status.RESOLVED, "ampoule changée"
    )
    mine = tracking.find(pipeline, sent.token)
    assert mine.status == Status.RESOLVED.value
    assert not mine.open
    assert [(n.status, n.note) for n in mine.history] == [
        (Status.ACKNOWLEDGED.value, None),
        (Status.RESOLVED.value, "ampoule changée"),
    ]
    assert mine.history[0].at <= mine.history[1].at <= datetime.now(UTC)
