"""``voirie serve --workers N``: server processes forked from one that built the city once.

uvicorn's own ``--workers`` starts every worker as a fresh interpreter: each one loads the
city and builds its street and zone indexes again (seconds of CPU and ~0.5 GB each). Here
gunicorn's master builds the application first, GIS indexes included, then forks the
workers (``preload_app``), so the indexes are built once and their pages shared
copy-on-write. What must not be shared is opened after the fork: each worker's store pool
in the app's lifespan, and the outbox worker in a process of its own, started before the
first worker so that the master never forks while a thread of its own is running.
Serving several cities (``VOIRIE_CITIES``), every city's indexes are built before the fork
and the outbox process runs one outbox worker per city.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.context import ForkProcess
from types import FrameType
from typing import Any, ClassVar

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker
from starlette.types import ASGIApp
from uvicorn_worker import UvicornWorker

from voirie.city import load_city
from voirie.cli.common import configured_store
from voirie.notify.worker import run as run_outbox
from voirie.settings import OutboxSettings

# A worker that sends no heartbeat for this long is killed and replaced by the master.
WORKER_TIMEOUT_S = 60


class VoirieWorker(UvicornWorker):  # type: ignore[misc]  # untyped base
    """uvicorn in a gunicorn worker, without uvicorn's proxy headers: X-Forwarded-For is
    believed only from ``VOIRIE_TRUSTED_PROXIES``, by the rate limits (one rule, not two)."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "auto",
        "http": "auto",
        "proxy_headers": False,
    }


@dataclass(frozen=True)
class Outbox:
    """One city's outbox worker: the city folder, and the path prefix the city is served
    under (empty for a city served at the root), which the links in its emails carry."""

    city: str
    prefix: str = ""

    def settings(self) -> OutboxSettings:
        """The outbox settings, the links of this city's emails under its prefix."""
        return outbox_settings(self.prefix)


def outbox_settings(prefix: str) -> OutboxSettings:
    """The outbox settings (``VOIRIE_*``), the links in emails under the path ``prefix``
    the city is served under (none for a city served at the root)."""
    settings = OutboxSettings()
    if not prefix:
        return settings
    return settings.model_copy(update={"public_url": settings.public_url.rstrip("/") + prefix})


class PreforkServer(BaseApplication):  # type: ignore[misc]  # untyped base
    """gunicorn serving an application object built in this process before any fork."""

    def __init__(
        self, app: ASGIApp, options: dict[str, Any], outboxes: Sequence[Outbox], outbox: bool
    ) -> None:
        self.application = app
        self.options = options
        self.outboxes = tuple(outboxes)
        self.outbox = outbox
        self.outbox_process: ForkProcess | None = None
        super().__init__()

    def load_config(self) -> None:
        """gunicorn's settings from ``options`` plus the hooks below."""
        for key, value in self.options.items():
            self.cfg.set(key, value)
        self.cfg.set("when_ready", self._when_ready)
        self.cfg.set("on_exit", self._on_exit)
        self.cfg.set("child_exit", _child_exit)

    def load(self) -> ASGIApp:
        """The application, already built (``preload_app``: loaded once, in the master)."""
        return self.application

    def _when_ready(self, _arbiter: Arbiter) -> None:
        """Start the outbox workers, in a process of their own, before the first server worker."""
        if self.outbox:
            context = multiprocessing.get_context("fork")
            self.outbox_process = context.Process(
                target=_outbox_process, args=(self.outboxes,), name="voirie-outbox", daemon=True
            )
            self.outbox_process.start()

    def _on_exit(self, _arbiter: Arbiter) -> None:
        """Stop the outbox worker with the master: its pass in progress ends first."""
        if self.outbox_process is not None and self.outbox_process.is_alive():
            self.outbox_process.terminate()
            self.outbox_process.join(timeout=30)


def _child_exit(_arbiter: Arbiter, worker: Worker) -> None:
    """Drop a dead worker's live gauges from the shared metrics folder (Prometheus
    multiprocess mode), so that /metrics does not count a process that is gone."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def _outbox_process(outboxes: Sequence[Outbox]) -> None:
    """The outbox workers' process, one thread and store pool per city; SIGTERM ends
    them after their pass."""
    stop = threading.Event()

    def finish(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    threads = [
        threading.Thread(target=_run_outbox, args=(outbox, stop), name=f"voirie-outbox-{n}")
        for n, outbox in enumerate(outboxes)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _run_outbox(outbox: Outbox, stop: threading.Event) -> None:
    """One city's outbox worker on a store pool of its own, until ``stop`` is set."""
    store = configured_store()
    try:
        run_outbox(store, load_city(outbox.city), outbox.settings(), stop)
    finally:
        store.close()


def serve_prefork(
    app: ASGIApp,
    outboxes: Sequence[Outbox],
    bind: str,
    workers: int,
    outbox: bool,
    logconfig: dict[str, Any] | None,
) -> None:
    """Serve ``app`` on ``bind`` (host:port) with ``workers`` forked processes (and, with
    ``outbox``, the ``outboxes``' workers in a process of their own)."""
    options: dict[str, Any] = {
        "bind": bind,
        "workers": workers,
        "worker_class": f"{VoirieWorker.__module__}.{VoirieWorker.__qualname__}",
        "preload_app": True,
        "timeout": WORKER_TIMEOUT_S,
        "graceful_timeout": 30,
        "control_socket_disable": True,  # gunicorn's admin socket: one path per machine
    }
    if logconfig is not None:
        options["logconfig_dict"] = logconfig
    PreforkServer(app, options, outboxes, outbox).run()
