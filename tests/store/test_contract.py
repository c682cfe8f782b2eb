"""The storage contract: every backend stores, reads and isolates exactly the same way.

Each test runs once per backend (``[sqlite]``, ``[postgis]``) through the ``store`` fixture
and the real pipeline, on the first 200 reports of the DansMaRue sample.
"""

from __future__ import annotations

import csv
import re
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE, ColumnMapping
from voirie.ingest.sources import ROW, RawTable, read_csv
from voirie.model import IN_HAND_STATUSES, OPEN_STATUSES, EventKind, Status
from voirie.services.imports import ImportSummary
from voirie.services.pipeline import Pipeline
from voirie.settings import StoreSettings
from voirie.store import Store, open_store
from voirie.store.base import migrations
from voirie.store.candidates import BBox
from voirie.store.queries import QUERIES
from voirie.store.schema import BOOL_COLUMNS, COLUMNS, DATETIME_COLUMNS, ID_TABLES
from voirie.store.selection import LAYERS

SAMPLE = Path(__file__).parents[1] / "data" / "dansmarue_200.csv"
N = 200
OTHER_JURISDICTION = "elsewhere.example"
PARTNER = DANSMARUE.model_copy(update={"source": "partner"})
OPEN = sorted(s.value for s in OPEN_STATUSES)


def connect(url: str) -> Store:
    """Another store on the same database, as a second process would open it."""
    return open_store(StoreSettings(database_url=url, pool_min_size=1, pool_max_size=4))


def sample_rows() -> list[dict[str, str]]:
    """The fixture file as the source wrote it."""
    with SAMPLE.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def run_import(
    store: Store,
    paris: City,
    gis: CityGIS,
    table: RawTable | None = None,
    mapping: ColumnMapping = DANSMARUE,
    batch_size: int = 5_000,
) -> ImportSummary:
    """Import a table (the sample by default) through the whole pipeline."""
    pipeline = Pipeline(paris, store, gis)
    return pipeline.imports.import_table(table or read_csv(SAMPLE), mapping, batch_size=batch_size)


def doubled(table: RawTable) -> RawTable:
    """The table followed by a copy of every row under another id (a duplicate submission)."""
    bis = table.rows.copy()
    bis["id_dmr"] = bis["id_dmr"] + "-bis"
    rows = pd.concat([table.rows, bis], ignore_index=True)
    rows[ROW] = range(1, len(rows) + 1)
    return RawTable(rows, table.columns)


def import_duplicates(store: Store, paris: City, gis: CityGIS) -> list[ImportSummary]:
    """Two imports that group reports every way: within a batch, across batches (small
    batches), and onto incidents stored by an earlier import (a partner's copy)."""
    return [
        run_import(store, paris, gis, doubled(read_csv(SAMPLE)), batch_size=64),
        run_import(store, paris, gis, mapping=PARTNER, batch_size=64),
    ]


def counts(store: Store, jurisdiction: str) -> dict[str, int]:
    """Rows per schema table."""
    return {table: store.count(table, jurisdiction) for table in COLUMNS}


def event_rows(ids: np.ndarray, jurisdiction: str) -> pd.DataFrame:
    """Minimal valid event rows with the given ids."""
    return pd.DataFrame(
        {
            "id": ids,
            "jurisdiction_id": jurisdiction,
            "entity": "report",
            "entity_id": ids,
            "kind": EventKind.COMMENTED.value,
            "actor": "contract-test",
            "reason": None,
            "at": pd.Timestamp.now(tz="UTC"),
        }
    )


def assert_typed(frame: pd.DataFrame) -> None:
    """Datetimes come back tz-aware in UTC and flags as bool, whatever the backend."""
    for name in frame.columns:
        if name in DATETIME_COLUMNS:
            assert isinstance(frame[name].dtype, pd.DatetimeTZDtype), name
            assert str(frame[name].dt.tz) == "UTC", name
        elif name in BOOL_COLUMNS:
            assert frame[name].dtype == bool, name


