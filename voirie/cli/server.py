"""``voirie serve``, ``voirie worker`` and ``voirie demo``: the long-running processes."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pandas as pd
from rich.console import Console
from rich.table import Table

from voirie.city import load_city
from voirie.cityset import load_hosts, load_sites
from voirie.cli.common import city_option, configured_store, console, fail_cleanly
from voirie.cli.data import run_import
from voirie.ingest.sources import read_csv
from voirie.notify.outbox import DEAD
from voirie.notify.worker import run, run_once, start_in_thread, worker_id
from voirie.services.demo import relive, simulate_work
from voirie.services.pipeline import Pipeline
from voirie.settings import (
    CitiesSettings,
    CitySettings,
    LogSettings,
    OutboxSettings,
    RateLimitSettings,
    ServerSettings,
    StoreSettings,
)

DEMO_REPORTS = "reports/dansmarue_2023-07_2024-03.csv.gz"


def _urls(base: str) -> str:
    """The addresses a person opens first, on ``base``."""
    return (
        f"  dispatch map        {base}/maps/dispatch\n"
        f"  staff pages         {base}/staff/ (accounts: voirie users add NAME --role ...)\n"
        f"  report a problem    {base}/signaler\n"
        f"  issues near me      {base}/maps/nearby\n"
        f"  incidents (GeoJSON) {base}/exports/incidents.geojson\n"
        f"  reports (GeoPackage) {base}/exports/reports.gpkg\n"
        f"  OGC API Features    {base}/ogc\n"
        f"  QGIS project        {base}/exports/voirie.qgs\n"
        f"  vector tiles        {base}/tiles/incidents.json\n"
        f"  API documentation   {base}/docs"
    )


def _serve(
    city: str, host: str, port: int, worker: bool = True, workers: int = 1, log_format: str = "text"
) -> None:
    """Serve ``city``, or every city of ``VOIRIE_CITIES`` when it names several."""
    import uvicorn

    from voirie.api.app import create_app
    from voirie.api.logs import log_config
    from voirie.api.metrics import MULTIPROCESS_ENV
    from voirie.api.multicity import MultiCity
    from voirie.cli.prefork import Outbox, serve_prefork
    from voirie.gis.enrich import CityGIS

    cities = CitiesSettings()
    spec = cities.cities
    sites = load_sites(spec) if spec else []
    hosts = load_hosts(cities.city_hosts, sites) if len(sites) > 1 else []
    if len(sites) == 1:  # one city named: served at the root, as VOIRIE_CITY
        city = str(sites[0].city.folder)
    several = len(sites) > 1
    base = f"http://{host}:{port}"
    plural = "s" if workers > 1 else ""
    if several:
        names = ", ".join(site.city.config.name for site in sites)
        console.print(f"[bold]voirie is serving {names}[/] ({workers} worker{plural})")
        for site in sites:
            console.print(
                f"[bold]{site.city.config.name}[/] (Open311 jurisdiction_id "
                f"{site.city.jurisdiction_id})\n{_urls(f'{base}/{site.slug}')}"
            )
        for own in hosts:
            console.print(f"  {own.slug} at the root of {own.url}/ (Host: {own.hostname})")
        console.print(f"  cities              {base}/")
    else:
        console.print(f"[bold]voirie is serving {city}[/] ({workers} worker{plural})")
        console.print(_urls(base))
    console.print(
        f"  Open311 GeoReport v2 {base}/open311/v2/discovery.json"
        + ("?jurisdiction_id=..." if several else "")
        + f"\n  health, readiness   {base}/healthz {base}/readyz\n"
        f"  metrics             {base}/metrics"
    )
    outboxes = (
        [Outbox(str(site.city.folder), f"/{site.slug}") for site in sites]
        if several
        else [Outbox(city)]
    )
    logging_json = log_config(LogSettings().log_level) if log_format == "json" else None
    if workers > 1:
        # The workers' metrics meet in one folder, which must exist before they start.
        if not os.environ.get(MULTIPROCESS_ENV):
            folder = tempfile.mkdtemp(prefix="voirie-metrics-")
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            os.environ[MULTIPROCESS_ENV] = folder
        # Migrated here, once: workers upgrading one store at the same time would race.
        configured_store().close()
        # Built here, once: the forked workers share the cities' indexes (voirie.cli.prefork).
        app: Any
        if several:
            gis = {site.slug: CityGIS(site.city) for site in sites}
            app = MultiCity(
                StoreSettings(),
                sites,
                rate_limits=RateLimitSettings(),
                gis=gis,
                hosts=hosts,
                full_pool=True,
            )
        else:
            app = create_app(
                StoreSettings(),
                CitySettings(city=city),
                rate_limits=RateLimitSettings(),
                gis=CityGIS(load_city(city)),
                full_pool=True,
            )
        serve_prefork(app, outboxes, f"{host}:{port}", workers, worker, logging_json)
        return
    if worker:
        # The outbox workers in this process, each on its own store connections.
        for outbox in outboxes:
            start_in_thread(configured_store(), load_city(outbox.city), outbox.settings())
    # uvicorn's proxy headers off: X-Forwarded-For is believed only from
    # VOIRIE_TRUSTED_PROXIES, by the rate limits (one rule, not two).
    options: dict[str, Any] = {"host": host, "port": port, "proxy_headers": False}
    if logging_json is not None:  # voirie.access replaces uvicorn's access lines
        options |= {"log_config": logging_json, "access_log": False}
    if several:
        app = MultiCity(
            StoreSettings(), sites, rate_limits=RateLimitSettings(), hosts=hosts, full_pool=True
        )
    else:
        app = create_app(
            StoreSettings(),
            CitySettings(city=city),
            rate_limits=RateLimitSettings(),
            full_pool=True,
        )
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
    """Serve the maps, downloads and APIs (of every city of VOIRIE_CITIES when it names
    several: each under /CITY/, Open311 at the root selected by jurisdiction_id, and at
    the root of its own host name with VOIRIE_CITY_HOSTS)."""
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
    loaded = load_city(city, check_files=False)
    settings = _outbox_settings(loaded.jurisdiction_id)
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


def _outbox_settings(jurisdiction_id: str) -> OutboxSettings:
    """The outbox settings of a city; its emails' links under the city's path prefix when
    ``VOIRIE_CITIES`` serves it among several."""
    from voirie.cli.prefork import outbox_settings

    spec = CitiesSettings().cities
    sites = load_sites(spec) if spec else []
    prefixes = [f"/{s.slug}" for s in sites if s.city.jurisdiction_id == jurisdiction_id]
    prefix = prefixes[0] if len(sites) > 1 and prefixes else ""
    return outbox_settings(prefix)


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
    """Import the bundled Paris reports, moved so that the newest is today, into the
    embedded store, simulate the teams' work on them (acknowledged, resolved, some late),
    then serve everything. A store that already holds reports is served as it is."""
    city = load_city("paris")
    store = configured_store()
    try:
        pipeline = Pipeline(city, store)
        if pipeline.reads.count("reports"):
            console.print("The store already holds reports: served as it is.")
        else:
            _living_demo(pipeline)
    finally:
        store.close()
    if not no_serve:
        _serve("paris", host, port)


def _living_demo(pipeline: Pipeline) -> None:
    """The bundled history relived up to now, imported, then worked on (services.demo)."""
    now = datetime.now(UTC)
    city = pipeline.city
    raw = read_csv(city.path(DEMO_REPORTS))
    moved = relive(raw.rows[raw.columns], now, city.config.timezone)
    with tempfile.TemporaryDirectory(prefix="voirie-demo-") as folder:
        source = Path(folder) / "dansmarue_relived.csv"
        moved.to_csv(source, index=False)
        run_import(pipeline, source, "dansmarue", None, Path("demo.quarantine.csv"))
    done = simulate_work(pipeline.store, city, pipeline.reads, now)
    statuses = ", ".join(f"{count} {status}" for status, count in sorted(done.statuses.items()))
    console.print(f"Simulated the teams' work: {done.events} status changes; now {statuses}.")
