"""A real ``voirie serve`` with ``VOIRIE_CITIES=paris,chicago``: one process, and forked
workers that share the cities' indexes built before the fork (with the outbox process
running one worker per city); and uvicorn on the factory ``voirie.api.multicity:app_from_env``.
Paris also has a host name of its own (``VOIRIE_CITY_HOSTS``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from clirunner import voirie_executable
from liveserver import free_port
from multicity_world import (
    BOUNDS,
    GRAFFITI_CHICAGO,
    JURISDICTIONS,
    LEXINGTON,
    WINDOWS,
    load_both,
)

from voirie.city import City, load_city
from voirie.gis.enrich import CityGIS

START_TIMEOUT_S = 240.0  # two cities' indexes on a loaded 2-core machine
PARIS_URL = "https://signalements.paris.example"  # Paris's own address (VOIRIE_CITY_HOSTS)


def _get(base: str, path: str, host: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(base + path, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as refused:
        return int(refused.code), bytes(refused.read())


def _post(base: str, path: str, fields: dict[str, str]) -> tuple[int, bytes]:
    body = urllib.parse.urlencode(fields).encode()
    try:
        with urllib.request.urlopen(base + path, data=body, timeout=60) as answer:
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as refused:
        return int(refused.code), bytes(refused.read())


@pytest.fixture(scope="module")
def chicago() -> City:
    return load_city("chicago")


@pytest.fixture(
    scope="module", params=[1, 2, "factory"], ids=["1-worker", "2-workers", "uvicorn-factory"]
)
def served(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    paris: City,
    paris_gis: CityGIS,
    chicago: City,
) -> Iterator[tuple[str, dict[str, str], Path, bool]]:
    """``voirie serve`` (or uvicorn on the factory) of both cities on an sqlite store
    holding both samples: its base URL, the cities' Open311 client keys, its log and
    whether it is uvicorn on the factory."""
    folder = tmp_path_factory.mktemp("multicity-serve")
    url = f"sqlite:///{folder / 'voirie.gpkg'}"
    _, _, keys, _ = load_both(url, paris, paris_gis, chicago, CityGIS(chicago))
    port = free_port()
    log = folder / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOIRIE_")}
    env |= {
        "VOIRIE_DATABASE_URL": url,
        "VOIRIE_CITIES": "paris,chicago",
        "VOIRIE_CITY_HOSTS": f"paris={PARIS_URL}",
        "NO_COLOR": "1",
    }
    if request.param == "factory":
        command = [sys.executable, "-m", "uvicorn", "voirie.api.multicity:app_from_env"]
        command += ["--factory", "--port", str(port), "--no-proxy-headers"]
    else:
        # The outbox workers (one per city) run with several server workers, not with
        # one: both ways of starting them are exercised.
        workers = int(request.param)
        command = [voirie_executable(), "serve", "--port", str(port), "--workers", str(workers)]
        command += ["--worker"] if workers > 1 else ["--no-worker"]
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if _get(base, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"voirie serve did not start:\n{log.read_text()}")
            time.sleep(0.5)
        yield base, keys, log, request.param == "factory"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_one_server_serves_both_cities(served: tuple[str, dict[str, str], Path, bool]) -> None:
    base, keys, log, factory = served
    status, body = _get(base, "/?f=json")
    assert status == 200
    assert [c["path"] for c in json.loads(body)["cities"]] == ["/paris/", "/chicago/"]
    banner = log.read_text(encoding="utf-8")
    if not factory:  # voirie serve's banner (uvicorn on the factory prints none)
        assert f"{base}/paris/maps/dispatch" in banner
        assert f"{base}/chicago/maps/dispatch" in banner
        assert f"paris at the root of {PARIS_URL}/" in banner

    # Paris's own host name: Paris alone at the root, links on its address.
    paris_host = "signalements.paris.example"
    status, body = _get(base, "/open311/v2/discovery.json", paris_host)
    assert status == 200, body
    assert json.loads(body)["endpoints"][0]["url"] == f"{PARIS_URL}/open311/v2"
    status, body = _get(base, "/ogc/collections/incidents/items?f=json&limit=1000", paris_host)
    assert status == 200
    west, south, east, north = BOUNDS["paris"]
    for feature in json.loads(body)["features"]:
        lon, lat = feature["geometry"]["coordinates"]
        assert west <= lon <= east
        assert south <= lat <= north

    status, body = _get(base, "/open311/v2/services.json")
    assert status == 400
    assert b"jurisdiction_id: required" in body

    # A Chicago request posted at the root, its jurisdiction in the form only.
    status, body = _post(
        base,
        "/open311/v2/requests.json",
        {
            "jurisdiction_id": "chicago.gov",
            "api_key": keys["chicago"],
            "service_code": GRAFFITI_CHICAGO,
            **LEXINGTON,
        },
    )
    assert status == 201, body
    request_id = json.loads(body)[0]["service_request_id"]
    path = f"/open311/v2/requests/{request_id}.json?jurisdiction_id="
    assert _get(base, path + "chicago.gov")[0] == 200
    assert _get(base, path + "paris.fr")[0] == 404

    for slug in ("paris", "chicago"):
        query = urllib.parse.urlencode({"jurisdiction_id": JURISDICTIONS[slug], **WINDOWS[slug]})
        status, body = _get(base, f"/open311/v2/requests.json?{query}")
        assert status == 200
        assert json.loads(body)
        status, body = _get(base, f"/{slug}/ogc/collections/incidents/items?f=json&limit=1000")
        assert status == 200
        west, south, east, north = BOUNDS[slug]
        for feature in json.loads(body)["features"]:
            lon, lat = feature["geometry"]["coordinates"]
            assert west <= lon <= east
            assert south <= lat <= north
        status, body = _get(base, f"/{slug}/maps/nearby")
        assert status == 200
        assert f'="/{slug}/static/'.encode() in body
        assert _get(base, f"/{slug}/static/leaflet.js")[0] == 200
    assert "Traceback" not in log.read_text(encoding="utf-8")
