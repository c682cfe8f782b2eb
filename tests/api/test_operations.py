"""Production basics (issue 13 item 8): security headers and CSP, /readyz, /metrics, request
ids in JSON logs, sqlite synchronous=FULL and ``voirie serve --workers``; on both backends
where the store matters."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from clirunner import voirie_executable
from liveserver import free_port
from open311_support import API, CARTONS, VALMY, Served

from voirie.api.headers import page_policy
from voirie.api.logs import JsonFormatter, RequestIdFilter
from voirie.api.probes import readiness
from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.services.pipeline import Pipeline
from voirie.settings import StoreSettings
from voirie.store import open_store
from voirie.store.base import migrations


def _post(served: Served, text: str) -> int:
    body = {"api_key": served.client_key, "service_code": CARTONS, "description": text}
    body |= {"lat": str(VALMY["lat"]), "long": str(VALMY["long"])}
    return served.client.post(f"{API}/requests.json", data=body).status_code


def test_every_answer_carries_the_security_headers(served: Served) -> None:
    for path in ("/healthz", "/ogc/collections", "/api/v1/incidents/1", "/nowhere"):
        answer = served.client.get(path)
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.headers["x-frame-options"] == "SAMEORIGIN", path
        assert answer.headers["referrer-policy"] == "strict-origin-when-cross-origin", path
        assert answer.headers["content-security-policy"] == (
            "default-src 'none'; frame-ancestors 'self'"
        ), path


def test_html_pages_get_a_csp_with_the_hash_of_each_inline_script(served: Served) -> None:
    docs = served.client.get("/docs")
    (inline,) = re.findall(r"<script>(.*?)</script>", docs.text, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    policy = docs.headers["content-security-policy"]
    assert f"script-src 'self' 'sha256-{digest}';" in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'self'" in policy
    nearby = served.client.get("/maps/nearby")
    assert nearby.headers["content-type"].startswith("text/html")
    # Its only inline <script> is a JSON data block, which does not run: no hash at all.
    assert "script-src 'self';" in nearby.headers["content-security-policy"]
    # ReDoc's own policy is kept; ours is added as a second header (both are enforced).
    redoc = served.client.get("/redoc").headers.get_list("content-security-policy")
    assert len(redoc) == 2


def test_a_script_given_by_a_citizen_would_not_match_any_hash() -> None:
    page = b"<script>ok()</script>"
    assert page_policy(page) != page_policy(b"<script>ok();steal()</script>")
    assert "sha256" not in page_policy(b'<script src="/static/a.js"></script>')


def test_readyz_says_ready_once_every_migration_is_applied(served: Served) -> None:
    answer = served.client.get("/readyz")
    assert answer.status_code == 200, answer.text
    latest = max(version for version, _, _ in migrations(served.store.backend))
    assert answer.json() == {
        "status": "ready",
        "database": "reachable",
        "schema_version": latest,
        "expected_schema_version": latest,
    }


def test_readyz_answers_503_on_a_database_behind_its_migrations(
    empty_store_url: str, paris: City, paris_gis: CityGIS
) -> None:
    store = open_store(StoreSettings(database_url=empty_store_url))
    try:
        ready, checks = readiness(Pipeline(paris, store, paris_gis))
    finally:
        store.close()
    assert not ready
    assert checks["schema_version"] == 0
    assert "voirie db upgrade" in str(checks["detail"])


def test_metrics_count_requests_by_route_and_read_the_store(served: Served) -> None:
    for incident in (1, 2, 3):
        served.client.get(f"/api/v1/incidents/{incident}")
    assert _post(served, "Cartons pour les métriques") == 201
    text = served.client.get("/metrics").text
    route = 'route="/api/v1/incidents/{incident_id}"'
    counted = re.search(
        rf'voirie_http_requests_total\{{method="GET",{route},status="401"\}} (\d+)', text
    )
    assert counted is not None
    assert int(counted.group(1)) >= 3
    assert f'voirie_http_request_duration_seconds_count{{method="POST",route="{API}' in text
    j = served.pipeline.city.jurisdiction_id
    stored = re.search(r"^voirie_reports_stored (\S+)$", text, re.MULTILINE)
    assert stored is not None
    assert float(stored.group(1)) == served.store.count("reports", j)
    assert re.search(r"^voirie_outbox_backlog \d", text, re.MULTILINE)
    if served.store.backend == "postgis":
        assert re.search(r'^voirie_pool_connections\{pid="\d+",state="in_use"\} \d', text, re.M)


def test_request_ids_are_echoed_or_made_and_logged(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO, logger="voirie.access"):
        mine = served.client.get("/healthz", headers={"X-Request-ID": "proxy-7f3a.1"})
        forged = served.client.get("/healthz", headers={"X-Request-ID": "x\ninjected: 1"})
    assert mine.headers["x-request-id"] == "proxy-7f3a.1"
    assert re.fullmatch(r"[0-9a-f]{32}", forged.headers["x-request-id"])
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    assert [line["request_id"] for line in lines] == [
        "proxy-7f3a.1",
        forged.headers["x-request-id"],
    ]
    assert lines[0]["route"] == "/healthz"
    assert lines[0]["status"] == 200
    assert lines[0]["duration_ms"] > 0


def test_sqlite_writes_are_synchronous_full(tmp_path: Path) -> None:
    store = open_store(StoreSettings(database_url=f"sqlite:///{tmp_path / 'v.gpkg'}"))
    try:
        assert store.rows("PRAGMA synchronous", []) == [(2,)]  # 2 = FULL
    finally:
        store.close()


def _access_lines(log: Path) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "voirie.access"]


def _healthz_pids(log: Path) -> set[object]:
    return {line["pid"] for line in _access_lines(log) if line["route"] == "/healthz"}


@contextmanager
def _serving(
    store_url: str, folder: Path, *options: str, migrated: bool = True
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """``voirie serve --workers 2 <options>`` on an empty store (migrated first unless
    told not to), once /readyz answers: its URL, process and log; terminated (and waited
    for) afterwards."""
    if migrated:
        store = open_store(StoreSettings(database_url=store_url))
        store.upgrade()
        store.close()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOIRIE_", "PROMETHEUS_"))}
    env |= {"VOIRIE_DATABASE_URL": store_url, "NO_COLOR": "1"}
    (folder / "metrics").mkdir()
    env["PROMETHEUS_MULTIPROC_DIR"] = str(folder / "metrics")  # an operator's own folder
    log = folder / "server.log"
    command = [voirie_executable(), "serve", "--port", str(port), "--workers", "2", *options]
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, cwd=folder, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/readyz", timeout=5).close()
                break
            except (OSError, urllib.error.HTTPError):
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        yield base, process, log
    finally:
        process.terminate()
        process.wait(30)


def test_serve_with_two_workers_sums_their_metrics_and_logs_json(
    store_url: str, tmp_path: Path
) -> None:
    with _serving(store_url, tmp_path, "--no-worker", "--log-format", "json") as (base, _, log):
        # Eight clients at once, a new connection each time, until both workers have
        # answered.
        sent = 0
        deadline = time.monotonic() + 60
        while len(_healthz_pids(log)) < 2:
            assert time.monotonic() < deadline, log.read_text()
            with ThreadPoolExecutor(8) as clients:
                list(
                    clients.map(
                        lambda _: urllib.request.urlopen(f"{base}/healthz").close(), range(8)
                    )
                )
            sent += 8
        # A request is counted once its answer has gone out, so a client may read the
        # answer first: the sum may lag the last requests by a moment.
        while True:
            with urllib.request.urlopen(f"{base}/metrics", timeout=10) as answer:
                text = answer.read().decode()
            healthz = re.search(
                r'voirie_http_requests_total\{method="GET",route="/healthz",status="200"\} '
                r"(\S+)",
                text,
            )
            assert healthz is not None
            if float(healthz.group(1)) >= sent or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert float(healthz.group(1)) == sent  # both workers' counts summed
    access = _access_lines(log)
    assert {line["route"] for line in access} >= {"/healthz", "/metrics"}
    assert all(re.fullmatch(r"[0-9a-f]{32}", str(line["request_id"])) for line in access)


def _memory_kib(pid: int) -> dict[str, int]:
    """Rss and Pss of a process in KiB (Pss divides each shared page among its sharers)."""
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    return {
        key: int(value.split()[0])
        for key, value in (line.split(":", 1) for line in rollup.splitlines()[1:])
        if key in ("Rss", "Pss")
    }


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_forked_workers_share_the_city_indexes_and_stop_with_the_server(tmp_path: Path) -> None:
    # The master builds the city's street and zone indexes once and forks: each worker's
    # own share (Pss) of its memory is a fraction of what it maps (Rss); workers that each
    # built their own indexes (uvicorn's --workers) would own nearly all of it. (Measured
    # 2026-12-08: Pss 89-134 MiB of an Rss of 251-256 MiB, the streets kept to the
    # territory; 113-154 of 321-325 before.) The store
    # is new: migrated once by the master (workers migrating it at once would race).
    store_url = f"sqlite:///{tmp_path / 'voirie.gpkg'}"
    with _serving(store_url, tmp_path, migrated=False) as (base, process, log):
        processes = _children(process.pid)
        assert len(processes) == 3, log.read_text()  # the outbox worker and two servers
        for pid in processes:  # the outbox worker is forked from the master too
            memory = _memory_kib(pid)
            assert memory["Pss"] < 0.7 * memory["Rss"], memory
        urllib.request.urlopen(f"{base}/healthz", timeout=5).close()
    assert process.returncode == 0, log.read_text()
    for pid in processes:  # nothing left running once the server is stopped
        assert not Path(f"/proc/{pid}").exists() or "Z" in _process_state(pid)


def _process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
