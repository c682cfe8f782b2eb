"""The outbox worker through a database outage: one traceback per outage, one line per
failed pass naming the reason, the recovery logged once (on a real PostGIS database
whose connections are refused, then allowed again)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from databases import allow_connections

from voirie.city import City
from voirie.notify.worker import start_in_thread
from voirie.settings import OutboxSettings, StoreSettings
from voirie.store import open_store

pytestmark = pytest.mark.postgis
WORKER_LOG = "voirie.notify.worker"


def _until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_an_outage_logs_one_traceback_then_one_line_per_pass(
    postgis_server: str, postgis_url: str, paris: City, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=WORKER_LOG)
    settings = StoreSettings(database_url=postgis_url, pool_max_size=2, pool_timeout_s=0.5)
    store = open_store(settings)
    store.upgrade()
    database = urlsplit(postgis_url).path.lstrip("/")

    def worker_records() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == WORKER_LOG]

    def failures() -> list[logging.LogRecord]:
        return [r for r in worker_records() if r.levelno >= logging.ERROR]

    allow_connections(postgis_server, database, allowed=False)
    thread, stop = start_in_thread(store, paris, OutboxSettings(worker_interval_s=0.05))
    try:
        _until(lambda: len(failures()) >= 4)
        allow_connections(postgis_server, database, allowed=True)
        _until(lambda: any("recovered" in r.getMessage() for r in worker_records()))
    finally:
        stop.set()
        thread.join(timeout=10)
        allow_connections(postgis_server, database, allowed=True)
        store.close()

    failed = failures()
    with_traceback = [r for r in failed if r.exc_info]
    assert with_traceback == [failed[0]]
    for record in failed[1:]:
        message = record.getMessage()
        assert "\n" not in message
        assert "failed: " in message
        assert len(message.split("failed: ", 1)[1]) > len("Error: ")  # the reason is named
    (recovered,) = [r for r in worker_records() if "recovered" in r.getMessage()]
    assert f"after {len(failed)} failed passes" in recovered.getMessage()
