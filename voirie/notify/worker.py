"""The worker: delivers the outbox (team webhooks and email) and runs escalation.

Delivery is at least once. A worker leases a few due messages (``uow.outbox.claim``: ``FOR
UPDATE SKIP LOCKED`` on PostGIS, the write lock on sqlite, so two workers never take the
same message), delivers each, then records the outcome. A worker killed in between
leaves its lease to expire, and the message is delivered again by the next worker with
the same idempotency key (the receiver drops what it has already seen).

Webhooks get an HTTP POST of the JSON payload with ``Idempotency-Key`` and
``X-Voirie-Signature: sha256=<hex HMAC-SHA256 of the body>`` keyed with the team's
secret (``webhook_secret_env`` names an environment variable, or ``webhook_secret``).
A failed attempt is retried after ``outbox_backoff_s`` × 2^(attempt − 1); after
``outbox_max_attempts`` the message is dead-lettered (``status = dead``) with the reason.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import smtplib
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from voirie.city import City, Team
from voirie.notify.escalation import escalate
from voirie.notify.mail import ComposeError, Composer
from voirie.notify.outbox import DEAD, DELIVERED, EMAIL, PENDING, WEBHOOK
from voirie.settings import OutboxSettings
from voirie.store.base import Store
from voirie.store.privacy import PURGE_EVERY_S, purge_expired

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Voirie-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class DeliveryError(Exception):
    """One failed attempt, with the reason shown on the dead letter."""


def worker_id() -> str:
    """A name for this worker process, unique among workers running at once."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def webhook_secret(team: Team) -> bytes:
    """The team's HMAC key, from the environment variable city.yaml names or city.yaml."""
    if team.webhook_secret_env:
        value = os.environ.get(team.webhook_secret_env)
        if value:
            return value.encode()
        raise DeliveryError(
            f"no webhook secret for team {team.code}: set {team.webhook_secret_env}"
        )
    if team.webhook_secret:
        return team.webhook_secret.encode()
    raise DeliveryError(f"no webhook secret for team {team.code} in city.yaml")


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value a receiver recomputes to trust the body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} {exc.reason} from {url}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"cannot reach {url}: {reason}") from exc


def _mail(message: Any, settings: OutboxSettings) -> None:
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.http_timeout_s
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_user and settings.smtp_password:
                smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
            smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP {settings.smtp_host}:{settings.smtp_port}: {exc}") from exc


