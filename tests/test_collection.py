"""The suite collects the same through the ``pytest`` command as through ``python -m pytest``.

``python -m pytest`` puts the working directory on ``sys.path``; the ``pytest`` entry point
puts its own folder there instead. A test module importing a helper as ``tests.<...>``
therefore only imported under the first: pyproject's ``pythonpath`` puts the project root
on the path for both.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_the_pytest_command_collects_every_test_module() -> None:
    """Collecting the suite with the entry point finds no module it cannot import."""
    entry_point = Path(sys.executable).parent / "pytest"
    done = subprocess.run(
        [str(entry_point), "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    errors = [line for line in done.stdout.splitlines() if line.startswith("ERROR ")]
    assert errors == []
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
