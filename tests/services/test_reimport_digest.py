"""A re-import that skips the validation of rows stored unchanged (``ingest.digest``,
migration 0024), on both backends.

What must hold: the re-import of a file mixing new, unchanged, changed, re-formatted,
invalid and repeated rows gives the summary, quarantine and stored rows that validating
every row gives (the same store with its raw digests cleared: every row then goes through
validation, as before the digest); rows stored unchanged are not validated (a city that
now refuses their category still counts them as already imported) while a row re-formatted
with the same content is; and reports stored before migration 0024 (no digest) still
re-import as already imported.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from datafiles import PARIS_REPORTS

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import stream_csv
from voirie.ingest.validate import CHANGED_CONTENT
from voirie.services.imports import REPEATED, ImportSummary
from voirie.services.pipeline import Pipeline
from voirie.store.base import Store

J = "paris.fr"
CHUNK = 150
BATCH = 100
CHANGED_ADDRESS = "1 rue de Rivoli, 75001 Paris"
COUNTED = (
    "read",
    "imported",
    "new_incidents",
    "attached_existing",
    "attached_in_batch",
    "already_imported",
    "quarantined",
)


def _paris_rows(n: int) -> pd.DataFrame:
    """The first ``n`` rows of the real DansMaRue file, as text."""
    return pd.read_csv(PARIS_REPORTS, dtype=str, keep_default_na=False).iloc[:n]


def _reformatted(rows: pd.DataFrame) -> pd.DataFrame:
    """The same reports written differently: a trailing zero on the latitude, blanks
    around the address (validation reads the same values)."""
    return rows.assign(latitude=rows["latitude"] + "0", adresse=" " + rows["adresse"] + "  ")


def _write(rows: pd.DataFrame, path: Path) -> Path:
    """Rows written as a CSV file, as a partner's export would be."""
    rows.to_csv(path, index=False)
    return path


def _import(pipeline: Pipeline, path: Path) -> ImportSummary:
    """``voirie import``'s streamed import of a file, in small chunks and batches."""
    return pipeline.imports.import_chunks(stream_csv(path, CHUNK), DANSMARUE, batch_size=BATCH)


def _execute(store: Store, statement: str) -> None:
    """One statement of the test's own on a store (in a write transaction)."""
    with store.transaction(J) as uow:
        uow.session.conn.execute(statement)  # type: ignore[attr-defined]


def _table(store: Store, statement: str) -> list[tuple[object, ...]]:
    """The rows of one query of the test's own, as tuples."""
    with store.transaction(J) as uow:
        rows = uow.session.conn.execute(statement).fetchall()  # type: ignore[attr-defined]
    return [tuple(row) for row in rows]


def _stored(store: Store) -> dict[str, list[tuple[object, ...]]]:
    """The rows an import writes, ids included (not the instants of writing)."""
    return {
        "reports": _table(
            store,
            "SELECT id, external_id, service_code, address, lon, lat, requested_at,"
            " content_hash FROM reports ORDER BY id",
        ),
        "links": _table(
            store,
            "SELECT report_id, incident_id, score, reason FROM incident_reports ORDER BY report_id",
        ),
        "incidents": _table(
            store,
            "SELECT id, origin_report_id, service_code, report_count, segment_id, status"
            " FROM incidents ORDER BY id",
        ),
        "events": _table(store, "SELECT id, entity, entity_id, kind FROM events ORDER BY id"),
    }


def _counts(summary: ImportSummary) -> dict[str, int]:
    """What the summary of ``voirie import`` shows."""
    return {name: int(getattr(summary, name)) for name in COUNTED}


def _mixed_file(rows: pd.DataFrame, path: Path) -> Path:
    """A re-import of ``rows[:400]`` (stored) mixing, over several chunks: rows stored
    unchanged, changed, re-formatted, new, invalid, and ids repeated in one chunk and
    across chunks, identical or with other content."""
    stored, new = rows.iloc[:400], rows.iloc[400:]
    invalid = new.iloc[100:110].assign(latitude="x")
    # An id no store can hold (PostgreSQL refuses a NUL byte): quarantined, never probed.
    invalid.iloc[-1, invalid.columns.get_loc("id_dmr")] = "nul\x00id"
    parts = [
        stored.iloc[:200],  # unchanged
        stored.iloc[200:220].assign(adresse=CHANGED_ADDRESS),  # changed
        _reformatted(stored.iloc[220:240]),  # same content, written differently
        stored.iloc[240:245],  # unchanged, repeated identically in this chunk below
        stored.iloc[240:245],
        stored.iloc[245:250],  # unchanged, repeated in this chunk with other content below
        stored.iloc[245:250].assign(adresse=CHANGED_ADDRESS),
        new.iloc[:100],
        invalid,
        stored.iloc[:10],  # unchanged ids of the first chunk: identical in a later one
        stored.iloc[10:20].assign(adresse=CHANGED_ADDRESS),  # and with other content
        new.iloc[:5],  # new ids of an earlier chunk, identical
        stored.iloc[300:400],  # unchanged
    ]
    return _write(pd.concat(parts, ignore_index=True), path)