def deliver(row: Any, city: City, settings: OutboxSettings) -> None:
    """Deliver one outbox row; raise ``DeliveryError`` saying why it failed."""
    body = str(row.payload).encode()
    key = str(row.idempotency_key)
    if row.channel == WEBHOOK:
        team = city.teams.get(str(row.team))
        if team is None:
            raise DeliveryError(f"team {row.team} is no longer in city.yaml")
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: key,
            SIGNATURE_HEADER: sign(webhook_secret(team), body),
        }
        _post(str(row.target), body, headers, settings.http_timeout_s)
    elif row.channel == EMAIL:
        composer = Composer(
            city.config.name, city.config.locale, settings.public_url, settings.mail_from
        )
        try:
            message = composer.message(row)
        except ComposeError as exc:
            raise DeliveryError(str(exc)) from exc
        message["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@voirie>"
        message["X-Voirie-Idempotency-Key"] = key
        _mail(message, settings)
    else:
        raise DeliveryError(f"unknown channel {row.channel!r}")


@dataclass
class Delivered:
    """What one pass over the outbox did."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0

    @property
    def attempted(self) -> int:
        """Messages tried in this pass."""
        return self.delivered + self.retried + self.dead


def _outcome(
    row: Any, error: str | None, at: datetime, settings: OutboxSettings
) -> dict[str, object]:
    attempts = int(row.attempts) + 1
    if error is None:
        return {
            "id": int(row.id),
            "status": DELIVERED,
            "attempts": attempts,
            "next_attempt_at": row.next_attempt_at,
            "last_error": None,
            "delivered_at": at,
        }
    dead = attempts >= settings.outbox_max_attempts
    delay = timedelta(seconds=settings.outbox_backoff_s * 2 ** (attempts - 1))
    return {
        "id": int(row.id),
        "status": DEAD if dead else PENDING,
        "attempts": attempts,
        "next_attempt_at": row.next_attempt_at if dead else at + delay,
        "last_error": f"dead after {attempts} attempts: {error}" if dead else error,
        "delivered_at": None,
    }


def deliver_due(
    store: Store,
    city: City,
    settings: OutboxSettings,
    worker: str,
    now: datetime | None = None,
) -> Delivered:
    """Lease the due messages, deliver each and record each outcome as soon as known."""
    at = now or datetime.now(UTC)
    jurisdiction = city.jurisdiction_id
    with store.transaction(jurisdiction) as uow:
        claimed = uow.outbox.claim(
            worker, at, at + timedelta(seconds=settings.outbox_lease_s), settings.outbox_batch
        )
    done = Delivered()
    for row in claimed.itertuples(index=False):
        try:
            deliver(row, city, settings)
            error = None
        except DeliveryError as exc:
            error = str(exc)
        outcome = _outcome(row, error, now or datetime.now(UTC), settings)
        with store.transaction(jurisdiction) as uow:
            uow.outbox.finish(pd.DataFrame([outcome]))
        if outcome["status"] == DELIVERED:
            done.delivered += 1
        elif outcome["status"] == DEAD:
            done.dead += 1
            log.warning("outbox %s dead-lettered: %s", row.idempotency_key, error)
        else:
            done.retried += 1
    return done


def run_once(store: Store, city: City, settings: OutboxSettings, worker: str) -> Delivered:
    """Escalate what is due, then deliver until no due message is left."""
    escalate(store, city)
    total = Delivered()
    while True:
        done = deliver_due(store, city, settings, worker)
        total.delivered += done.delivered
        total.retried += done.retried
        total.dead += done.dead
        if done.attempted < settings.outbox_batch:
            return total


def run(store: Store, city: City, settings: OutboxSettings, stop: threading.Event) -> None:
    """Work every ``worker_interval_s`` until ``stop`` is set; a failing pass is logged
    and retried at the next interval (the worker of ``voirie serve`` must not die).

    While the database is down every pass fails the same way: the first failure is
    logged with its traceback, each later one as one line with its reason, and the
    recovery once, so that an outage does not flood the log with identical tracebacks.
    """
    name = worker_id()
    log.info("outbox worker %s started for %s", name, city.jurisdiction_id)
    failed = 0  # passes failed in a row
    purge_at = 0.0  # monotonic time of the next retention purge (privacy.retention_days)
    while not stop.is_set():
        try:
            run_once(store, city, settings, name)
            if time.monotonic() >= purge_at:
                purge_expired(store, city)
                purge_at = time.monotonic() + PURGE_EVERY_S
        except Exception as exc:
            failed += 1
            reason = f"{type(exc).__name__}: {' '.join(str(exc).split())}"  # one line
            retry = settings.worker_interval_s
            if failed == 1:
                log.exception("outbox worker pass failed (%s); retrying in %ss", reason, retry)
            else:
                log.error(
                    "outbox worker pass %d failed: %s; retrying in %ss", failed, reason, retry
                )
        else:
            if failed:
                log.info("outbox worker recovered after %d failed passes", failed)
            failed = 0
        stop.wait(settings.worker_interval_s)


def start_in_thread(
    store: Store, city: City, settings: OutboxSettings
) -> tuple[threading.Thread, threading.Event]:
    """The worker in a daemon thread of this process (``voirie serve``); set the event to
    stop it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run, args=(store, city, settings, stop), name="voirie-worker", daemon=True
    )
    thread.start()
    return thread, stop
