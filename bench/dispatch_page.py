"""Dispatch map weight and time to draw: this version against the previous one (folium).

Imports the bundled Paris DansMaRue file into a fresh embedded store, then renders the
dispatch map of the open incidents of the last 30 days of data (what ``/maps/dispatch``
shows by default) with the current renderer and with the folium renderer of commit
``PEER_COMMIT`` (one ``L.circleMarker`` and one HTML popup per incident), and once more
with the current renderer for 100,000 incidents (the real ones repeated). Each page is
then opened in headless Chromium, offline, until its markers or clusters are drawn.
Usage::

    python bench/dispatch_page.py
"""

from __future__ import annotations

import importlib.util
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import geopandas as gpd
import pandas as pd
import uvicorn
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from playwright.sync_api import sync_playwright

from voirie.city import load_city
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.maps.dispatch import render_dispatch_map
from voirie.maps.static import STATIC_DIR
from voirie.model import OPEN_STATUSES
from voirie.services.pipeline import Pipeline
from voirie.store.selection import Selection
from voirie.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
PEER_COMMIT = "82def87"
BIG = 100_000


def peer_renderer(folder: Path) -> ModuleType:
    """The folium dispatch renderer as of ``PEER_COMMIT``, loaded from git."""
    source = subprocess.run(
        ["git", "show", f"{PEER_COMMIT}:maps/dispatch.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = folder / "dispatch_peer.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("dispatch_peer", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(render: Callable[[], str]) -> tuple[str, float]:
    start = time.perf_counter()
    page = render()
    return page, time.perf_counter() - start


def serve(pages: dict[str, str]) -> tuple[str, Callable[[], None]]:
    """Serve ``pages`` and the vendored assets on 127.0.0.1; return the base URL and a stop."""
    app = FastAPI()
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/{name}", response_class=HTMLResponse)
    def page(name: str) -> str:
        return pages[name]

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    return f"http://127.0.0.1:{sock.getsockname()[1]}", stop


def draw_seconds(url: str, ready: str) -> float:
    """Seconds from navigation until ``ready`` (a JS expression) holds, in Chromium."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.route(
            "**/*",
            lambda r: r.continue_() if r.request.url.startswith("http://127.0.0.1:") else r.abort(),
        )
        start = time.perf_counter()
        page.goto(url, timeout=600_000)
        page.wait_for_function(ready, timeout=600_000)
        seconds = time.perf_counter() - start
        browser.close()
    return seconds


def main() -> int:
    """Print a Markdown table of the measurements."""
    folder = Path(tempfile.mkdtemp())
    city = load_city("paris")
    store = SqliteStore(folder / "bench.gpkg")
    store.upgrade()
    pipeline = Pipeline(city, store)
    pipeline.imports.import_table(read_csv(REPORTS), DANSMARUE)
    incidents = pipeline.reads.incidents(Selection(statuses=tuple(s.value for s in OPEN_STATUSES)))
    newest = incidents["last_reported_at"].max()
    recent = incidents[incidents["last_reported_at"] >= newest - pd.Timedelta(days=30)]
    teams = {code: t.name for code, t in city.teams.items()}
    territory = pipeline.gis.zones[city.config.territory.layer].zones
    outlines = territory.set_geometry(territory.geometry.simplify(5))
    store.close()

    copies = -(-BIG // len(incidents))
    big = gpd.GeoDataFrame(
        pd.concat([incidents] * copies, ignore_index=True).iloc[:BIG], geometry="geometry", crs=4326
    )
    big["incident_id"] = range(1, len(big) + 1)

    peer = peer_renderer(folder)
    pages: dict[str, str] = {}
    rows = []
    cases = [
        (
            "peer",
            "folium, 30 days",
            len(recent),
            lambda: peer.render_dispatch_map(recent, teams, background=outlines),
        ),
        (
            "voirie",
            "this version, 30 days",
            len(recent),
            lambda: render_dispatch_map(recent, teams, background=outlines),
        ),
        (
            "big",
            f"this version, {BIG:,} incidents",
            len(big),
            lambda: render_dispatch_map(big, teams, background=outlines),
        ),
    ]
    for name, label, count, render in cases:
        page, seconds = timed(render)
        pages[name] = page
        rows.append([label, count, len(page.encode()) / 1e6, seconds])
    base, stop = serve(pages)
    try:
        drawn = (
            "() => document.querySelectorAll('path.voirie-incident, .marker-cluster')"
            ".length > 0 && (document.querySelector('#voirie-map') === null || "
            "document.querySelector('#voirie-map').dataset.ready === 'true')"
        )
        for row, name in zip(rows, pages, strict=True):
            row.append(draw_seconds(f"{base}/{name}", drawn))
    finally:
        stop()

    print(
        f"Python {sys.version.split()[0]}, {platform.machine()}, "
        f"geopandas {gpd.__version__}, pandas {pd.__version__}"
    )
    print("| page | incidents | size (MB) | render (s) | Chromium until drawn (s) |")
    print("|---|---|---|---|---|")
    for label, count, size, render_s, draw_s in rows:
        print(f"| {label} | {count:,} | {size:.2f} | {render_s:.2f} | {draw_s:.2f} |")
    peer_row, ours = rows[0], rows[1]
    print(
        f"\nsize ratio peer/this: {peer_row[2] / ours[2]:.1f}x; "
        f"render ratio: {peer_row[3] / ours[3]:.1f}x; draw ratio: {peer_row[4] / ours[4]:.1f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
