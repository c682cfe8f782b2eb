"""The embedded store's file is a GeoPackage GDAL's own validator accepts (every check,
not stopping at the first): GIS officers open it in QGIS and GDAL as it is. Migration 0025
gave the two attribute tables whose keys were TEXT (Req 119) an integer key, keeping
their rows; a store made before it is upgraded in place."""

from __future__ import annotations

import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest
from datafiles import PARIS_REPORTS

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import RawTable, read_csv
from voirie.services.pipeline import Pipeline
from voirie.store import gpkg
from voirie.store.base import migrations
from voirie.store.schema import POINT_TABLES
from voirie.store.sqlite import SqliteStore

VALIDATOR = "/usr/lib/python3/dist-packages/osgeo_utils/samples/validate_gpkg.py"
REBUILT = ("routing_rules", "incident_zones")
ROWS = 300


def _migrated_before(path: Path, version: int) -> None:
    """A new store file with the migrations numbered below ``version`` applied, as the
    runner records them (a store made by an older voirie)."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        gpkg.register_functions(conn)
        conn.execute(
            "CREATE TABLE voirie_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DATETIME NOT NULL)"
        )
        for number, name, text in migrations("sqlite"):
            if number >= version:
                continue
            rtrees = "".join(gpkg.rtree_sql(t) for t in sorted(POINT_TABLES))
            conn.executescript(
                f"BEGIN;\n{text}\n{rtrees if number == 1 else ''}\n"
                f"INSERT INTO voirie_migrations VALUES ({number}, '{name}', 'now');\nCOMMIT;"
            )


def _rows(store: SqliteStore, table: str) -> list[tuple[object, ...]]:
    """A table's rows in storage order, without the integer key 0025 added."""
    columns = [row[1] for row in store.conn.execute(f"PRAGMA table_info({table})")]
    kept = ", ".join(name for name in columns if name != "fid")
    return store.conn.execute(f"SELECT {kept} FROM {table} ORDER BY rowid").fetchall()


def test_a_store_made_before_0025_is_upgraded_to_a_valid_geopackage(
    tmp_path: Path, paris: City, paris_gis: CityGIS
) -> None:
    path = tmp_path / "voirie.gpkg"
    _migrated_before(path, 25)
    store = SqliteStore(path)
    raw = read_csv(PARIS_REPORTS)
    Pipeline(paris, store, paris_gis).imports.import_table(
        RawTable(raw.rows.iloc[:ROWS], raw.columns), DANSMARUE
    )
    before = {table: _rows(store, table) for table in REBUILT}
    assert all(before.values())

    assert store.upgrade() == [25]

    assert {table: _rows(store, table) for table in REBUILT} == before
    for table in REBUILT:
        (key,) = [r for r in store.conn.execute(f"PRAGMA table_info({table})") if r[5]]
        assert (key[1], key[2]) == ("fid", "INTEGER")
    # The old keys still hold: a rule version stored twice is refused.
    first = store.conn.execute("SELECT * FROM routing_rules LIMIT 1").fetchone()
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        store.conn.execute(
            "INSERT INTO routing_rules (jurisdiction_id, rule_id, version, content_hash, "
            "content, loaded_at) VALUES (?, ?, ?, 'x', 'x', 'now')",
            first[1:4],
        )
    store.close()

    done = subprocess.run(
        ["/usr/bin/python3", VALIDATOR, "-k", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not done.stdout.strip(), done.stdout