# --- schema -------------------------------------------------------------------------------


def test_upgrade_is_idempotent(store: Store) -> None:
    latest = max(version for version, _, _ in migrations(store.backend))
    assert store.schema_version() == latest
    assert store.upgrade() == []
    assert store.schema_version() == latest


def test_upgrade_applies_every_migration_once_under_concurrency(empty_store_url: str) -> None:
    stores = [connect(empty_store_url) for _ in range(3)]
    try:
        versions = [version for version, _, _ in migrations(stores[0].backend)]
        assert stores[0].schema_version() == 0
        results: list[list[int]] = []
        errors: list[BaseException] = []
        start = threading.Barrier(len(stores))

        def upgrade(store: Store) -> None:
            start.wait()
            try:
                results.append(store.upgrade())
            except BaseException as exc:  # surfaced below, with the backend's message
                errors.append(exc)

        threads = [threading.Thread(target=upgrade, args=(s,)) for s in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        assert sorted(v for applied in results for v in applied) == versions
        assert all(s.schema_version() == versions[-1] for s in stores)
        assert stores[0].count("reports", "paris.fr") == 0
    finally:
        for opened in stores:
            opened.close()


# --- writing and reading ------------------------------------------------------------------


def test_import_round_trip(store: Store, paris: City, paris_gis: CityGIS) -> None:
    summary = run_import(store, paris, paris_gis)
    assert (summary.read, summary.imported, summary.quarantined) == (N, N, 0)
    j = paris.jurisdiction_id
    incidents = summary.new_incidents
    assert counts(store, j) == {
        "reports": N,
        "report_contacts": 0,
        "enrichments": N,
        "report_zones": len(store.read("report_zones", j)),
        "incidents": incidents,
        "incident_zones": len(store.read("incident_zones", j)),
        "incident_reports": N,
        "assignments": incidents,
        "events": 2 * N + incidents,
        # Every rule version is stored before the first batch; Paris teams have no webhook or
        # e-mail, so no notice is queued; every Paris service has an SLA, but the sample is
        # of 2023: every escalation deadline has passed, and an inherited backlog is not
        # escalated (tests/routing/test_sla.py schedules one still ahead).
        "routing_rules": len(paris.config.routing.rules),
        "outbox": 0,
        "escalations": 0,
        "report_attributes": 0,
    }

    source = pd.DataFrame(sample_rows())
    reports = store.read("reports", j).set_index("external_id").loc[source["id_dmr"]]
    assert_typed(reports)
    assert (reports["source"] == "dansmarue").all()
    np.testing.assert_array_equal(reports["lon"], source["longitude"].astype(float))
    np.testing.assert_array_equal(reports["lat"], source["latitude"].astype(float))
    local_day = reports["requested_at"].dt.tz_convert(paris.config.timezone).dt.strftime("%F")
    np.testing.assert_array_equal(local_day, source["datedecl"])
    np.testing.assert_array_equal(reports["address"], source["adresse"])
    np.testing.assert_array_equal(reports["segment_id"].isna(), reports["off_network"])
    assert reports["report_id"].is_unique

    # Every zone the GIS found for a report is stored, and nothing else.
    zones = store.read("report_zones", j)
    enriched = paris_gis.enrich(reports["lon"].to_numpy(), reports["lat"].to_numpy())
    for layer in paris_gis.zones:
        found = enriched[f"zone_{layer}"].set_axis(reports["report_id"]).dropna()
        stored_codes = zones[zones["layer"] == layer].set_index("report_id")["code"]
        assert stored_codes.sort_index().to_dict() == found.sort_index().to_dict(), layer
    assert len(zones) == int(enriched[[f"zone_{n}" for n in paris_gis.zones]].notna().sum().sum())
    assert zones["layer"].value_counts()["arrondissement"] == N

    stored = store.read("incidents", j)
    assert_typed(stored)
    assert len(stored) == incidents
    assert set(reports["incident_id"]) == set(stored["incident_id"])
    assert set(stored["origin_report_id"]) <= set(reports["report_id"])
    assert stored["report_count"].sum() == N
    assert (stored["status"] == Status.NEW.value).all()
    assert stored["team"].notna().all()
    assert stored["routing_reason"].notna().all()


def test_reads_are_scoped_to_the_jurisdiction(
    store: Store, paris: City, paris_gis: CityGIS
) -> None:
    run_import(store, paris, paris_gis)
    for table in COLUMNS:
        assert store.count(table, OTHER_JURISDICTION) == 0
    for query in (*LAYERS, *QUERIES):
        mine = store.read(query, paris.jurisdiction_id)
        theirs = store.read(query, OTHER_JURISDICTION)
        assert len(mine)
        assert theirs.empty
        assert list(theirs.columns) == list(mine.columns)


def test_reimport_adds_nothing(store: Store, paris: City, paris_gis: CityGIS) -> None:
    run_import(store, paris, paris_gis)
    before = counts(store, paris.jurisdiction_id)
    again = run_import(store, paris, paris_gis, batch_size=64)
    assert (again.imported, again.already_imported, again.quarantined) == (0, N, 0)
    assert counts(store, paris.jurisdiction_id) == before


def test_duplicates_attach_within_batches_across_batches_and_to_stored_incidents(
    store: Store, paris: City, paris_gis: CityGIS
) -> None:
    first, partner = import_duplicates(store, paris, paris_gis)
    # Small batches split some pairs: their second report finds the first one's incident
    # through open_in_bbox; the summary counts both kinds as "of this import".
    assert (first.imported, first.new_incidents) == (2 * N, N)
    assert (first.attached_in_batch, first.attached_existing) == (N, 0)
    assert (partner.imported, partner.attached_existing, partner.new_incidents) == (N, N, 0)

    j = paris.jurisdiction_id
    incidents = store.read("incidents", j)
    assert len(incidents) == N
    assert (incidents["report_count"] == 3).all()
    reports = store.read("reports", j)
    latest = reports.groupby("incident_id")["requested_at"].max()
    pd.testing.assert_series_equal(
        incidents.set_index("incident_id")["last_reported_at"], latest, check_names=False
    )
    members = reports.groupby("incident_id")["external_id"].agg(lambda s: sorted(set(s)))
    assert all(len(ids) == 2 and ids[1] == ids[0] + "-bis" for ids in members)
    assert counts(store, j)["incident_reports"] == 3 * N


# --- units of work ------------------------------------------------------------------------


def test_reserve_ids_never_repeat(store: Store, store_url: str) -> None:
    j = "paris.fr"
    with store.transaction(j) as uow:
        first = {table: uow.tables.reserve_ids(table, 5) for table in ID_TABLES}
        more = {table: uow.tables.reserve_ids(table, 3) for table in ID_TABLES}
        assert uow.tables.reserve_ids("events", 0).size == 0
        uow.tables.insert(
            "events", event_rows(np.concatenate([first["events"], more["events"]]), j)
        )
    with store.transaction(j) as uow:
        later = uow.tables.reserve_ids("events", 5)
    for table in ID_TABLES:
        assert len(set(first[table]) | set(more[table])) == 8, table
        assert np.all(np.diff(first[table]) > 0)
        assert np.all(np.diff(more[table]) > 0)
    assert not set(later) & (set(first["events"]) | set(more["events"]))

    # Writers in other processes (here: other connections) never draw the same ids.
    others = [connect(store_url) for _ in range(2)]
    drawn: list[np.ndarray] = []

    def write(writer: Store) -> None:
        for _ in range(5):
            with writer.transaction(j) as uow:
                ids = uow.tables.reserve_ids("events", 20)
                uow.tables.insert("events", event_rows(ids, j))
            drawn.append(ids)

    try:
        threads = [threading.Thread(target=write, args=(s,)) for s in [store, *others]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for opened in others:
            opened.close()
    all_ids = np.concatenate(drawn)
    assert len(all_ids) == 3 * 5 * 20
    assert len(np.unique(all_ids)) == len(all_ids)
    assert store.count("events", j) == 8 + len(all_ids)


def test_concurrent_imports_of_the_same_problems_share_incidents(
    store: Store, store_url: str, paris: City, paris_gis: CityGIS
) -> None:
    # Two workers import the same 200 problems from two sources at once: the lock makes
    # each batch see the other's incidents, so every problem ends in one incident.
    sources = ["dansmarue", "partner"]
    workers = [connect(store_url) for _ in sources]
    summaries: dict[str, ImportSummary] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(workers))

    def work(worker: Store, source: str) -> None:
        start.wait()
        try:
            mapping = DANSMARUE.model_copy(update={"source": source})
            summaries[source] = run_import(worker, paris, paris_gis, mapping=mapping, batch_size=32)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    try:
        threads = [
            threading.Thread(target=work, args=pair) for pair in zip(workers, sources, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for worker in workers:
            worker.close()
    assert not errors, errors
    assert sum(s.new_incidents for s in summaries.values()) == N
    incidents = store.read("incidents", paris.jurisdiction_id)
    assert len(incidents) == N
    assert (incidents["report_count"] == 2).all()
    reports = store.read("reports", paris.jurisdiction_id)
    per_incident = reports.groupby("incident_id")["source"].agg(sorted)
    assert all(found == sources for found in per_incident)


def test_failed_transaction_leaves_nothing(
    store: Store, paris: City, paris_gis: CityGIS, monkeypatch: pytest.MonkeyPatch
) -> None:
    j = paris.jurisdiction_id

    def write_then_fail() -> None:
        with store.transaction(j) as uow:
            uow.tables.insert("events", event_rows(uow.tables.reserve_ids("events", 3), j))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_then_fail()
    assert store.count("events", j) == 0

    # The pipeline fails after writing reports, enrichments and zones: all of it goes.
    def routing_down(*args: Any) -> pd.DataFrame:
        raise RuntimeError("routing table unavailable")

    monkeypatch.setattr("voirie.services.writer.route", routing_down)
    with pytest.raises(RuntimeError, match="routing table unavailable"):
        run_import(store, paris, paris_gis)
    # Only the city's rule versions stay: stored before the first batch, in their own
    # transaction (as the per-report path stores them before the first report).
    left = counts(store, j)
    assert left.pop("routing_rules") == len(paris.config.routing.rules)
    assert set(left.values()) == {0}

    monkeypatch.undo()
    assert run_import(store, paris, paris_gis).imported == N
    assert store.count("reports", j) == N


def test_open_in_bbox_filters_by_bbox_service_status_and_time(
    store: Store, paris: City, paris_gis: CityGIS
) -> None:
    j = paris.jurisdiction_id
    run_import(store, paris, paris_gis)
    stored = store.read("incidents", j)
    # One more incident in every status at the place of an existing one.
    model = stored.iloc[[0] * len(Status)].reset_index(drop=True)
    with store.transaction(j) as uow:
        model["id"] = uow.tables.reserve_ids("incidents", len(model))
        model["status"] = [s.value for s in Status]
        model["jurisdiction_id"] = j
        uow.tables.insert("incidents", model)
    incidents = store.read("incidents", j)
    assert len(incidents) == len(stored) + len(Status)

    def expected(bbox: BBox, services: list[str], since: pd.Timestamp) -> set[int]:
        keep = (
            incidents["lon"].between(bbox[0], bbox[2])
            & incidents["lat"].between(bbox[1], bbox[3])
            & incidents["service_code"].isin(services)
            & incidents["status"].isin(OPEN)
            & (
                (incidents["last_reported_at"] >= since)
                | incidents["status"].isin([s.value for s in IN_HAND_STATUSES])
            )
        )
        return set(incidents.loc[keep, "incident_id"])

    everywhere: BBox = (2.2, 48.8, 2.5, 48.95)
    north: BBox = (2.2, float(incidents["lat"].median()), 2.5, 48.95)
    services = sorted(incidents["service_code"].unique())
    common = incidents["service_code"].value_counts().index[:3].tolist()
    oldest = incidents["last_reported_at"].min()
    middle = incidents["last_reported_at"].sort_values().iloc[len(incidents) // 2]
    one = incidents.iloc[0]
    near_one: BBox = (one["lon"] - 1e-4, one["lat"] - 1e-4, one["lon"] + 1e-4, one["lat"] + 1e-4)
    cases: list[tuple[BBox, list[str], pd.Timestamp]] = [
        (everywhere, services, oldest),
        (north, services, oldest),
        (everywhere, common, oldest),
        (everywhere, services, middle),
        (north, common, middle),
        (near_one, [one["service_code"]], one["last_reported_at"]),
        (near_one, [one["service_code"]], one["last_reported_at"] + timedelta(seconds=1)),
    ]
    unfiltered = expected(everywhere, services, oldest)
    assert unfiltered == set(incidents.loc[incidents["status"].isin(OPEN), "incident_id"])
    for bbox, codes, since in cases[1:5]:
        assert expected(bbox, codes, since) < unfiltered  # every filter excludes something
    assert len(expected(*cases[5])) == 1 + len(OPEN)

    with store.transaction(j) as uow:
        for bbox, codes, since in cases:
            found = uow.incidents.open_in_bbox(bbox, codes, since.to_pydatetime())
            assert list(found.columns) == [
                "incident_id",
                "lon",
                "lat",
                "service_code",
                "last_reported_at",
                "segment_id",
                "street_name",
                "status",
                "first_reported_at",
            ]
            assert_typed(found)
            assert found["incident_id"].is_unique
            assert set(found["incident_id"]) == expected(bbox, codes, since), (bbox, codes, since)
        # ``until`` bounds when an incident began, in hand or not (the oldest first report
        # kept, so the bound is inclusive).
        began = incidents["first_reported_at"]
        for until in (began.min(), began.sort_values().iloc[len(incidents) // 2]):
            found = uow.incidents.open_in_bbox(
                everywhere, services, oldest.to_pydatetime(), until.to_pydatetime()
            )
            bounded = set(incidents.loc[began <= until, "incident_id"]) & unfiltered
            assert 0 < len(bounded) < len(unfiltered)
            assert set(found["incident_id"]) == bounded, until
            near = uow.incidents.open_near(
                float(one["lon"]),
                float(one["lat"]),
                30.0,
                [one["service_code"]],
                oldest.to_pydatetime(),
                until.to_pydatetime(),
            )
            assert (near.first_reported_at <= until.tz_convert(None).to_datetime64()).all()
    with store.transaction(OTHER_JURISDICTION) as uow:
        assert uow.incidents.open_in_bbox(everywhere, services, oldest.to_pydatetime()).empty


# --- privacy ------------------------------------------------------------------------------


def test_reporter_contact_data_never_appears_in_a_read(
    store: Store, paris: City, paris_gis: CityGIS
) -> None:
    table = read_csv(SAMPLE)
    n = len(table.rows)
    contacts = {
        "nom": [f"Camille Témoin {i}" for i in range(n)],
        "courriel": [f"camille.temoin.{i}@example.org" for i in range(n)],
        "telephone": [f"+33 6 12 34 {i:03d}" for i in range(n)],
        "appareil": [f"device-7f3a-{i}" for i in range(n)],
    }
    rows = table.rows.assign(**contacts)
    mapping = DANSMARUE.model_copy(
        update={
            "source": "app",
            "contact_name": "nom",
            "contact_email": "courriel",
            "contact_phone": "telephone",
            "device_id": "appareil",
        }
    )
    summary = run_import(
        store, paris, paris_gis, RawTable(rows, [*table.columns, *contacts]), mapping
    )
    assert summary.imported == N
    j = paris.jurisdiction_id
    assert store.count("report_contacts", j) == N

    secret = re.compile("|".join(re.escape(v) for values in contacts.values() for v in values))
    pipeline = Pipeline(paris, store, paris_gis)
    frames: dict[str, pd.DataFrame] = {q: store.read(q, j) for q in (*LAYERS, *QUERIES)}
    frames["report_layer"] = pd.DataFrame(pipeline.reads.reports().drop(columns="geometry"))
    frames["incident_layer"] = pd.DataFrame(pipeline.reads.incidents().drop(columns="geometry"))
    for name, frame in frames.items():
        assert len(frame), name
        assert not {"email", "phone", "device_id"} & set(frame.columns), name
        assert not any(c.startswith("contact") for c in frame.columns), name
        cells = frame.to_numpy().ravel()
        leaked = [cell for cell in cells if isinstance(cell, str) and secret.search(cell)]
        assert not leaked, (name, leaked[:3])


# --- both backends agree ------------------------------------------------------------------


def layers(store: Store, paris: City, gis: CityGIS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Report and incident layers keyed by what the source said, not by backend ids."""
    pipeline = Pipeline(paris, store, gis)
    reports = pd.DataFrame(pipeline.reads.reports().drop(columns="geometry"))
    incidents = pd.DataFrame(pipeline.reads.incidents().drop(columns="geometry"))
    reports["key"] = reports["source"] + "/" + reports["external_id"]
    incidents["origin"] = incidents["origin_report_id"].map(reports.set_index("report_id")["key"])
    return (
        reports.sort_values("key", ignore_index=True),
        incidents.sort_values("origin", ignore_index=True),
    )


def grouping(reports: pd.DataFrame) -> set[frozenset[str]]:
    """Which reports share an incident, as sets of source/external ids."""
    return {frozenset(keys) for _, keys in reports.groupby("incident_id")["key"]}


def outcome(summary: ImportSummary) -> tuple[int, ...]:
    """The counts of an import summary."""
    return (
        summary.read,
        summary.imported,
        summary.new_incidents,
        summary.attached_existing,
        summary.attached_in_batch,
        summary.already_imported,
        summary.quarantined,
    )


@pytest.mark.postgis
def test_backends_give_identical_layers(
    postgis_url: str, tmp_path: Path, paris: City, paris_gis: CityGIS
) -> None:
    results: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    summaries: dict[str, list[ImportSummary]] = {}
    for url in (f"sqlite:///{tmp_path / 'voirie.gpkg'}", postgis_url):
        store = connect(url)
        try:
            store.upgrade()
            summaries[store.backend] = import_duplicates(store, paris, paris_gis)
            results[store.backend] = layers(store, paris, paris_gis)
        finally:
            store.close()

    assert [outcome(s) for s in summaries["sqlite"]] == [outcome(s) for s in summaries["postgis"]]
    (lite_reports, lite_incidents), (pg_reports, pg_incidents) = (
        results["sqlite"],
        results["postgis"],
    )
    zones = [f"zone_{name}" for name in paris_gis.zones]
    report_columns = [
        "key",
        "external_id",
        "service_code",
        "lon",
        "lat",
        "requested_at",
        "segment_id",
        "street_name",
        "snap_distance_m",
        "side",
        *zones,
        "team",
        "status",
        "dedupe_reason",
        "off_network",
        "near_boundary",
    ]
    pd.testing.assert_frame_equal(lite_reports[report_columns], pg_reports[report_columns])
    assert list(lite_reports.columns) == list(pg_reports.columns)
    assert lite_reports.dtypes.astype(str).to_dict() == pg_reports.dtypes.astype(str).to_dict()
    assert grouping(lite_reports) == grouping(pg_reports)

    incident_columns = [
        "origin",
        "service_code",
        "service_name",
        "lon",
        "lat",
        "segment_id",
        "status",
        "team",
        "priority",
        "due_at",
        "report_count",
        "first_reported_at",
        "last_reported_at",
        "rule_id",
        "rule_version",
        "routing_reason",
        *zones,
    ]
    pd.testing.assert_frame_equal(lite_incidents[incident_columns], pg_incidents[incident_columns])
    assert list(lite_incidents.columns) == list(pg_incidents.columns)
