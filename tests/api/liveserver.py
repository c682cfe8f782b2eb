"""A real ``voirie serve`` on a free 127.0.0.1 port, for GDAL and other outside clients.

GDAL (``ogrinfo``/``ogr2ogr``) reaches the server over HTTP exactly as a GIS officer's
tools do; the server's access log is kept so tests can see which requests GDAL made.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from clirunner import voirie_executable
from databases import scratch_database
from fastapi.testclient import TestClient

from voirie.api.app import create_app
from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.services.pipeline import Pipeline
from voirie.settings import CitySettings, StoreSettings
from voirie.store import open_store

DATA = Path(__file__).parents[1] / "data" / "dansmarue_200.csv"
START_TIMEOUT_S = 60.0


def load_reports(url: str, city: City, gis: CityGIS) -> None:
    """Import the 200 real Paris reports into the store at ``url``."""
    store = open_store(StoreSettings(database_url=url, pool_min_size=1, pool_max_size=2))
    try:
        store.upgrade()
        Pipeline(city, store, gis).imports.import_table(read_csv(DATA), DANSMARUE)
    finally:
        store.close()


@contextmanager
def loaded_store(
    request: pytest.FixtureRequest, folder: Path, city: City, gis: CityGIS
) -> Iterator[str]:
    """URL of a store of the backend ``request.param`` holding the 200 Paris reports.

    For module-scoped fixtures: PostGIS gets its own database, dropped at the end.
    """
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'voirie.gpkg'}"
        load_reports(url, city, gis)
        yield url
        return
    databases = scratch_database(request.getfixturevalue("postgis_server"))
    url = next(databases)
    try:
        load_reports(url, city, gis)
        yield url
    finally:
        databases.close()


def sample_client(
    request: pytest.FixtureRequest, folder: Path, city: City, gis: CityGIS
) -> Iterator[TestClient]:
    """An in-process client of the app on a ``loaded_store`` (for module-scoped fixtures)."""
    with loaded_store(request, folder, city, gis) as url:
        app = create_app(
            StoreSettings(database_url=url, pool_min_size=1, pool_max_size=2),
            CitySettings(city=str(city.folder)),
            gis=gis,  # not the app's own: 2 s and ~500 MB each
        )
        with TestClient(app) as client:
            yield client


def free_port() -> int:
    """A TCP port nobody listens on at this instant."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LiveServer:
    """A running server: its base URL, the log (with the access log) it writes and its
    process id (to read its memory use from ``/proc``)."""

    base: str
    log: Path
    pid: int

    def requests(self) -> list[str]:
        """Request lines of the access log so far (``GET /path?query``)."""
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return [line.split('"')[1] for line in lines if '"GET ' in line]

    def get(self, path: str) -> bytes:
        """Body of a GET on this server (raises on an HTTP error)."""
        with urllib.request.urlopen(self.base + path, timeout=60) as response:
            body: bytes = response.read()
            return body


@contextmanager
def serving(database_url: str, folder: Path) -> Iterator[LiveServer]:
    """``voirie serve`` for Paris on ``database_url`` until the block ends."""
    port = free_port()
    log = folder / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOIRIE_")}
    env |= {"VOIRIE_DATABASE_URL": database_url, "VOIRIE_CITY": "paris", "NO_COLOR": "1"}
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            # No outbox worker: the clients read a fixed state, which nothing but their
            # own requests may change while they read it.
            [
                voirie_executable(),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-worker",
            ],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", log, process.pid)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                server.get("/healthz")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"voirie serve did not start:\n{log.read_text(encoding='utf-8')}"
                    ) from None
                time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
