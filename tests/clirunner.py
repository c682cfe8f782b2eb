"""Running the real ``voirie`` command in a subprocess, as a user would, for CLI tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def voirie_executable() -> str:
    """The installed ``voirie`` console script of the interpreter running the tests."""
    script = Path(sys.executable).parent / "voirie"
    found = str(script) if script.exists() else shutil.which("voirie")
    assert found, "the voirie console script is not installed"
    return found


def run_voirie(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``voirie ARGS`` in ``folder`` on a store file of that folder, narrow terminal."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("VOIRIE_") and k not in {"FORCE_COLOR", "TTY_COMPATIBLE"}
    }
    # A narrow terminal: an error must stay on one line whatever the width.
    env |= {
        "VOIRIE_DATABASE_URL": f"sqlite:///{folder / 't.gpkg'}",
        "COLUMNS": "80",
        "NO_COLOR": "1",
        "PYTHONIOENCODING": "utf-8",
    }
    return subprocess.run(
        [voirie_executable(), *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
