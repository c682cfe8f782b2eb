"""Start-up time and memory of several server processes: forked after the city is built
(``voirie serve --workers N``) against each worker building its own (uvicorn's
``--workers N``, what ``voirie serve`` ran before), in one run (issue 14 item 3).

For N = 1, 2 and 4, each side is started over the same empty, migrated sqlite store and
timed from launch until ``/readyz`` answers and every process of its tree (supervisor and
N workers) has been idle for half a second, i.e. every worker has finished loading; then
the memory of its whole process tree is read from ``/proc/<pid>/smaps_rollup``: Pss (each
shared page divided among its sharers, so the sum is what the machine really spends) and
Rss. The sides
alternate (A B A B) for ``--rounds`` rounds so that each meets the same machine; the load
average is printed with each figure.

Usage::

    python bench/workers.py [--rounds 2] [--workers 1 2 4]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from voirie.settings import StoreSettings
from voirie.store import open_store

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Started:
    """One start of one side: seconds to ready, memory of the tree in MiB."""

    seconds: float
    pss_mib: float
    rss_mib: float
    load: float


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = [pid]
    if children.exists():
        for child in children.read_text().split():
            found += _tree(int(child))
    return found


def _memory_mib(pids: list[int]) -> tuple[float, float]:
    pss = rss = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            key, value = line.split(":", 1)
            if key == "Pss":
                pss += int(value.split()[0])
            elif key == "Rss":
                rss += int(value.split()[0])
    return pss / 1024, rss / 1024


def _command(side: str, port: int, workers: int) -> list[str]:
    if side == "voirie serve (forked)":
        voirie = str(Path(sys.executable).with_name("voirie"))
        return [voirie, "serve", "--port", str(port), "--workers", str(workers), "--no-worker"]
    command = [sys.executable, "-m", "uvicorn", "voirie.api.app:app_from_env", "--factory"]
    command += ["--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    return [*command, "--timeout-worker-healthcheck", "300"]


def start(side: str, workers: int, env: dict[str, str]) -> Started:
    """Start one side, wait until all its workers are up, measure, stop it."""
    port = _free_port()
    began = time.monotonic()
    process = subprocess.Popen(
        _command(side, port, workers),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            assert process.poll() is None, f"{side} exited with {process.returncode}"
            assert time.monotonic() - began < 600, f"{side} did not start"
            try:
                urllib.request.urlopen(f"http://{HOST}:{port}/readyz", timeout=5).close()
            except OSError:
                time.sleep(0.2)
                continue
            pids = _tree(process.pid)
            # Ready when the tree holds its workers and none is still loading: every
            # process has been idle (no CPU) for a short while.
            if len(pids) >= workers + (workers > 1) and _idle(pids):
                break
        seconds = time.monotonic() - began
        pss, rss = _memory_mib(_tree(process.pid))
    finally:
        process.terminate()
        process.wait(60)
    return Started(seconds, pss, rss, os.getloadavg()[0])


def _cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def _idle(pids: list[int]) -> bool:
    before = _cpu_ticks(pids)
    time.sleep(0.5)
    return _cpu_ticks(pids) - before <= 2  # at most 20 ms of CPU in half a second


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    sides = ("uvicorn --workers (each builds)", "voirie serve (forked)")
    with tempfile.TemporaryDirectory(prefix="voirie-workers-") as folder:
        url = f"sqlite:///{Path(folder) / 'voirie.gpkg'}"
        store = open_store(StoreSettings(database_url=url))
        store.upgrade()
        store.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOIRIE_")}
        env |= {"VOIRIE_DATABASE_URL": url, "VOIRIE_CITY": "paris", "NO_COLOR": "1"}
        print(f"{os.cpu_count()} CPUs; {args.rounds} rounds, sides alternating; Paris city")
        print(
            "| workers | server | start-up s (median) | Pss MiB (all processes) | Rss MiB | load |"
        )
        print("|---|---|---|---|---|---|")
        for workers in args.workers:
            results: dict[str, list[Started]] = {side: [] for side in sides}
            for _ in range(args.rounds):
                for side in sides:
                    results[side].append(start(side, workers, env))
            for side in sides:
                runs = results[side]
                print(
                    f"| {workers} | {side} | {statistics.median(r.seconds for r in runs):.1f} "
                    f"| {statistics.median(r.pss_mib for r in runs):,.0f} "
                    f"| {statistics.median(r.rss_mib for r in runs):,.0f} "
                    f"| {statistics.median(r.load for r in runs):.1f} |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
