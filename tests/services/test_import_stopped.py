"""``voirie import`` stopped by SIGTERM or SIGINT (``cli.stopping``).

A real ``voirie import`` process of the bundled Paris file (about 23,500 rows: one chunk
to prepare, then five batches to store) is sent the signal at a point it is seen to have
reached: while preparing (its spill folder has appeared), or while storing (a first batch
is in the database). What must hold: the spill folder is removed, the process ends by the
signal it was sent, only whole batches are stored (what the batches committed stays), and
the same import run again adds exactly the rest.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from clirunner import voirie_executable
from datafiles import PARIS_REPORTS

from voirie.services.imports import DEFAULT_BATCH_SIZE

WAIT_S = 300
"""How long the import may take to reach the point where it is stopped (not a timing
assertion: a machine that slow fails the test rather than hangs it)."""


def _environment(folder: Path) -> dict[str, str]:
    """The import's environment: a store file and a temporary folder of the test's own."""
    (folder / "tmp").mkdir(exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("VOIRIE_") and k not in {"FORCE_COLOR", "TTY_COMPATIBLE"}
    }
    return env | {
        "VOIRIE_DATABASE_URL": f"sqlite:///{folder / 't.gpkg'}",
        "TMPDIR": str(folder / "tmp"),
        "COLUMNS": "80",
        "NO_COLOR": "1",
        "PYTHONIOENCODING": "utf-8",
    }


def _stored(folder: Path) -> tuple[int, int]:
    """Reports stored, and reports linked to an incident (read-only, beside the writer)."""
    database = folder / "t.gpkg"
    if not database.exists():
        return 0, 0
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        try:
            (reports,) = conn.execute("SELECT count(*) FROM reports").fetchone()
            (linked,) = conn.execute(
                "SELECT count(DISTINCT report_id) FROM incident_reports"
            ).fetchone()
        except sqlite3.OperationalError:  # the schema is not there yet
            return 0, 0
    return int(reports), int(linked)


def _spill_folders(folder: Path) -> list[Path]:
    return list((folder / "tmp").glob("voirie-import-*"))


def _import(folder: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [voirie_executable(), "import", str(PARIS_REPORTS), "--format", "dansmarue"],
        cwd=folder,
        env=_environment(folder),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
    )


def _wait_until(process: subprocess.Popen[str], reached: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not reached():
        assert process.poll() is None, "the import ended before the point it is stopped at"
        assert time.monotonic() < deadline, "the import did not reach that point"
        time.sleep(0.05)


def _summary(output: str) -> dict[str, int]:
    figures = {}
    for line in output.splitlines():
        words = line.replace("│", " ").split()
        if len(words) > 1 and words[-1].isdigit():
            figures[" ".join(words[:-1])] = int(words[-1])
    return figures


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "phase"),
    [(signal.SIGTERM, "storing"), (signal.SIGINT, "preparing")],
    ids=["SIGTERM-storing", "SIGINT-preparing"],
)
def test_a_stopped_import_removes_its_spill_folder_and_keeps_whole_batches(
    tmp_path: Path, signum: signal.Signals, phase: str
) -> None:
    process = _import(tmp_path)
    if phase == "preparing":
        _wait_until(process, lambda: bool(_spill_folders(tmp_path)))
    else:
        _wait_until(process, lambda: _stored(tmp_path)[0] > 0)
    process.send_signal(signum)
    output, _ = process.communicate(timeout=WAIT_S)

    assert process.returncode == -signum, output
    assert f"stopped by {signum.name}" in output
    assert _spill_folders(tmp_path) == []
    reports, linked = _stored(tmp_path)
    assert reports == linked  # every stored report is in its incident
    assert reports % DEFAULT_BATCH_SIZE == 0  # whole batches (a fresh store skips none)
    if phase == "preparing":
        assert reports == 0
        return
    assert reports > 0

    again = _import(tmp_path)
    output, _ = again.communicate(timeout=WAIT_S)
    assert again.returncode == 0, output
    figures = _summary(output)
    assert figures["already imported (skipped)"] == reports
    assert figures["imported"] > 0
    assert figures["imported"] + reports + figures["quarantined"] == figures["rows read"]
    assert _stored(tmp_path) == (reports + figures["imported"],) * 2
    assert _spill_folders(tmp_path) == []
