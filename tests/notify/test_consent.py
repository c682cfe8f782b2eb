"""Double opt-in, readable emails, unsubscribe and "is it fixed?" (issue 17 item 3), through
the app's own routes, a real SMTP server (aiosmtpd) and the outbox worker, on both
storage backends.

Nothing but the confirmation email reaches an address before its owner confirms it;
confirming releases what was held; each email is text and HTML in the citizen's language
with an unsubscribe link; "Non" to "is it fixed?" reopens the incident."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from html import unescape
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from smtpsink import Sink, parts, running_sink

from voirie.api.app import create_app
from voirie.api.open311.settings import Open311Settings
from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.model import EventKind, Status
from voirie.notify.consent import token_hash
from voirie.notify.worker import deliver_due, worker_id
from voirie.services import workflow
from voirie.services.auth import Principal, Role
from voirie.services.pipeline import Pipeline
from voirie.settings import CitySettings, OutboxSettings, StoreSettings
from voirie.store import Store, open_store
from voirie.store.selection import Selection

PUBLIC = "https://voirie.example.org"
LON, LAT = 2.363114, 48.873504  # Quai de Valmy, 75010
DUMPED = "Autres objets encombrants abandonnés"
DISPATCHER = Principal("dana", Role.DISPATCHER)
_LINK = re.compile(re.escape(PUBLIC) + r"(/[^\s\"<>]+)")


@dataclass
class World:
    """The app over one store of the test's backend, and a real SMTP server."""

    client: TestClient
    store: Store
    city: City
    sink: Sink
    settings: OutboxSettings

    def deliver(self) -> list[EmailMessage]:
        """Run the worker over the due messages; the emails that arrived."""
        deliver_due(self.store, self.city, self.settings, worker_id())
        return self.sink.take()

    def report(self, **fields: object) -> dict[str, object]:
        """Send a report with the form; its answer."""
        body = {
            "service_code": self.city.services_by_name[DUMPED.casefold()].code,
            "lat": LAT,
            "lon": LON,
            "description": f"Un matelas ({uuid.uuid4().hex[:6]})",
            "attributes": {"volume": ["moyen"], "objets": ["matelas"]},
            **fields,
        }
        answer = self.client.post(
            "/api/v1/reports", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        assert answer.status_code == 201, answer.text
        sent: dict[str, object] = answer.json()
        return sent

    def status(self, incident_id: int) -> str:
        incidents = Pipeline(self.city, self.store).reads.incidents(Selection(ids=(incident_id,)))
        return str(incidents.iloc[0]["status"])


@asynccontextmanager
async def _kept_state(app: FastAPI) -> AsyncIterator[None]:
    yield


@pytest.fixture
def world(store_url: str, paris: City, paris_gis: CityGIS, tmp_path: Path) -> Iterator[World]:
    store = open_store(StoreSettings(database_url=store_url, pool_min_size=1, pool_max_size=4))
    store.upgrade()
    app = create_app(
        StoreSettings(database_url="sqlite:///unused.gpkg"), CitySettings(city="paris")
    )
    app.state.pipeline = Pipeline(paris, store, paris_gis)
    app.state.open311_settings = Open311Settings(media_dir=tmp_path / "media")
    app.router.lifespan_context = _kept_state  # the test's store, not a new one
    mail = running_sink()
    sink, port = next(mail)
    settings = OutboxSettings(
        smtp_host="127.0.0.1", smtp_port=port, mail_from="voirie@example.org", public_url=PUBLIC
    )
    with TestClient(app) as client:
        yield World(client, store, paris, sink, settings)
    next(mail, None)
    store.close()


def _links(text: str) -> list[str]:
    """The paths of the app's links in an email's text, in order."""
    return _LINK.findall(text)


def test_nothing_but_the_confirmation_leaves_before_the_address_is_confirmed(
    world: World,
) -> None:
    sent = world.report(email="Camille.Riveraine@Example.org", name="Camille")
    [confirmation] = world.deliver()
    assert confirmation["To"] == "camille.riveraine@example.org"
    assert confirmation["Subject"] == "Confirmez votre adresse e-mail"
    assert confirmation["Content-Language"] == "fr"
    text, html = parts(confirmation)
    confirm, stop_all = _links(text)
    assert confirm.startswith("/courriel/confirmer/")
    assert stop_all.endswith("/desabonner")
    assert "Confirmer mon adresse : " + PUBLIC + confirm in text
    assert "Rien ne vous sera envoyé avant que vous la confirmiez." in text
    assert f'<a href="{PUBLIC}{confirm}"' in html
    assert confirmation["List-Unsubscribe"] == f"<{PUBLIC}{stop_all}>"
    # The store keeps the token's hash, not the token.
    token = confirm.rsplit("/", 1)[-1]
    with world.store.transaction(world.city.jurisdiction_id) as uow:
        assert uow.consents.confirmation(token_hash(token)) == "camille.riveraine@example.org"
        assert uow.consents.confirmation(token) is None
    # A second report a minute later: held too, and no second confirmation (rate-limited).
    world.report(email="camille.riveraine@example.org")
    assert world.deliver() == []
    # Opening the link asks; only the button (a POST) confirms.
    page = world.client.get(confirm)
    assert page.status_code == 200
    assert 'method="post"' in page.text
    assert "Confirmer mon adresse" in page.text
    assert world.deliver() == []
    done = world.client.post(confirm)
    assert done.status_code == 200
    assert "votre adresse est confirmée" in done.text
    received = world.deliver()
    assert len(received) == 2
    first = next(m for m in received if f"n° {sent['report_id']} " in str(m["Subject"]))
    assert first["Subject"] == f"Votre signalement n° {sent['report_id']} est bien reçu"
    text, html = parts(first)
    assert f"Suivre mon signalement : {sent['tracking_url']}" in text
    assert f"(incident n° {sent['incident_id']})" in text
    assert f"Ne plus rien recevoir de Paris : {PUBLIC}/courriel/" in text
    assert f'<a href="{sent["tracking_url"]}">Suivre mon signalement</a>' in html
    # A used or unknown confirmation link opens nothing.
    assert world.client.post(confirm).status_code == 404
    assert world.client.post("/courriel/confirmer/" + "x" * 43).status_code == 404


def _confirmed_follower(world: World, incident_id: int, email: str, lang: str) -> None:
    followed = world.client.post(
        f"/api/v1/incidents/{incident_id}/followers", json={"email": email, "lang": lang}
    )
    assert followed.status_code == 200, followed.text
    [confirmation] = world.deliver()
    text, _ = parts(confirmation)
    assert world.client.post(_links(text)[0]).status_code == 200


def test_an_english_follower_is_told_and_a_no_reopens_the_incident(world: World) -> None:
    incident = int(str(world.report()["incident_id"]))
    followed = world.client.post(
        f"/api/v1/incidents/{incident}/followers",
        json={"email": "sam@example.org", "lang": "en"},
    )
    assert followed.status_code == 200, followed.text
    [confirmation] = world.deliver()
    assert confirmation["Subject"] == "Confirm your email address"
    text, _ = parts(confirmation)
    confirm = _links(text)[0]
    assert f"Confirm my address: {PUBLIC}{confirm}" in text
    assert confirm.endswith("?lang=en")
    assert "your address is confirmed" in world.client.post(confirm).text
    store, city = world.store, world.city
    workflow.change_status(store, city, incident, DISPATCHER, "acknowledged", "voir le dépôt")
    [changed] = world.deliver()
    assert changed["Subject"] == f"Incident no. {incident}: acknowledged"
    text, html = parts(changed)
    assert f"Incident no. {incident}, which you follow, went from “new” to “acknowledged”" in text
    assert "dépôt" not in text  # the dispatcher's note is internal
    assert f"Stop emails about this incident: {PUBLIC}/courriel/" in text
    assert "Stop emails about this incident</a>" in html
    workflow.change_status(store, city, incident, DISPATCHER, "resolved")
    [resolved] = world.deliver()
    assert resolved["Subject"] == f"Incident no. {incident} resolved: is it fixed?"
    text, html = parts(resolved)
    assert "Is it really fixed?" in text
    yes, no = (link for link in _links(text) if "/resolu/" in link)
    assert yes.endswith("reponse=oui&lang=en")
    assert no.endswith("reponse=non&lang=en")
    assert f'href="{PUBLIC}{no.replace("&", "&amp;")}"' in html
    page = world.client.get(no)
    assert page.status_code == 200
    assert "No, it is not fixed" in page.text
    assert world.status(incident) == Status.RESOLVED  # opening the link changes nothing
    answered = world.client.post(no, data={"reponse": "non"})
    assert answered.status_code == 200, answered.text
    assert f"incident no. {incident} is reopened" in answered.text
    assert world.status(incident) == Status.IN_PROGRESS
    events = Pipeline(city, store).reads.lookup("events", "entity_id", [incident])
    reopened = events[events["kind"] == EventKind.STATUS_CHANGED.value].iloc[-1]
    assert reopened["actor"] == "citizen"
    assert reopened["reason"].startswith("resolved → in_progress: un citoyen")
    # The follower is told of the reopening; a second "Non" finds nothing to reopen.
    [told] = world.deliver()
    assert told["Subject"] == f"Incident no. {incident}: in progress"
    assert world.client.post(no, data={"reponse": "non"}).status_code == 409


def test_unsubscribe_from_one_incident_then_from_everything(world: World) -> None:
    first = int(str(world.report()["incident_id"]))
    _confirmed_follower(world, first, "lou@example.org", "fr")
    store, city = world.store, world.city
    workflow.change_status(store, city, first, DISPATCHER, "acknowledged")
    [changed] = world.deliver()
    text, _ = parts(changed)
    one, everything = (link for link in _links(text) if "/desabonner" in link)
    assert one.endswith(f"/desabonner?incident_id={first}")
    page = unescape(world.client.get(one).text)
    assert "Plus d'e-mails sur cet incident" in page
    assert "Plus aucun e-mail" in page
    done = unescape(world.client.post(one, data={"incident_id": str(first)}).text)
    assert f"plus d'e-mails sur l'incident n° {first}" in done
    workflow.change_status(store, city, first, DISPATCHER, "in_progress")
    assert world.deliver() == []
    # Another incident still gets through, until "stop everything".
    second = int(str(world.report(lat=48.8606, lon=2.3470)["incident_id"]))
    assert second != first
    followed = world.client.post(
        f"/api/v1/incidents/{second}/followers", json={"email": "lou@example.org"}
    )
    assert followed.status_code == 200
    workflow.change_status(store, city, second, DISPATCHER, "acknowledged")
    [told] = world.deliver()
    assert told["Subject"] == f"Incident n° {second} : pris en compte"
    assert "plus aucun e-mail" in world.client.post(everything).text
    workflow.change_status(store, city, second, DISPATCHER, "in_progress")
    assert world.deliver() == []
    with store.transaction(city.jurisdiction_id) as uow:
        consent = uow.consents.get("lou@example.org")
        assert consent is not None
        assert consent.state == "stopped"
        assert not uow.consents.follows("lou@example.org", second)
    assert world.client.get("/courriel/" + "y" * 43 + "/desabonner").status_code == 404
