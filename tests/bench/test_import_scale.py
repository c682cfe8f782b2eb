"""``bench/import_scale.py`` on a tiny file: each figure printed as soon as it is measured
(the import's before the floor starts), and no sqlite file left behind, ``-wal`` and
``-shm`` included."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import import_scale  # noqa: E402
from replicate_reports import write_rows  # noqa: E402

pytestmark = pytest.mark.slow


def test_sqlite_figures_come_as_measured_and_no_file_is_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "reports.csv"
    write_rows(source, 40)
    row = import_scale.measure("sqlite", "reverse", source, 40, "", tmp_path, 0.0)
    lines = capsys.readouterr().out.splitlines()
    stages = [
        next(k for k, line in enumerate(lines) if words in line)
        for words in ("import: ", "re-import: ", ": floor", "floor ")
    ]
    assert stages == sorted(stages)
    assert f"{row.imported:,} imported" in lines[stages[0]]
    assert row.imported > 0
    assert row.floor_rows > 0
    left = sorted(p.name for p in tmp_path.iterdir() if ".gpkg" in p.name)
    assert left == []
