"""Read replicas (``VOIRIE_READ_DATABASE_URL``) against a real PostgreSQL streaming replica.

The test makes a primary cluster of its own (``pg_createcluster``, a free port, trust on
127.0.0.1, a replication entry in pg_hba), a replica from it with ``pg_basebackup -R`` on
another port, and runs the real app (``create_app``) with the primary as
``VOIRIE_DATABASE_URL`` and the replica as ``VOIRIE_READ_DATABASE_URL``. It then checks:
a report posted to the primary reaches the public reads through the replica; staff reads
see their own writes at once; with replay paused, public reads stay on the replica while
it is within ``VOIRIE_READ_MAX_LAG_S`` (their ETag the replica's, never the primary's),
then fall back to the primary, and ``/metrics`` shows it; with the replica stopped, public
reads still answer. With the replica's processes frozen (SIGSTOP), its check gives up
within its timeout and public reads go to the primary. A real ``voirie serve --workers 2``
reads the replica for the public in each worker and the primary for staff, each worker's
figures in ``/metrics``. Both clusters are dropped afterwards, even on failure; the shared
server on 5432 is never touched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from clirunner import voirie_executable
from databases import unavailable
from fastapi.testclient import TestClient

from voirie.api.app import create_app
from voirie.api.read_routing import reads_replica
from voirie.city import City
from voirie.errors import StoreError
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.services.auth import issue_token
from voirie.services.pipeline import Pipeline
from voirie.settings import CitySettings, StoreSettings
from voirie.store import open_store
from voirie.store.replicas import ReplicatedStore, lag

VERSION = "15"
PRIMARY = f"voirie_primary_{os.getpid()}"
REPLICA = f"voirie_replica_{os.getpid()}"
DATA = Path(__file__).parents[1] / "data" / "dansmarue_200.csv"
API = "/open311/v2"
CARTONS = "objets-abandonne-3ad329"  # Cartons ou sacs de déchets ménagers (Paris)
VALMY = {"lat": 48.87350463761569, "long": 2.363114595220107}
MAX_LAG_S = 6.0
CHECK_S = 0.25
WAIT_S = 60.0


def _run(*args: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=180)
    if done.returncode:
        pytest.fail(f"{' '.join(args)} failed ({done.returncode}): {done.stderr}")


def _drop(cluster: str) -> None:
    subprocess.run(["pg_dropcluster", "--stop", VERSION, cluster], capture_output=True, timeout=120)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Clusters:
    """The primary's and the replica's database URLs."""

    primary: str
    replica: str


def _url(port: int, db: str = "voirie") -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{db}"


@pytest.fixture(scope="module")
def clusters() -> Iterator[Clusters]:
    """A primary with PostGIS and a streaming replica of it, each on its own free port."""
    if shutil.which("pg_createcluster") is None or shutil.which("pg_basebackup") is None:
        unavailable("pg_createcluster/pg_basebackup are not installed (postgresql-common)")
    primary_port, replica_port = _free_port(), _free_port()
    try:
        _run(
            "pg_createcluster", VERSION, PRIMARY, "-p", str(primary_port),
            "-o", "wal_level=replica", "-o", "max_wal_senders=4",
            "--", "--auth-local=trust", "--auth-host=trust",
        )  # fmt: skip
        hba = Path(f"/etc/postgresql/{VERSION}/{PRIMARY}/pg_hba.conf")
        with hba.open("a", encoding="utf-8") as out:
            out.write("host replication all 127.0.0.1/32 trust\n")
        _run("pg_ctlcluster", VERSION, PRIMARY, "start")
        with psycopg.connect(_url(primary_port, "postgres"), autocommit=True) as admin:
            admin.execute("CREATE DATABASE voirie")
        with psycopg.connect(_url(primary_port), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION postgis")

        _run(
            "pg_createcluster", VERSION, REPLICA, "-p", str(replica_port),
            "--", "--auth-local=trust", "--auth-host=trust",
        )  # fmt: skip
        data = Path(f"/var/lib/postgresql/{VERSION}/{REPLICA}")
        for entry in data.iterdir():  # pg_basebackup fills the empty directory (postgres')
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        _run(
            "runuser", "-u", "postgres", "--", "pg_basebackup", "-h", "127.0.0.1",
            "-p", str(primary_port), "-U", "postgres", "-D", str(data), "-R",
            "-X", "stream", "-c", "fast",
        )  # fmt: skip
        _run("pg_ctlcluster", VERSION, REPLICA, "start")
        yield Clusters(_url(primary_port), _url(replica_port))
    finally:
        _drop(REPLICA)
        _drop(PRIMARY)


@dataclass
class Served:
    """The app on the primary and the replica, its clients' keys and direct connections."""

    client: TestClient
    store: ReplicatedStore
    client_key: str
    staff: dict[str, str]
    clusters: Clusters