def test_a_reimport_gives_what_validating_every_row_gives(
    two_stores: tuple[Store, Store], tmp_path: Path, paris: City, paris_gis: CityGIS
) -> None:
    rows = _paris_rows(600)
    first = _write(rows.iloc[:400], tmp_path / "first.csv")
    digests, validating = (Pipeline(paris, store, paris_gis) for store in two_stores)
    first_imported = _import(digests, first).imported
    assert _import(validating, first).imported == first_imported
    _execute(validating.store, "UPDATE reports SET raw_digest = NULL")

    again = _mixed_file(rows, tmp_path / "again.csv")
    skipped, validated = _import(digests, again), _import(validating, again)

    assert _counts(skipped) == _counts(validated)
    pd.testing.assert_frame_equal(skipped.quarantine, validated.quarantine)
    pd.testing.assert_series_equal(skipped.reasons(), validated.reasons())
    assert _stored(digests.store) == _stored(validating.store)
    # Every kind of row was there.
    reasons = set(skipped.quarantine["reason"])
    # (A repeat is quarantined with the same reason inside a chunk and across chunks.)
    assert {CHANGED_CONTENT, REPEATED} <= reasons
    assert any(r.startswith("not a number") for r in reasons)
    assert "contains a NUL byte" in reasons
    assert skipped.imported > 0
    assert skipped.already_imported > 300
    # The rows imported with a digest keep it: only those cleared above have none.
    nulls = "SELECT count(*) FROM reports WHERE raw_digest IS NULL"
    assert _table(digests.store, nulls) == [(0,)]
    assert _table(validating.store, nulls) == [(first_imported,)]


def test_rows_stored_unchanged_are_not_validated_again(
    store: Store, tmp_path: Path, paris: City, paris_gis: CityGIS
) -> None:
    rows = _paris_rows(300)
    first = _import(Pipeline(paris, store, paris_gis), _write(rows, tmp_path / "first.csv"))
    assert first.imported > 200
    refusing = _refusing(paris)
    verbatim, reformatted = rows.iloc[:250], _reformatted(rows.iloc[250:])
    again = _write(pd.concat([verbatim, reformatted], ignore_index=True), tmp_path / "again.csv")

    summary = _import(Pipeline(refusing, store, paris_gis), again)

    stored = {external_id for (external_id,) in _table(store, "SELECT external_id FROM reports")}
    unchanged = int(verbatim["id_dmr"].isin(stored).sum())
    assert summary.already_imported == unchanged > 150
    # The others are validated: the re-formatted rows (their raw digest differs) and the
    # rows the first import quarantined, all refused by this city.
    assert summary.quarantined == len(rows) - unchanged
    refused = summary.quarantine[summary.quarantine["external_id"].isin(reformatted["id_dmr"])]
    assert len(refused) == len(reformatted)
    assert refused["reason"].str.startswith("unknown category").all()
    assert summary.imported == 0


def _refusing(city: City) -> City:
    """The city with its categories renamed, and its catalogue declared complete: validating
    a row of its DansMaRue source (which names them) now quarantines it (unknown category);
    the codes, and so the routing, are unchanged."""
    config = city.config
    services = [s.model_copy(update={"name": f"{s.name} (renamed)"}) for s in config.services]
    groups = [g.model_copy(update={"name": f"{g.name} (renamed)"}) for g in config.groups]
    update = {"services": services, "groups": groups, "new_categories": "quarantine"}
    return City(city.folder, config.model_copy(update=update))


def test_reports_stored_before_the_digest_reimport_as_already_imported(
    store: Store, tmp_path: Path, paris: City, paris_gis: CityGIS
) -> None:
    path = _write(_paris_rows(300), tmp_path / "first.csv")
    pipeline = Pipeline(paris, store, paris_gis)
    first = _import(pipeline, path)
    # The store as migration 0023 left it, holding those reports: no raw_digest column.
    _execute(store, "ALTER TABLE reports DROP COLUMN raw_digest")
    _execute(store, "DELETE FROM voirie_migrations WHERE version = 24")

    assert store.upgrade() == [24]

    assert _table(store, "SELECT count(*) FROM reports WHERE raw_digest IS NULL") == [
        (first.imported,)
    ]
    again = _import(pipeline, path)
    assert (again.imported, again.already_imported) == (0, first.imported)
    assert again.quarantined == first.quarantined
