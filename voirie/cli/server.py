"""``voirie serve``, ``voirie worker`` and ``voirie demo``: the long-running processes."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import click
import pandas as pd
from rich.console import Console
from rich.table import Table

from voirie.city import load_city
from voirie.cli.common import city_option, configured_store, console, fail_cleanly
from voirie.cli.data import run_import
from voirie.notify.outbox import DEAD
from voirie.notify.worker import run, run_once, start_in_thread, worker_id
from voirie.services.pipeline import Pipeline
from voirie.settings import (
    CitySettings,
    LogSettings,
    OutboxSettings,
    RateLimitSettings,
    ServerSettings,
    StoreSettings,
)

DEMO_REPORTS = "reports/dansmarue_2023-07_2024-03.csv.gz"
WORKER_HEALTHCHECK_S = 120


def _serve(
    city: str, host: str, port: int, worker: bool = True, workers: int = 1, log_format: str = "text"
) -> None:
    import uvicorn

    from voirie.api.app import create_app
    from voirie.api.logs import log_config
    from voirie.api.metrics import MULTIPROCESS_ENV

    if workers > 1:
        # Each worker is a process that builds its app from VOIRIE_* (app_from_env); their
        # metrics meet in one folder, which must exist before they start.
        os.environ["VOIRIE_CITY"] = city
        if not os.environ.get(MULTIPROCESS_ENV):
            folder = tempfile.mkdtemp(prefix="voirie-metrics-")
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            os.environ[MULTIPROCESS_ENV] = folder
    if worker:
        # The outbox worker in this process, on its own store connections.
        start_in_thread(configured_store(), load_city(city), OutboxSettings())
    base = f"http://{host}:{port}"
    console.print(
        f"[bold]voirie is serving {city}[/] ({workers} worker{'s' if workers > 1 else ''})\n"
        f"  dispatch map        {base}/maps/dispatch\n"
        f"  issues near me      {base}/maps/nearby\n"
        f"  incidents (GeoJSON) {base}/exports/incidents.geojson\n"
        f"  reports (GeoPackage) {base}/exports/reports.gpkg\n"
        f"  Open311 GeoReport v2 {base}/open311/v2/discovery.json\n"
        f"  OGC API Features    {base}/ogc\n"
        f"  QGIS project        {base}/exports/voirie.qgs\n"
        f"  vector tiles        {base}/tiles/incidents.json\n"
        f"  API documentation   {base}/docs\n"
        f"  health, readiness   {base}/healthz {base}/readyz\n"
        f"  metrics             {base}/metrics"
    )
    # uvicorn's proxy headers off: X-Forwarded-For is believed only from
    # VOIRIE_TRUSTED_PROXIES, by the rate limits (one rule, not two).
    options: dict[str, Any] = {"host": host, "port": port, "proxy_headers": False}
    if log_format == "json":  # voirie.access replaces uvicorn's access lines
        options |= {"log_config": log_config(LogSettings().log_level), "access_log": False}
    if workers > 1:
        # A worker loading a city's street index holds the GIL for seconds: uvicorn's 5 s
        # health check would kill it while it starts.
        options["timeout_worker_healthcheck"] = WORKER_HEALTHCHECK_S
        uvicorn.run("voirie.api.app:app_from_env", factory=True, workers=workers, **options)
    else:
        app = create_app(StoreSettings(), CitySettings(city=city), rate_limits=RateLimitSettings())
        uvicorn.run(app, **options)


@click.command("serve")
@city_option
@click.option("--host", default=ServerSettings().host, show_default=True)
@click.option("--port", default=ServerSettings().port, show_default=True, type=int)
@click.option(
    "--worker/--no-worker",
    default=True,
    show_default=True,
    help="Run the outbox worker (notifications, escalation) in this process.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes answering requests (about one per CPU core); each holds its "
    "own database pool. Rate limits are per process unless VOIRIE_RATE_STORAGE_URL is shared.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=LogSettings().log_format,
    show_default="VOIRIE_LOG_FORMAT or text",
    help="json: one JSON object a line with the request id, for a log collector.",
)
@fail_cleanly
def serve_command(
    city: str, host: str, port: int, worker: bool, workers: int, log_format: str
) -> None:
    """Serve the maps, downloads and APIs."""
    _serve(city, host, port, worker, workers, log_format)


@click.command("worker")
@city_option
@click.option("--once", is_flag=True, help="One pass (escalate, deliver what is due), then exit.")
@click.option(
    "--dead-letters",
    is_flag=True,
    help="List the messages given up on, with the reason, then exit.",
)
@fail_cleanly
def worker_command(city: str, once: bool, dead_letters: bool) -> None:
    """Deliver notifications from the outbox and escalate overdue incidents, every
    VOIRIE_WORKER_INTERVAL_S seconds (several workers may run at once)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    store = configured_store()
    settings = OutboxSettings()
    loaded = load_city(city, check_files=False)
    try:
        if dead_letters:
            _print_dead_letters(store.lookup("outbox", loaded.jurisdiction_id, "status", [DEAD]))
        elif once:
            done = run_once(store, loaded, settings, worker_id())
            console.print(
                f"delivered {done.delivered}, to retry {done.retried}, dead-lettered {done.dead}"
            )
        else:
            run(store, loaded, settings, threading.Event())
    finally:
        store.close()


def _print_dead_letters(rows: pd.DataFrame) -> None:
    """Dead letters without their target (a citizen's address is personal data)."""
    table = Table(title=f"{len(rows)} dead letters")
    for column in ("idempotency key", "channel", "team", "attempts", "reason"):
        table.add_column(column, overflow="fold")
    for row in rows.itertuples(index=False):
        table.add_row(
            str(row.idempotency_key),
            str(row.channel),
            str(row.team or "-"),
            str(row.attempts),
            str(row.last_error),
        )
    Console().print(table)


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="Import and export only; do not start the server.")
@fail_cleanly
def demo_command(host: str, port: int, no_serve: bool) -> None:
    """Import the bundled Paris reports into the embedded store, then serve everything."""
    city = load_city("paris")
    store = configured_store()
    try:
        pipeline = Pipeline(city, store)
        run_import(
            pipeline, city.path(DEMO_REPORTS), "dansmarue", None, Path("demo.quarantine.csv")
        )
    finally:
        store.close()
    if not no_serve:
        _serve("paris", host, port)
