"""``SqliteSession.insert_frame`` from ``BULK_ROWS`` rows: the per-row insert triggers (the
GeoPackage R*Tree's, the change counter's) are set aside inside the transaction and their
work done once for the frame. The store it leaves is the one the triggers leave, row for
row (the R*Trees' nodes included), with the same schema; an insert that fails leaves the
triggers in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from datafiles import PARIS_REPORTS

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import RawTable, read_csv
from voirie.services.pipeline import Pipeline
from voirie.store import sqlite
from voirie.store.sqlite import BULK_ROWS, SqliteStore

ROWS = 2 * BULK_ROWS
CLOCK = {
    "received_at",
    "updated_at",
    "assigned_at",
    "linked_at",
    "loaded_at",
    "changed_at",
    "applied_at",
    "last_change",
}
"""Columns holding the time of the run, not of the data."""
ASIDE = {
    "rtree_reports_geom_insert",
    "rtree_incidents_geom_insert",
    *(f"{table}_insert_change" for table in sorted(sqlite._COUNTED_TABLES)),
}


def _import(path: Path, paris: City, gis: CityGIS) -> SqliteStore:
    """The first ``ROWS`` rows of the bundled Paris file imported into a new store."""
    raw = read_csv(PARIS_REPORTS)
    store = SqliteStore(path)
    store.upgrade()
    Pipeline(paris, store, gis).imports.import_table(
        RawTable(raw.rows.iloc[:ROWS], raw.columns), DANSMARUE
    )
    return store


def _contents(store: SqliteStore) -> dict[str, list[tuple[object, ...]]]:
    """Every table's rows in rowid order (the R*Trees' shadow tables too), without the
    columns that hold the time of the run; and the schema."""
    conn = store.conn
    out: dict[str, list[tuple[object, ...]]] = {
        "schema": conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    }
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]
        keep = [c for c in columns if c not in CLOCK and not (table == "events" and c == "at")]
        if keep:
            names = ", ".join(f'"{c}"' for c in keep)
            out[table] = conn.execute(f'SELECT {names} FROM "{table}" ORDER BY 1').fetchall()
    return out


def test_a_bulk_import_stores_what_the_triggers_store(
    tmp_path: Path, paris: City, paris_gis: CityGIS, monkeypatch: pytest.MonkeyPatch
) -> None:
    aside: list[str] = []
    enter = sqlite._TriggersAside.__enter__

    def noted(self: sqlite._TriggersAside) -> sqlite._TriggersAside:
        aside.extend(name for name, _ in self.saved)
        return enter(self)

    monkeypatch.setattr(sqlite._TriggersAside, "__enter__", noted)
    bulk = _import(tmp_path / "bulk.gpkg", paris, paris_gis)
    assert set(aside) == ASIDE  # every one set aside (each table's frame has enough rows)
    monkeypatch.setattr(sqlite, "BULK_ROWS", ROWS * 10)  # every frame row by row, triggers on
    per_row = _import(tmp_path / "per_row.gpkg", paris, paris_gis)
    try:
        stored, expected = _contents(bulk), _contents(per_row)
        assert len(aside) == len(ASIDE)  # none in the second import
        assert stored == expected
        # Every trigger set aside is back, and the counter moved by one per row.
        triggers = {name for _, name, _ in stored["schema"]}
        assert triggers >= ASIDE
        (version,) = bulk.conn.execute(
            "SELECT version FROM store_changes WHERE jurisdiction_id = ?", (paris.jurisdiction_id,)
        ).fetchone()
        (base,) = bulk.conn.execute(
            "SELECT version FROM store_changes WHERE jurisdiction_id = ''"
        ).fetchone()
        counted = sum(len(stored[table]) for table in sqlite._COUNTED_TABLES)
        assert version == base + counted
    finally:
        bulk.close()
        per_row.close()


def test_a_failed_bulk_insert_leaves_what_the_triggers_leave(
    tmp_path: Path, paris: City, paris_gis: CityGIS
) -> None:
    store = _import(tmp_path / "voirie.gpkg", paris, paris_gis)
    j = paris.jurisdiction_id
    try:
        schema = _contents(store)["schema"]
        reports = pd.DataFrame(
            store.rows("SELECT * FROM reports ORDER BY id LIMIT ?", (BULK_ROWS + 1,)),
            columns=[d[1] for d in store.conn.execute("PRAGMA table_info(reports)")],
        )
        ((top,),) = store.rows("SELECT MAX(id) FROM reports", ())
        assert isinstance(top, int)
        again = reports.assign(id=range(top + 1, top + 2 + BULK_ROWS))
        again.loc[BULK_ROWS, "id"] = top  # the last row repeats a stored id
        again["external_id"] = "again-" + again["id"].astype(str)
        (before,) = store.rows("SELECT version FROM store_changes WHERE jurisdiction_id = ?", (j,))
        with store.transaction(j) as uow:
            with pytest.raises(sqlite3.IntegrityError):
                uow.tables.insert("reports", again)
            # Inside the transaction, right after the failure: the triggers are back, and
            # the rows before the refused one are stored with their triggers' work done.
            assert _contents(store)["schema"] == schema
            new = store.rows("SELECT COUNT(*) FROM reports WHERE id > ?", (top,))
            boxes = store.rows("SELECT COUNT(*) FROM rtree_reports_geom WHERE id > ?", (top,))
            assert new == boxes == [(BULK_ROWS,)]
            (after,) = store.rows(
                "SELECT version FROM store_changes WHERE jurisdiction_id = ?", (j,)
            )
            assert after[0] == before[0] + BULK_ROWS  # type: ignore[operator]
            # A report written after it is indexed by the trigger again.
            uow.tables.insert("reports", again.iloc[[BULK_ROWS]].assign(id=top + 2 + BULK_ROWS))
        assert _contents(store)["schema"] == schema
        hits = store.rows("SELECT id FROM rtree_reports_geom WHERE id = ?", (top + 2 + BULK_ROWS,))
        assert hits == [(top + 2 + BULK_ROWS,)]
    finally:
        store.close()
