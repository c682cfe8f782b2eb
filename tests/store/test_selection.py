"""Selections (filters and pages of the report and incident layers) on both backends.

Each filter is checked against the same filter applied by pandas to the whole layer, on
the 200 real DansMaRue reports of the sample.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from tests.store.test_contract import run_import
from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.model import EventKind, Status
from voirie.services.pipeline import Pipeline
from voirie.store import Store
from voirie.store.selection import Selection, layer_columns


@pytest.fixture
def pipeline(store: Store, paris: City, paris_gis: CityGIS) -> Pipeline:
    """The sample imported into a fresh store of each backend."""
    run_import(store, paris, paris_gis)
    return Pipeline(paris, store, paris_gis)


def ids(frame: pd.DataFrame, key: str) -> list[int]:
    return [int(v) for v in frame[key]]


def test_filters_match_pandas_on_both_layers(pipeline: Pipeline) -> None:
    reports = pipeline.reads.reports()
    incidents = pipeline.reads.incidents()
    some_reports = tuple(int(v) for v in reports["report_id"].iloc[[0, 5, 17]])
    service = str(reports["service_code"].mode().iloc[0])
    team = str(incidents["team"].mode().iloc[0])
    arrondissement = str(reports["zone_arrondissement"].mode().iloc[0])
    lon0, lat0 = float(reports["lon"].median()), float(reports["lat"].median())
    bbox = (lon0 - 0.01, lat0 - 0.01, lon0 + 0.01, lat0 + 0.01)
    middle = reports["requested_at"].sort_values().iloc[len(reports) // 2].to_pydatetime()
    word = "rue"

    def inside(frame: pd.DataFrame) -> pd.Series:
        return frame["lon"].between(bbox[0], bbox[2]) & frame["lat"].between(bbox[1], bbox[3])

    report_cases: list[tuple[Selection, pd.Series]] = [
        (Selection(ids=some_reports), reports["report_id"].isin(some_reports)),
        (Selection(service_codes=(service,)), reports["service_code"] == service),
        (Selection(teams=(team,)), reports["team"] == team),
        (Selection(statuses=(Status.NEW.value,)), reports["status"] == Status.NEW.value),
        (Selection(statuses=(Status.CLOSED.value,)), reports["status"] == Status.CLOSED.value),
        (
            Selection(zone=("arrondissement", arrondissement)),
            reports["zone_arrondissement"] == arrondissement,
        ),
        (Selection(bbox=bbox), inside(reports)),
        (Selection(start=middle), reports["requested_at"] >= middle),
        (Selection(end=middle), reports["requested_at"] <= middle),
        (
            Selection(text=word.upper()),
            (
                reports["description"].fillna("")
                + " "
                + reports["address"].fillna("")
                + " "
                + reports["street_name"].fillna("")
            )
            .str.lower()
            .str.contains(word),
        ),
        (
            Selection(service_codes=(service,), bbox=bbox),
            (reports["service_code"] == service) & inside(reports),
        ),
        (Selection(service_codes=()), reports["report_id"] < 0),
        (Selection(ids=(2**63, -1, *some_reports)), reports["report_id"].isin(some_reports)),
    ]
    for selection, expected in report_cases:
        got = pipeline.reads.reports(selection)
        assert ids(got, "report_id") == ids(reports[expected], "report_id"), selection
        assert pipeline.reads.count("reports", selection) == int(expected.sum()), selection
    assert len(pipeline.reads.reports(Selection(text="50%_off\\"))) == 0

    incident_cases: list[tuple[Selection, pd.Series]] = [
        (Selection(teams=(team,)), incidents["team"] == team),
        (Selection(bbox=bbox), inside(incidents)),
        (
            Selection(zone=("arrondissement", arrondissement)),
            incidents["zone_arrondissement"] == arrondissement,
        ),
        (Selection(start=middle), incidents["last_reported_at"] >= middle),
        (Selection(end=middle), incidents["first_reported_at"] <= middle),
        (Selection(overdue_at=middle), incidents["due_at"] < middle),
    ]
    for selection, expected in incident_cases:
        got = pipeline.reads.incidents(selection)
        assert ids(got, "incident_id") == ids(incidents[expected], "incident_id"), selection
        assert pipeline.reads.count("incidents", selection) == int(expected.sum()), selection
        assert got["zone_arrondissement"].notna().all()


def test_pages_and_streaming_walk_the_whole_layer(pipeline: Pipeline) -> None:
    everything = ids(pipeline.reads.reports(), "report_id")
    assert len(everything) == 200
    page = pipeline.reads.reports(Selection(limit=30, offset=60))
    assert ids(page, "report_id") == everything[60:90]
    assert pipeline.reads.count("reports", Selection(limit=30, offset=60)) == 200
    assert ids(pipeline.reads.reports(Selection(offset=190)), "report_id") == everything[190:]
    chunks = list(pipeline.reads.iter_layer("reports", chunk_size=64))
    assert [len(c) for c in chunks] == [64, 64, 64, 8]
    assert [i for c in chunks for i in ids(c, "report_id")] == everything
    capped = list(
        pipeline.reads.iter_layer("reports", Selection(limit=100, offset=10), chunk_size=64)
    )
    assert [i for c in capped for i in ids(c, "report_id")] == everything[10:110]


def test_nearby_is_metric_and_sorted(pipeline: Pipeline) -> None:
    incidents = pipeline.reads.incidents()
    centre = incidents.iloc[0]
    found = pipeline.reads.nearby(float(centre["lon"]), float(centre["lat"]), 500.0)
    assert int(found["incident_id"].iloc[0]) == int(centre["incident_id"])
    assert found["distance_m"].iloc[0] == pytest.approx(0.0, abs=1e-6)
    assert found["distance_m"].is_monotonic_increasing
    assert (found["distance_m"] <= 500.0).all()
    # Every incident within 500 m in the metric CRS is found, no other.
    x, y = pipeline.gis.project(incidents["lon"].to_numpy(), incidents["lat"].to_numpy())
    cx, cy = pipeline.gis.project(np.array([centre["lon"]]), np.array([centre["lat"]]))
    expected = set(incidents["incident_id"][np.hypot(x - cx[0], y - cy[0]) <= 500.0])
    assert set(found["incident_id"]) == expected
    assert len(expected) > 1


def test_incident_updates_and_events(pipeline: Pipeline) -> None:
    j = pipeline.city.jurisdiction_id
    incident_id = int(pipeline.reads.incidents()["incident_id"].iloc[0])
    due = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    events = pipeline.store.count("events", j)
    with pipeline.store.transaction(j) as uow:
        before = uow.incidents.get(incident_id)
        assert before is not None
        assert uow.incidents.get(10**9) is None
        assert uow.incidents.get(2**64) is None  # no such id can exist: not sent to the database
        uow.incidents.update(incident_id, {"status": Status.IN_PROGRESS.value, "due_at": due})
        uow.events.append("incident", incident_id, EventKind.STATUS_CHANGED, "test", "started")
        after = uow.incidents.get(incident_id)
    assert after is not None
    assert pipeline.store.count("events", j) == events + 1
    assert after["status"] == Status.IN_PROGRESS.value
    assert pd.Timestamp(after["due_at"]) == pd.Timestamp(due)
    assert after["report_count"] == before["report_count"]
    stored = pipeline.reads.incidents(Selection(ids=(incident_id,)))
    assert stored["status"].tolist() == [Status.IN_PROGRESS.value]
    with pipeline.store.transaction(j) as uow:
        uow.incidents.update(incident_id, {"due_at": pd.NaT, "priority": np.int64(2)})
    cleared = pipeline.reads.incidents(Selection(ids=(incident_id,))).iloc[0]
    assert pd.isna(cleared["due_at"])
    assert cleared["priority"] == 2
    assert pipeline.reads.count("incidents", Selection(overdue_at=due - timedelta(days=1))) < len(
        pipeline.reads.incidents()
    )


def test_a_page_reads_its_zone_codes_in_the_same_statement(pipeline: Pipeline) -> None:
    """``page_rows``: the page as ``select`` reads it, then each row's code in each zone
    layer asked, in the order asked, as ``select_zones`` reads them (None where a row has
    no zone of a layer); without layers, the page alone."""
    store, city = pipeline.store, pipeline.city.jurisdiction_id
    layers = list(pipeline.gis.zones)
    cases: list[tuple[str, Selection]] = [
        ("incidents", Selection(limit=60)),
        ("incidents", Selection(sort="report_count", descending=True, limit=25)),
        ("reports", Selection(limit=60, offset=10)),
    ]
    found_codes = found_missing = 0
    for layer, selection in cases:
        assert layer in ("incidents", "reports")
        key = "incident_id" if layer == "incidents" else "report_id"
        rows = store.page_rows(layer, city, selection, [*reversed(layers)])
        assert [int(row[0]) for row in rows] == ids(store.select(layer, city, selection), key)
        zones = store.select_zones(layer, city, selection)
        codes = {(int(r), z): c for r, z, c in zones[["row_id", "layer", "code"]].itertuples(False)}
        width = len(layer_columns(layer))
        for row in rows:
            wanted = [codes.get((int(row[0]), name)) for name in reversed(layers)]
            assert list(row[width:]) == wanted
            found_codes += sum(code is not None for code in wanted)
            found_missing += sum(code is None for code in wanted)
        assert store.page_rows(layer, city, selection) == [row[:width] for row in rows]
    assert found_codes  # both kinds of answer were checked
    assert found_missing
