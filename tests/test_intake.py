"""The per-report path stores what the bulk path stores.

The same real DansMaRue reports go into two stores of one backend: one store by
``Importer.import_table`` (the bulk path), the other one report at a time by
``Intake.submit`` (the per-report path, ``voirie.services.intake``), in the order an import takes
them. Every table is then compared row by row, keyed by the reports' external ids (the
database ids, and the instants of writing, differ): reports, enrichments, zones, links with
their scores and reasons, incidents, assignments, escalations, team notices and events.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from reportrows import submitted_reports

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import RawTable, read_csv
from voirie.services.pipeline import Pipeline
from voirie.store import Store
from voirie.store.schema import COLUMNS

PARIS_CSV = Path(__file__).parents[1] / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
N = 1_500
JURISDICTION = "paris.fr"


@pytest.fixture(scope="module")
def table() -> RawTable:
    """The first ``N`` reports of the bundled slice (dense in time: many duplicates)."""
    raw = read_csv(PARIS_CSV)
    return RawTable(raw.rows.iloc[:N].reset_index(drop=True), raw.columns)


def _rows(store: Store, table: str, columns: list[str]) -> pd.DataFrame:
    with store.transaction(JURISDICTION) as uow:
        conn = uow.session.conn  # type: ignore[attr-defined]
        rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def _tables(store: Store) -> dict[str, pd.DataFrame]:
    """Every table the pipeline writes, keyed by external ids instead of database ids."""
    raw = {
        name: _rows(store, name, list(COLUMNS[name]))
        for name in (
            "reports",
            "enrichments",
            "report_zones",
            "incident_reports",
            "incidents",
            "assignments",
            "escalations",
            "outbox",
            "events",
        )
    }
    report_ext = raw["reports"].set_index("id")["external_id"]
    origin = raw["incidents"].set_index("id")["origin_report_id"].map(report_ext)
    out: dict[str, pd.DataFrame] = {}
    # The import keeps a digest of each source row (migration 0024); a report submitted
    # alone has no source row, hence none.
    out["reports"] = raw["reports"].drop(columns=["id", "received_at", "raw_digest"])
    for name in ("enrichments", "report_zones"):
        frame = raw[name].assign(report=raw[name]["report_id"].map(report_ext))
        out[name] = frame.drop(columns=["report_id"])
    links = raw["incident_reports"]
    out["incident_reports"] = links.assign(
        report=links["report_id"].map(report_ext), incident=links["incident_id"].map(origin)
    ).drop(columns=["report_id", "incident_id", "linked_at"])
    out["incidents"] = (
        raw["incidents"]
        .assign(origin=origin.to_numpy())
        .drop(columns=["id", "origin_report_id", "updated_at"])
    )
    for name in ("assignments", "escalations"):
        frame = raw[name].assign(incident=raw[name]["incident_id"].map(origin))
        out[name] = frame.drop(
            columns=[c for c in ("id", "incident_id", "assigned_at") if c in frame]
        )
    outbox = raw["outbox"]
    payload = [
        {
            k: v
            for k, v in json.loads(p).items()
            if k not in ("entity_id", "idempotency_key", "sent_for")
        }
        for p in outbox["payload"]
    ]
    out["outbox"] = outbox.assign(
        incident=outbox["entity_id"].map(origin),
        payload=[json.dumps(p, sort_keys=True) for p in payload],
    )[["incident", "channel", "target", "team", "kind", "entity", "payload", "status"]]
    events = raw["events"]
    entity = events["entity_id"].where(events["entity"] == "incident").map(origin)
    entity = entity.fillna(events["entity_id"].where(events["entity"] == "report").map(report_ext))
    out["events"] = events.assign(key=entity.to_numpy())[
        ["entity", "key", "kind", "actor", "reason"]
    ]
    # A report submitted alone says so; an imported one names its source row.
    received = out["events"]["kind"] == "received"
    out["events"].loc[received, "reason"] = "received"
    # Incident ids in "incident N: ..." reasons differ: keep the words after them.
    out["events"]["reason"] = out["events"]["reason"].str.replace(
        r"^incident \d+: ", "incident: ", regex=True
    )
    return {
        name: frame.astype(object)
        .where(frame.notna(), None)
        .sort_values(list(frame.columns), key=lambda c: c.astype(str), ignore_index=True)
        for name, frame in out.items()
    }


def test_one_at_a_time_stores_what_an_import_stores(
    two_stores: tuple[Store, Store], table: RawTable, paris: City, paris_gis: CityGIS
) -> None:
    store, second_store = two_stores
    reports = submitted_reports(table, paris)
    in_bulk = Pipeline(paris, store, paris_gis)
    in_bulk.imports.import_table(
        RawTable(
            table.rows[table.rows["id_dmr"].isin([r.external_id for r in reports])], table.columns
        ),
        DANSMARUE,
    )
    one_by_one = Pipeline(paris, second_store, paris_gis)
    submissions = [one_by_one.intake.submit(report) for report in reports]
    assert sum(s.attached for s in submissions) > 20  # the slice has real duplicates
    bulk, single = _tables(store), _tables(second_store)
    for name, frame in bulk.items():
        pd.testing.assert_frame_equal(single[name], frame, check_exact=False, rtol=1e-9, obj=name)