@pytest.fixture(scope="module")
def served(clusters: Clusters, paris: City, paris_gis: CityGIS) -> Iterator[Served]:
    """``create_app`` with ``VOIRIE_READ_DATABASE_URL`` on the replica, holding the 200 real
    Paris reports (imported on the primary)."""
    loader = open_store(StoreSettings(database_url=clusters.primary, pool_max_size=2))
    try:
        loader.upgrade()
        Pipeline(paris, loader, paris_gis).imports.import_table(read_csv(DATA), DANSMARUE)
        key = issue_token(loader, paris.jurisdiction_id, "appli-mobile", "client")
        staff = issue_token(loader, paris.jurisdiction_id, "back-office", "dispatcher")
    finally:
        loader.close()
    settings = StoreSettings(
        database_url=clusters.primary,
        read_database_url=clusters.replica,
        read_max_lag_s=MAX_LAG_S,
        read_check_interval_s=CHECK_S,
        pool_max_size=4,
    )
    app = create_app(settings, CitySettings(city="paris"), gis=paris_gis)
    with TestClient(app) as client:
        store = app.state.pipeline.store
        assert isinstance(store, ReplicatedStore)
        served = Served(client, store, key, {"Authorization": f"Bearer {staff}"}, clusters)
        _until(lambda: _replica_state(served) == "ok", "the replica to be in use", served)
        yield served


def _until(condition: Callable[[], bool], what: str, served: Served | None = None) -> float:
    """Seconds until ``condition()`` holds (fails the test after ``WAIT_S``, saying what
    the replica's last check found)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > WAIT_S:
            found = served.store.statuses() if served else ""
            pytest.fail(f"waited {WAIT_S:g} s for {what} {found}")
        time.sleep(0.05)
    return time.monotonic() - started


def _replica_state(served: Served) -> str:
    (status,) = served.store.statuses()
    return status.state


def _metric(served: Served, name: str, **labels: str) -> float | None:
    """One sample of ``/metrics`` (None when absent)."""
    text = served.client.get("/metrics").text
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            return float(match.group(2))
    return None


def _on(url: str, query: str, *params: object) -> object:
    """One value read directly on one node."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
        return None if row is None else row[0]


def _post(served: Served, description: str) -> int:
    response = served.client.post(
        f"{API}/requests.json",
        data={
            "api_key": served.client_key,
            "service_code": CARTONS,
            "description": description,
            "device_id": description,
            **VALMY,
        },
    )
    assert response.status_code == 201, response.text
    return int(response.json()[0]["service_request_id"])


def _public_ids(served: Served) -> tuple[set[int], str]:
    """The ids of the requests made in the last hour (Open311 GET requests) and the ETag."""
    since = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = served.client.get(f"{API}/requests.json", params={"start_date": since})
    assert response.status_code == 200, response.text
    return {int(r["service_request_id"]) for r in response.json()}, response.headers["etag"]


def _version(etag: str) -> int:
    """The store version an ETag labels (``voirie.api.caching.etag``)."""
    match = re.fullmatch(r'W/"[0-9a-f]+-(\d+)-[^"]*"', etag)
    assert match, etag
    return int(match.group(1))


def _reads(served: Served, node: str) -> float:
    return _metric(served, "voirie_public_reads_total", node=node) or 0.0


# Paris's change counter (migrations 0021, 0023), as ``Store.change_mark`` reads it.
_PARIS_VERSION = (
    "SELECT sum(version)::bigint FROM store_changes"
    " WHERE (jurisdiction_id, shard) = ('', 0) OR jurisdiction_id = 'paris.fr'"
)


def _has_report(url: str, report_id: int) -> bool:
    return _on(url, "SELECT count(*) FROM reports WHERE id = %s", report_id) == 1


def _replica_processes() -> list[int]:
    """The replica's postmaster and every process it started (its backends, the startup
    and WAL receiver processes)."""
    pid_file = Path(f"/var/lib/postgresql/{VERSION}/{REPLICA}/postmaster.pid")
    postmaster = int(pid_file.read_text(encoding="utf-8").split()[0])
    children = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(postmaster)], capture_output=True, text=True
    ).stdout.split()
    return [postmaster, *(int(pid) for pid in children)]


