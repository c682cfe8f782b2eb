"""How ``voirie import`` starts (issue 14, the fixed cost): its command module imports none
of the pipeline's modules, so that the store's migrations start before they are imported
(``voirie.cli.common.store_upgraded_while``); what it loads before its first batch leaves
the web server and the maps out; and the pipeline, which reads the store (the public
points), is built only once a new database is migrated.

The module sets are read in a fresh interpreter: the test process has imported them all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from clirunner import voirie_executable
from databases import scratch_database
from datafiles import SAMPLE_200

PIPELINE = (
    "pandas",
    "numpy",
    "geopandas",
    "shapely",
    "pyproj",
    "psycopg",
    "holidays",
    "voirie.city",
    "voirie.store",
    "voirie.services",
    "voirie.ingest",
)
"""Imported by ``voirie import`` only once it has started its store's migrations."""
WEB = (
    "fastapi",
    "starlette",
    "uvicorn",
    "jinja2",
    "folium",
    "pyogrio",
    "voirie.api",
    "voirie.maps",
)
"""Never imported by ``voirie import``: the server's, the pages' and the downloads' modules."""


def _imported_after(code: str, names: tuple[str, ...]) -> list[str]:
    """Those of ``names`` (modules or packages) in ``sys.modules`` of a fresh interpreter
    once it has run ``code``."""
    probe = (
        f"import json, sys\n{code}\n"
        f"print(json.dumps(sorted({{n for n in {names!r} for m in sys.modules "
        "if m == n or m.startswith(n + '.')})))"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    found: list[str] = json.loads(run.stdout)
    return found


def test_the_import_command_module_imports_none_of_the_pipeline() -> None:
    assert _imported_after("import voirie.cli.data", PIPELINE) == []


def test_the_import_pipeline_leaves_the_web_out() -> None:
    loaded = "import voirie.cli.data, voirie.services.pipeline, voirie.store.postgis"
    assert _imported_after(loaded, WEB) == []


@pytest.fixture
def new_database(postgis_server: str) -> Iterator[str]:
    """An empty PostGIS database (no schema: the import migrates it)."""
    yield from scratch_database(postgis_server, template=None)


@pytest.mark.postgis
def test_an_import_into_a_new_database_reads_it_once_migrated(
    new_database: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOIRIE_")}
    env |= {"VOIRIE_DATABASE_URL": new_database, "COLUMNS": "100", "NO_COLOR": "1"}
    run = subprocess.run(
        [voirie_executable(), "import", str(SAMPLE_200), "--format", "dansmarue"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    # Built while the schema was being created, the pipeline's first read of the store
    # (its public points) failed and logged this, with a traceback.
    assert "not brought up to date" not in output
    assert "Traceback" not in output
