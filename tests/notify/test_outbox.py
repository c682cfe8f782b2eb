"""The outbox and its worker against a real local HTTP receiver and a real SMTP sink:
retries with backoff, HMAC signatures, dead letters, email, and a worker process killed
mid-delivery then restarted (every message delivered, duplicates recognisable)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from smtpsink import Sink, parts, running_sink

from voirie.city import City, Team, load_city
from voirie.notify.outbox import enqueue
from voirie.notify.worker import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    deliver_due,
    worker_id,
)
from voirie.settings import OutboxSettings, StoreSettings
from voirie.store import Store, open_store

SECRET = "s3cret-for-tests"
ROOT = Path(__file__).parents[2]


class Receiver:
    """A webhook endpoint on 127.0.0.1 that answers 500 to the first ``fail_first`` calls
    of each message, optionally slowly, and records every call it received."""

    def __init__(self, fail_first: int = 0, delay_s: float = 0.0) -> None:
        self.fail_first, self.delay_s = fail_first, delay_s
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                key = self.headers[IDEMPOTENCY_HEADER]
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                with receiver.lock:
                    seen = sum(1 for c in receiver.calls if c["key"] == key)
                    receiver.calls.append(
                        {
                            "key": key,
                            "body": json.loads(body),
                            "signed": hmac.compare_digest(expected, self.headers[SIGNATURE_HEADER]),
                        }
                    )
                time.sleep(receiver.delay_s)
                self.send_response(500 if seen < receiver.fail_first else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def keys(self) -> list[str]:
        with self.lock:
            return [c["key"] for c in self.calls]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=2)
    yield r
    r.close()


def with_teams(paris: City, *teams: Team) -> City:
    return City(
        paris.folder, paris.config.model_copy(update={"teams": [*paris.config.teams, *teams]})
    )


def queue(store: Store, city: City, team: str, n: int) -> list[str]:
    """``n`` status-change notices for ``team``, committed; their idempotency keys."""
    with store.transaction(city.jurisdiction_id) as uow:
        for i in range(n):
            enqueue(
                uow,
                city,
                kind="status_changed",
                incident_id=1000 + i,
                team=team,
                data={"status": "in_progress"},
            )
    rows = store.lookup("outbox", city.jurisdiction_id, "team", [team])
    return sorted(rows["idempotency_key"])


def outbox(store: Store, city: City) -> pd.DataFrame:
    ids = list(range(1, 10_000))
    return store.lookup("outbox", city.jurisdiction_id, "id", ids)


def test_webhook_retried_with_backoff_then_delivered_signed(
    paris: City, store: Store, receiver: Receiver
) -> None:
    city = with_teams(
        paris, Team(code="parks", name="Parks", webhook=receiver.url, webhook_secret=SECRET)
    )
    keys = queue(store, city, "parks", 3)
    settings = OutboxSettings(outbox_backoff_s=60, outbox_max_attempts=5)
    worker = worker_id()
    start = datetime.now(UTC)
    assert deliver_due(store, city, settings, worker, start).retried == 3
    # Not due yet: the first retry waits 60 s, the second 120 s.
    assert deliver_due(store, city, settings, worker, start + timedelta(seconds=30)).attempted == 0
    assert deliver_due(store, city, settings, worker, start + timedelta(seconds=61)).retried == 3
    assert deliver_due(store, city, settings, worker, start + timedelta(seconds=150)).attempted == 0
    done = deliver_due(store, city, settings, worker, start + timedelta(seconds=182))
    assert done.delivered == 3
    rows = outbox(store, city)
    assert (rows["status"] == "delivered").all()
    assert (rows["attempts"] == 3).all()
    assert sorted(set(receiver.keys())) == keys
    assert all(c["signed"] for c in receiver.calls)
    assert receiver.calls[0]["body"]["idempotency_key"] == receiver.calls[0]["key"]
    assert receiver.calls[0]["body"]["status"] == "in_progress"


def test_dead_letter_after_n_attempts_with_reason(
    paris: City, store_url: str, store: Store
) -> None:
    closed = Receiver()
    closed.close()  # nothing listens there any more
    city = with_teams(
        paris,
        Team(code="gone", name="Gone", webhook=closed.url, webhook_secret=SECRET),
        Team(
            code="nokey",
            name="No key",
            webhook=closed.url,
            webhook_secret_env="VOIRIE_TEST_UNSET_SECRET",
        ),
    )
    queue(store, city, "gone", 1)
    queue(store, city, "nokey", 1)
    settings = OutboxSettings(outbox_backoff_s=1, outbox_max_attempts=3, http_timeout_s=2)
    at = datetime.now(UTC)
    for step in range(3):
        deliver_due(store, city, settings, worker_id(), at + timedelta(seconds=10 * step))
    rows = outbox(store, city).set_index("team")
    assert (rows["status"] == "dead").all()
    assert rows.loc["gone", "last_error"].startswith("dead after 3 attempts: cannot reach")
    assert "set VOIRIE_TEST_UNSET_SECRET" in rows.loc["nokey", "last_error"]
    assert deliver_due(store, city, settings, worker_id(), at + timedelta(days=1)).attempted == 0
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "voirie"), "worker", "--dead-letters"],
        env={**os.environ, "VOIRIE_DATABASE_URL": store_url, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "2 dead letters" in listed.stdout
    assert "set VOIRIE_TEST_UNSET_SECRET" in listed.stdout


@pytest.fixture
def smtp() -> Iterator[tuple[Sink, int]]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 and its port."""
    yield from running_sink()


