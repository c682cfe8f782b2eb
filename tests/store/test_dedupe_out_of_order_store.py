"""An older history imported into a store that already holds newer reports, through the
bulk path (``import_table``) and the per-report path (``Intake.submit``), on both
backends: an old report at the place of a newer incident opens its own; a report up to
``window_days`` before the incident began joins it and moves its start back; both paths
store the same incidents."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
from datafiles import PARIS_REPORTS
from reportrows import submitted_reports

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import RawTable, read_csv
from voirie.ingest.validate import validate
from voirie.services.pipeline import Pipeline
from voirie.store import Store

JURISDICTION = "paris.fr"
T = date(2024, 6, 1)


def _table(pipeline: Pipeline) -> RawTable:
    """Three copies of one real catalogued report, dated T (``new``), three windows
    before (``old``) and one day less than a window before (``near``)."""
    raw = read_csv(PARIS_REPORTS)
    head = RawTable(raw.rows.iloc[:50].reset_index(drop=True), raw.columns)
    valid = validate(head, DANSMARUE, pipeline.city).reports
    valid = valid[valid["service_code"].isin(list(pipeline.city.services))]
    row = head.rows[head.rows["id_dmr"] == valid["external_id"].iloc[0]].iloc[0]
    thresholds = valid.iloc[[0]].reset_index(drop=True)
    pipeline.policy.set_thresholds(thresholds)
    window = int(thresholds.at[0, "window_days"])
    days = {"new": 0, "old": 3 * window, "near": window - 1}
    rows = pd.DataFrame(
        [
            row.to_dict() | {"id_dmr": f"OOO-{name}", "datedecl": str(T - timedelta(days=d))}
            for name, d in days.items()
        ]
    )
    return RawTable(rows, raw.columns)


def _stored(store: Store) -> pd.DataFrame:
    """Per report (by name): its incident's origin report, the incident's first report
    and report count."""
    with store.transaction(JURISDICTION) as uow:
        conn = uow.session.conn  # type: ignore[attr-defined]
        rows = conn.execute(
            "SELECT r.external_id, o.external_id, CAST(i.first_reported_at AS TEXT), "
            "i.report_count FROM incident_reports ir JOIN reports r ON r.id = ir.report_id "
            "JOIN incidents i ON i.id = ir.incident_id "
            "JOIN reports o ON o.id = i.origin_report_id"
        ).fetchall()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=["report", "origin", "first", "count"])
    frame["first"] = pd.to_datetime(frame["first"], utc=True, format="ISO8601")
    for name in ("report", "origin"):
        frame[name] = frame[name].str.removeprefix("OOO-")
    return frame.set_index("report").sort_index()


def test_an_older_history_imported_later_keeps_to_its_own_incidents(
    two_stores: tuple[Store, Store], paris: City, paris_gis: CityGIS
) -> None:
    bulk_store, single_store = two_stores
    in_bulk = Pipeline(paris, bulk_store, paris_gis)
    table = _table(in_bulk)
    rows = table.rows.set_index(table.rows["id_dmr"].str.removeprefix("OOO-"))
    in_bulk.imports.import_table(RawTable(rows.loc[["new"]], table.columns), DANSMARUE)
    in_bulk.imports.import_table(RawTable(rows.loc[["old", "near"]], table.columns), DANSMARUE)
    one_by_one = Pipeline(paris, single_store, paris_gis)
    reports = {
        str(report.external_id).removeprefix("OOO-"): report
        for report in submitted_reports(table, paris)
    }
    submitted = {name: one_by_one.intake.submit(reports[name]) for name in ("new", "old", "near")}
    assert [submitted[n].attached for n in ("new", "old", "near")] == [False, False, True]

    bulk, single = _stored(bulk_store), _stored(single_store)
    near = pd.Timestamp(reports["near"].requested_at)
    for stored in (bulk, single):
        # The old report, three windows before the incident began, opens its own.
        assert stored.loc["old", "origin"] == "old"
        assert stored.loc["old", "count"] == 1
        # The one a day less than a window before joins it and moves its start back.
        assert stored.loc["near", "origin"] == "new"
        assert stored.loc["new", "count"] == 2
        assert stored.loc["new", "first"] == near
    pd.testing.assert_frame_equal(bulk, single)