@pytest.mark.postgis
@pytest.mark.slow
def test_a_frozen_replica_is_dropped_within_its_check_timeout(served: Served) -> None:
    """Every process of the replica stopped (SIGSTOP: its kernel still acknowledges
    packets, its statement timeout never fires): the check gives up after the connection
    timeout and public reads go to the primary at once; resumed, it is used again."""
    _until(lambda: _replica_state(served) == "ok", "the replica to be in use", served)
    (replica,) = served.store.replicas
    frozen = _replica_processes()
    try:
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        _until(lambda: _replica_state(served) == "down", "the frozen replica to be dropped", served)
        dropped_after = time.monotonic() - stopped_at
        assert "no answer within" in (replica.status.detail or "")
        assert dropped_after < replica.check_timeout_s + 2 * CHECK_S + 2.0, dropped_after
        on_primary = _reads(served, "primary")
        started = time.monotonic()
        ids, _ = _public_ids(served)
        assert ids is not None
        assert time.monotonic() - started < 2.0
        assert _reads(served, "primary") == on_primary + 1
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    _until(lambda: _replica_state(served) == "ok", "the thawed replica to be used again", served)
    print(f"frozen replica dropped after {dropped_after:.2f} s")


def _http(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(base + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as refused:
        return int(refused.code), bytes(refused.read())


def _worker_reads(body: bytes) -> dict[tuple[str, str], float]:
    """``voirie_public_reads_total`` of one scrape: (node, worker pid) -> requests."""
    found: dict[tuple[str, str], float] = {}
    for line in body.decode().splitlines():
        match = re.fullmatch(r'voirie_public_reads_total\{node="([^"]+)",pid="(\d+)"\} (\S+)', line)
        if match:
            found[(match.group(1), match.group(2))] = float(match.group(3))
    return found


@pytest.mark.postgis
@pytest.mark.slow
def test_serve_with_two_workers_reads_the_replica_for_the_public_in_each(
    served: Served, tmp_path: Path
) -> None:
    """``voirie serve --workers 2`` on the primary and the replica: with replay paused, a
    report posted is seen by staff in every answer (the primary) and by the public in
    none (the replica, still within the maximum lag); ``/metrics``, answered by either
    worker, counts that worker's public reads on the replica, and both workers do."""
    clusters = served.clusters
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOIRIE_")}
    env |= {
        "VOIRIE_DATABASE_URL": clusters.primary,
        "VOIRIE_READ_DATABASE_URL": clusters.replica,
        "VOIRIE_READ_MAX_LAG_S": "120",
        "VOIRIE_READ_CHECK_INTERVAL_S": str(CHECK_S),
        "VOIRIE_CITY": "paris",
        "NO_COLOR": "1",
    }
    log = tmp_path / "server.log"
    command = [voirie_executable(), "serve", "--port", str(port), "--workers", "2"]
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            [*command, "--no-worker"], cwd=tmp_path, env=env, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                ready = _http(base, "/readyz")
                if ready[0] == 200 and json.loads(ready[1])["read_replicas"][0]["state"] == "ok":
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"voirie serve did not start:\n{log.read_text()}")
            time.sleep(0.5)
        # Each worker's public reads on the replica, in that worker's /metrics figures.
        since = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        replica = served.store.replicas[0].name
        workers: set[str] = set()
        for _ in range(60):
            assert _http(base, f"{API}/requests.json?start_date={since}")[0] == 200
            status, body = _http(base, "/metrics")
            assert status == 200
            reads = _worker_reads(body)
            workers |= {pid for (node, pid), n in reads.items() if node == replica and n}
            if len(workers) == 2:
                break
        assert len(workers) == 2, f"public reads on the replica seen in workers {workers}"
        # Replay paused: the public never sees the new report, staff always do.
        _on(clusters.replica, "SELECT pg_wal_replay_pause()")
        try:
            _until(
                lambda: _on(clusters.replica, "SELECT pg_get_wal_replay_pause_state()") == "paused",
                "replay to pause",
            )
            report = _post(served, "vu du primaire seulement")
            incident = _on(
                clusters.primary,
                "SELECT incident_id FROM incident_reports WHERE report_id = %s",
                report,
            )
            for _ in range(20):
                status, body = _http(base, f"{API}/requests.json?start_date={since}")
                assert status == 200, body
                assert report not in {int(r["service_request_id"]) for r in json.loads(body)}
                status, body = _http(base, f"/api/v1/incidents/{incident}", served.staff)
                assert status == 200, body
                assert report in {r["report_id"] for r in json.loads(body)["reports"]}
        finally:
            _on(clusters.replica, "SELECT pg_wal_replay_resume()")
            _until(lambda: _replica_state(served) == "ok", "the replica to catch up", served)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert "Traceback" not in log.read_text(encoding="utf-8")


@pytest.mark.postgis
@pytest.mark.slow
def test_public_reads_follow_the_replica_and_fall_back_to_the_primary(served: Served) -> None:
    clusters = served.clusters
    replica_name = served.store.replicas[0].name

    # A report posted to the primary reaches the public reads through the replica.
    before = _reads(served, replica_name)
    first = _post(served, "répliqué")
    _until(lambda: _has_report(clusters.replica, first), "the replica to replay the report")
    ids, _ = _public_ids(served)
    assert first in ids
    assert _reads(served, replica_name) > before
    assert _metric(served, "voirie_replica_in_use", replica=replica_name) == 1.0

    # Replay paused: the replica keeps its data, the primary moves on.
    _on(clusters.replica, "SELECT pg_wal_replay_pause()")
    _until(
        lambda: _on(clusters.replica, "SELECT pg_get_wal_replay_pause_state()") == "paused",
        "replay to pause",
    )
    paused_at = time.monotonic()
    second = _post(served, "pas encore répliqué")
    written_at = time.monotonic()
    assert not _has_report(clusters.replica, second)

    # Staff see their own write at once (the primary), whatever the replica holds.
    incident = _on(
        clusters.primary, "SELECT incident_id FROM incident_reports WHERE report_id = %s", second
    )
    staff_read = served.client.get(f"/api/v1/incidents/{incident}", headers=served.staff)
    assert staff_read.status_code == 200, staff_read.text
    assert second in {r["report_id"] for r in staff_read.json()["reports"]}

    # Within the maximum lag the public list is the replica's: without the new report,
    # labelled with the replica's change counter, not the primary's newer one.
    ids, tag = _public_ids(served)
    assert time.monotonic() - paused_at < MAX_LAG_S, "the machine is too slow for this check"
    replica_version = _on(clusters.replica, _PARIS_VERSION)
    primary_version = _on(clusters.primary, _PARIS_VERSION)
    assert isinstance(primary_version, int)
    assert isinstance(replica_version, int)
    assert replica_version < primary_version
    assert second not in ids
    assert _version(tag) == replica_version
    # Asked by id, the report the replica lacks is answered by the primary.
    one = served.client.get(f"{API}/requests/{second}.json")
    assert one.status_code == 200, one.text
    assert int(one.json()[0]["service_request_id"]) == second

    # Beyond the maximum lag the replica is skipped: the primary answers, /metrics says so.
    _until(lambda: _replica_state(served) == "lagging", "the replica to be skipped", served)
    skipped_after = time.monotonic() - written_at
    assert skipped_after >= MAX_LAG_S  # not before it is really that far behind
    assert _metric(served, "voirie_replica_lag_seconds", replica=replica_name) > MAX_LAG_S
    assert (_metric(served, "voirie_replica_lag_bytes", replica=replica_name) or 0) > 0
    assert _metric(served, "voirie_replica_replay_paused", replica=replica_name) == 1.0
    assert _metric(served, "voirie_replica_in_use", replica=replica_name) == 0.0
    assert _metric(served, "voirie_replica_state", replica=replica_name, state="lagging") == 1.0
    on_primary = _reads(served, "primary")
    ids, fallback_tag = _public_ids(served)
    assert second in ids
    assert _version(fallback_tag) == primary_version
    assert _reads(served, "primary") == on_primary + 1
    # The replica's older ETag does not hold against the primary's rows.
    again = served.client.get(f"{API}/requests.json", headers={"If-None-Match": tag})
    assert again.status_code == 200
    assert _version(again.headers["etag"]) == primary_version
    ready = served.client.get("/readyz")
    assert ready.status_code == 200  # the primary answers: the node stays in service
    assert ready.json()["read_replicas"][0]["state"] == "lagging"

    # Replay resumed: the replica catches up and takes the public reads again.
    _on(clusters.replica, "SELECT pg_wal_replay_resume()")
    _until(lambda: _replica_state(served) == "ok", "the replica to catch up", served)
    before = _reads(served, replica_name)
    ids, tag = _public_ids(served)
    assert second in ids
    assert _version(tag) == primary_version
    assert _reads(served, replica_name) == before + 1

    # The replica stopped: public reads still answer (the primary), at once.
    _run("pg_ctlcluster", VERSION, REPLICA, "stop", "-m", "fast")
    waits = []
    for path in (
        f"{API}/requests.json",
        "/ogc/collections/incidents/items?limit=5",
        "/tiles/incidents/15/16597/11268.mvt",
        "/exports/incidents.csv",
        "/api/v1/nearby?lat=48.8735&lon=2.3631&radius_m=300",
    ):
        started = time.monotonic()
        response = served.client.get(path)
        assert response.status_code == 200, (path, response.text)
        waits.append(time.monotonic() - started)
        assert waits[-1] < 5.0, path
    _until(lambda: _replica_state(served) == "down", "the replica to be seen down", served)
    assert _metric(served, "voirie_replica_up", replica=replica_name) == 0.0
    assert served.client.get("/readyz").status_code == 200
    third = _post(served, "réplique arrêtée")
    ids, _ = _public_ids(served)
    assert third in ids
    print(  # the figures behind docs/operations.md (pytest -s shows them)
        f"replica skipped {skipped_after:.2f} s after the write (max lag {MAX_LAG_S:g} s, "
        f"checks every {CHECK_S:g} s); public reads with the replica stopped: "
        f"{min(waits):.3f}-{max(waits):.3f} s"
    )


def test_lag_dates_the_replay_position_against_the_primary_samples() -> None:
    samples = [(10.0, 100), (11.0, 100), (12.0, 250), (13.0, 400)]
    assert lag(samples, 400, 14.0) == (0.0, 0)  # replayed the newest position
    assert lag(samples, 500, 14.0) == (0.0, 0)
    # Replayed 250: the primary first held more at 13.0, one second ago.
    assert lag(samples, 250, 14.0) == (1.0, 150)
    # Replayed 100: the primary held more from 12.0 on.
    assert lag(samples, 100, 20.0) == (8.0, 300)
    assert lag([], 100, 20.0) == (None, None)
    assert lag(samples, None, 20.0) == (None, None)


def test_replicas_need_a_postgresql_primary() -> None:
    with pytest.raises(StoreError, match=r"VOIRIE_READ_DATABASE_URL.*PostgreSQL primary"):
        open_store(
            StoreSettings(
                database_url="sqlite:///voirie.gpkg",
                read_database_url="postgresql://postgres@127.0.0.1:1/voirie",
            )
        )


def test_a_read_url_must_be_postgresql() -> None:
    with pytest.raises(ValueError, match="VOIRIE_READ_DATABASE_URL: 'mysql://x' is not"):
        StoreSettings(read_database_url="postgresql://a@h/db, mysql://x")


def _scope(method: str, path: str, *headers: tuple[bytes, bytes]) -> dict[str, object]:
    return {"type": "http", "method": method, "path": path, "headers": list(headers)}


@pytest.mark.parametrize(
    ("method", "path", "headers", "replica"),
    [
        ("GET", "/ogc/collections/incidents/items", (), True),
        ("HEAD", "/tiles/incidents/15/16597/11268.mvt", (), True),
        ("GET", "/exports/reports.csv", (), True),
        ("GET", "/open311/v2/requests/12.json", (), True),
        ("GET", "/api/v1/nearby", (), True),
        ("GET", "/maps/nearby", (), True),
        ("POST", "/open311/v2/requests.json", (), False),  # a write
        ("GET", "/ogc/collections/reports/items", ((b"authorization", b"Bearer x"),), False),
        ("GET", "/exports/reports.csv", ((b"cookie", b"a=1; voirie_staff=s"),), False),
        ("GET", "/api/v1/incidents/3", (), False),  # staff API
        ("GET", "/staff/", (), False),
        ("GET", "/suivi/abc", (), False),  # a tracking link just received
        ("GET", "/readyz", (), False),
    ],
)
def test_which_requests_may_read_a_replica(
    method: str, path: str, headers: tuple[tuple[bytes, bytes], ...], replica: bool
) -> None:
    assert reads_replica(_scope(method, path, *headers)) is replica


def test_a_prefix_is_not_part_of_the_public_path() -> None:
    mounted = _scope("GET", "/chicago/ogc/collections", (b"x", b"y")) | {"root_path": "/chicago"}
    assert reads_replica(mounted)
    rewritten = _scope("GET", "/ogc/collections") | {"root_path": "/chicago"}
    assert reads_replica(rewritten)
    assert not reads_replica(_scope("GET", "/chicago/staff/") | {"root_path": "/chicago"})