def test_email_delivered_to_a_real_smtp_server(
    paris: City, store: Store, smtp: tuple[Sink, int]
) -> None:
    sink, port = smtp
    city = with_teams(paris, Team(code="mail", name="Mail", email="team@example.org"))
    keys = queue(store, city, "mail", 2)
    settings = OutboxSettings(
        smtp_host="127.0.0.1",
        smtp_port=port,
        mail_from="voirie@example.org",
        public_url="https://voirie.example.org/",
    )
    assert deliver_due(store, city, settings, worker_id()).delivered == 2
    assert sorted(m["X-Voirie-Idempotency-Key"] for m in sink.messages) == keys
    message = sink.messages[0]
    assert message["To"] == "team@example.org"
    # A readable email in the city's language, text and HTML, with the staff case link.
    assert message["Subject"].startswith("[Paris] Changement de statut : incident n° 100")
    text, html = parts(message)
    case = f"https://voirie.example.org/staff/incidents/{message['Subject'].split('° ')[-1]}"
    assert "Statut : en cours" in text
    assert f"Ouvrir le dossier : {case}" in text
    assert f'<a href="{case}">Ouvrir le dossier</a>' in html


def _city_folder(tmp_path: Path, url: str) -> Path:
    folder = tmp_path / "city"
    shutil.copytree(ROOT / "cities" / "paris", folder, ignore=shutil.ignore_patterns("reports"))
    doc = yaml.safe_load((folder / "city.yaml").read_text(encoding="utf-8"))
    doc["teams"].append(
        {
            "code": "hooked",
            "name": "Hooked",
            "webhook": url,
            "webhook_secret_env": "VOIRIE_TEST_HOOK_SECRET",
        }
    )
    (folder / "city.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    return folder


def _worker(folder: Path, url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "VOIRIE_DATABASE_URL": url,
        "VOIRIE_TEST_HOOK_SECRET": SECRET,
        "VOIRIE_OUTBOX_LEASE_S": "2",
        "VOIRIE_WORKER_INTERVAL_S": "0.2",
        "VOIRIE_OUTBOX_BATCH": "5",
    }
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "voirie"), "worker", "--city", str(folder)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait(condition: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def test_worker_killed_mid_delivery_loses_nothing(store_url: str, tmp_path: Path) -> None:
    slow = Receiver(delay_s=0.4)
    try:
        folder = _city_folder(tmp_path, slow.url)
        city = load_city(folder, check_files=False)
        store = open_store(StoreSettings(database_url=store_url))
        store.upgrade()
        keys = queue(store, city, "hooked", 12)
        first = _worker(folder, store_url)
        # Kill it while it waits for an answer: that message arrived but is not recorded.
        _wait(lambda: len(slow.calls) >= 4, 60)
        time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = _worker(folder, store_url)
        try:
            _wait(lambda: (outbox(store, city)["status"] == "delivered").all(), 90)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait()
        received = slow.keys()
        assert sorted(set(received)) == keys  # nothing lost
        duplicates = {k for k in received if received.count(k) > 1}
        assert len(duplicates) >= 1  # the one killed mid-delivery, recognisable by key
        assert all(c["signed"] for c in slow.calls)
        store.close()
    finally:
        slow.close()


def test_routing_and_staff_changes_enqueue_in_their_transaction(
    paris: City, store: Store, receiver: Receiver, smtp: tuple[Sink, int]
) -> None:
    from voirie.city import Route
    from voirie.errors import Conflict
    from voirie.model import Contact, Report
    from voirie.services import workflow
    from voirie.services.auth import Principal, Role
    from voirie.services.pipeline import Pipeline

    hooked = with_teams(
        paris,
        Team(code="parks", name="Parks", webhook=receiver.url, webhook_secret=SECRET),
        Team(code="roads", name="Roads", webhook=receiver.url, webhook_secret=SECRET),
    )
    routing = hooked.config.routing.model_copy(
        update={"rules": [Route(id="graffiti", team="parks", service="graffitis-tags-a-914fea")]}
    )
    city = City(hooked.folder, hooked.config.model_copy(update={"routing": routing}))
    submitted = Pipeline(city, store).intake.submit(
        Report(
            external_id="n1",
            source="test",
            service_code="graffitis-tags-a-914fea",
            lon=2.35,
            lat=48.85,
            requested_at=datetime.now(UTC),
            contact=Contact(name="Ada", email="ada@example.org"),
        )
    )
    dispatcher = Principal("dana", Role.DISPATCHER)
    incident = submitted.incident_id
    with store.transaction(city.jurisdiction_id) as uow:
        uow.citizens.add_follower(incident, "bob@example.org", datetime.now(UTC))
    with pytest.raises(Conflict):
        workflow.change_status(store, city, incident, dispatcher, "new")  # refused: rolled back
    workflow.change_status(store, city, incident, dispatcher, "acknowledged")
    workflow.reassign(store, city, incident, dispatcher, "roads", "pavement, not a park")
    rows = outbox(store, city)
    # Addresses never confirmed: each is asked to confirm; its notice waits (held).
    assert rows[["kind", "channel", "target", "status"]].values.tolist() == [
        ["assigned", "webhook", receiver.url, "pending"],
        ["status_changed", "webhook", receiver.url, "pending"],
        ["email_confirmation", "email", "ada@example.org", "pending"],
        ["status_changed", "email", "ada@example.org", "held"],
        ["email_confirmation", "email", "bob@example.org", "pending"],
        ["status_changed", "email", "bob@example.org", "held"],
        ["reassigned", "webhook", receiver.url, "pending"],
    ]
    with store.transaction(city.jurisdiction_id) as uow:
        assert uow.consents.confirm("ada@example.org", datetime.now(UTC)) == 1
        assert uow.consents.confirm("bob@example.org", datetime.now(UTC)) == 1
    sink, port = smtp
    settings = OutboxSettings(outbox_backoff_s=0.01, smtp_port=port)
    for _ in range(3):  # the receiver fails each message twice
        time.sleep(0.05)
        deliver_due(store, city, settings, worker_id())
    assert (outbox(store, city)["status"] == "delivered").all()
    bodies = {c["body"]["kind"]: c["body"] for c in receiver.calls}
    assert bodies["assigned"]["rule_id"] == "graffiti"
    assert bodies["assigned"]["reason"].endswith("→ Parks, rule graffiti v1")
    assert bodies["status_changed"]["status"] == "acknowledged"
    assert bodies["reassigned"]["previous_team"] == "parks"
    notices = [m for m in sink.messages if m["Subject"].startswith("Incident")]
    assert sorted(m["To"] for m in notices) == ["ada@example.org", "bob@example.org"]
    for notice in notices:
        text = "".join(parts(notice))
        # Citizens get the public facts only: no internal note, no other citizen's address.
        assert "« nouveau » à « pris en compte »" in text
        assert "pavement" not in text
        assert "@example.org" not in text


def test_serve_runs_the_worker_in_process(tmp_path: Path) -> None:
    hook = Receiver()
    try:
        folder = _city_folder(tmp_path, hook.url)
        city = load_city(folder, check_files=False)
        url = f"sqlite:///{tmp_path / 'serve.gpkg'}"
        store = open_store(StoreSettings(database_url=url))
        store.upgrade()
        keys = queue(store, city, "hooked", 2)
        store.close()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {
            **os.environ,
            "VOIRIE_DATABASE_URL": url,
            "VOIRIE_TEST_HOOK_SECRET": SECRET,
            "VOIRIE_WORKER_INTERVAL_S": "0.2",
        }
        command = [
            str(Path(sys.executable).parent / "voirie"),
            "serve",
            "--city",
            str(folder),
            "--port",
            str(port),
        ]
        server = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            _wait(lambda: sorted(set(hook.keys())) == keys, 90)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
        idle = subprocess.run(
            [*command[:2], "--help"], env=env, capture_output=True, text=True, check=True
        )
        assert "--no-worker" in idle.stdout
    finally:
        hook.close()


def test_concurrent_workers_never_claim_the_same_message(
    paris: City, store_url: str, store: Store
) -> None:
    city = with_teams(
        paris,
        Team(code="parks", name="Parks", webhook="http://127.0.0.1:9/", webhook_secret=SECRET),
    )
    queue(store, city, "parks", 40)
    claimed: dict[str, list[int]] = {}
    start = threading.Barrier(2)

    def claim(name: str) -> None:
        own = open_store(StoreSettings(database_url=store_url))
        start.wait()
        got: list[int] = []
        for _ in range(10):
            now = datetime.now(UTC)
            with own.transaction(city.jurisdiction_id) as uow:
                rows = uow.outbox.claim(name, now, now + timedelta(minutes=5), 3)
            assert len(rows) <= 3
            got += rows["id"].astype(int).tolist()
        claimed[name] = got
        own.close()

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first, second = claimed["w0"], claimed["w1"]
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(outbox(store, city)["id"].astype(int))
    leased = outbox(store, city)
    assert set(leased["claimed_by"]) == {"w0", "w1"}
