"""``bench/api_load.py --before TREE``: the "before" side serves TREE's voirie, the others
the tree the bench runs from. (Through ``PYTHONPATH`` it served the running tree on both
sides: uvicorn puts its working directory first on ``sys.path``.)"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import api_load  # noqa: E402


def test_the_before_side_serves_the_before_tree(tmp_path: Path) -> None:
    before = tmp_path / "before"
    (before / "voirie").mkdir(parents=True)
    (before / "voirie" / "__init__.py").write_text("")
    (tmp_path / "loaded.gpkg").write_bytes(b"")
    sides = api_load.sqlite_sides(tmp_path, "key", [b"x=1"], before)
    served = {side.label: api_load.served_package(side) for side in sides}
    assert served["sqlite FULL before"] == str(before / "voirie")
    running = str(Path(api_load.__file__).resolve().parents[1] / "voirie")
    assert served["sqlite FULL"] == running
    assert served["sqlite NORMAL"] == running
    shutil.rmtree(before)
