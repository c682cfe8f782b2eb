"""Deduplication along streets in Chicago (no street layer: a report's street is the one
its address names), on real requests of 2021-01-01, through both the bulk import and the
per-report path, and incidents that stop attracting reports once resolved."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from voirie.city import City, load_city
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import OPEN311
from voirie.ingest.sources import read_open311_json
from voirie.model import Report, Status
from voirie.services import workflow
from voirie.services.auth import Principal, Role
from voirie.services.pipeline import Pipeline
from voirie.store.base import Store

CHICAGO = Path(__file__).parents[1] / "cities/chicago"
# Every street-scale request of 2021-01-01 (SDO, SWSNOREM, SDW, SDP: 178), made by
# scripts/chicago_to_open311.py from the day's rows of these services.
STREET_SCALE = Path(__file__).parent / "data/chicago_street_scale.json"
DISPATCHER = Principal("Dana (dispatch)", Role.DISPATCHER)
# Two real "Ice and Snow Removal Request" (SDO) of 2021-01-01, labelled duplicates by the
# City (SR21-00000247's parent is SR21-00000245): 198 m apart along S Sangamon St.
PARENT = ("SR21-00000245", 41.73953004297263, -87.64765124130571, "8500 S SANGAMON ST")
CHILD = ("SR21-00000247", 41.73775683435168, -87.64735687607096, "8600 S SANGAMON ST")
AT = datetime.fromisoformat("2021-01-01T02:31:26-06:00")
SNOW = "SDO"


@pytest.fixture(scope="module")
def chicago() -> City:
    return load_city(CHICAGO)


@pytest.fixture(scope="module")
def chicago_gis(chicago: City) -> CityGIS:
    return CityGIS(chicago)


@pytest.fixture
def pipeline(store: Store, chicago: City, chicago_gis: CityGIS) -> Pipeline:
    return Pipeline(chicago, store, chicago_gis)


def _report(
    which: tuple[str, float, float, str],
    minutes: float,
    *,
    address: str | None = None,
    lat: float | None = None,
    code: str = SNOW,
) -> Report:
    external_id, real_lat, lon, real_address = which
    return Report(
        external_id=f"{external_id}-{minutes:g}-{address or ''}",
        source="open311",
        service_code=code,
        lon=lon,
        lat=real_lat if lat is None else lat,
        requested_at=AT + timedelta(minutes=minutes),
        address=real_address if address is None else address,
    )


def _import(pipeline: Pipeline, reports: list[Report], folder: Path) -> list[int]:
    """Import the reports as an Open311 JSON file; the incident of each."""
    path = folder / "requests.json"
    requests = [
        {
            "service_request_id": r.external_id,
            "service_code": r.service_code,
            "requested_datetime": r.requested_at.isoformat(),
            "lat": r.lat,
            "long": r.lon,
            "address": r.address,
        }
        for r in reports
    ]
    path.write_text(json.dumps(requests), encoding="utf-8")
    pipeline.imports.import_table(read_open311_json(path), OPEN311)
    layer = pipeline.reads.reports().set_index("external_id")
    return [int(layer.at[r.external_id, "incident_id"]) for r in reports]


def _incidents(pipeline: Pipeline, reports: list[Report], bulk: bool, folder: Path) -> list[int]:
    """The incident of each report, arriving in one import or one by one."""
    if bulk:
        return _import(pipeline, reports, folder)
    return [pipeline.intake.submit(r).incident_id for r in reports]


def test_a_report_without_street_layer_takes_the_street_of_its_address(
    chicago_gis: CityGIS,
) -> None:
    _, lat, lon, address = CHILD
    assert chicago_gis.enrich_one(lon, lat, address)["street_name"] == "south sangamon street"
    assert chicago_gis.enrich_one(lon, lat, None)["street_name"] is None


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "one-by-one"])
def test_street_scale_reports_join_along_their_street_not_across(
    pipeline: Pipeline, bulk: bool, tmp_path: Path
) -> None:
    # 150 m south of the parent along S Sangamon St (a north-south street): the same
    # street joins; the same point with an address on a cross street does not.
    south = PARENT[1] - 150 / 111_000
    reports = [
        _report(PARENT, 0),
        _report(PARENT, 1, lat=south, address="8550 S SANGAMON ST"),
        _report(PARENT, 2, lat=south, address="900 W 85TH PL"),
    ]
    first, along, across = _incidents(pipeline, reports, bulk, tmp_path)
    assert along == first
    assert across != first


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "one-by-one"])
def test_the_citys_labelled_street_pair_ends_in_one_incident(
    pipeline: Pipeline, bulk: bool, tmp_path: Path
) -> None:
    pair = [_report(PARENT, 0), _report(CHILD, 0.4)]
    first, second = _incidents(pipeline, pair, bulk, tmp_path)
    assert first == second
    # A service that is not street-scale keeps the plain radius on the same street.
    graffiti = [_report(PARENT, 1, code="GRAF"), _report(CHILD, 1.4, code="GRAF")]
    one, two = _incidents(pipeline, graffiti, bulk, tmp_path)
    assert one != two


@pytest.mark.parametrize("final", [Status.RESOLVED, Status.CLOSED])
def test_a_resolved_incident_attracts_no_new_report(
    pipeline: Pipeline, final: Status, tmp_path: Path
) -> None:
    opened = pipeline.intake.submit(_report(PARENT, 0)).incident_id
    # While it is open, it keeps attracting reports: each one renews its window.
    for hours in (24, 48, 72):
        assert pipeline.intake.submit(_report(PARENT, 60 * hours)).incident_id == opened
    for status in (Status.RESOLVED, Status.CLOSED)[: 1 + (final == Status.CLOSED)]:
        workflow.change_status(
            pipeline.store, pipeline.city, opened, DISPATCHER, status, "cleared", at=AT
        )
    # The very next minute, at the same point: a new incident, on both paths.
    again = pipeline.intake.submit(_report(PARENT, 60 * 72 + 1)).incident_id
    assert again != opened
    (bulk,) = _import(pipeline, [_report(CHILD, 60 * 72 + 2)], tmp_path)
    assert bulk not in (opened,)


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "one-by-one"])
def test_an_incident_in_hand_keeps_attracting_beyond_the_window(
    pipeline: Pipeline, bulk: bool, tmp_path: Path
) -> None:
    window = pipeline.city.dedupe(SNOW).window_days
    late = 60 * 24 * (window + 2)
    waiting = pipeline.intake.submit(_report(PARENT, 0)).incident_id
    # Another snow service, so that the two incidents stay apart.
    taken = pipeline.intake.submit(_report(CHILD, 0, code="SDW")).incident_id
    workflow.change_status(
        pipeline.store, pipeline.city, taken, DISPATCHER, Status.ACKNOWLEDGED, at=AT
    )
    # Two days past the window: the incident nobody took in hand no longer attracts; the
    # acknowledged one, still open, does.
    again = _incidents(
        pipeline,
        [
            _report(PARENT, late, address="8501 S SANGAMON ST"),
            _report(CHILD, late, code="SDW"),
        ],
        bulk,
        tmp_path,
    )
    assert again[0] != waiting
    assert again[1] == taken


def test_the_days_street_scale_requests_group_alike_in_bulk_and_one_by_one(
    two_stores: tuple[Store, Store], chicago: City, chicago_gis: CityGIS
) -> None:
    bulk_pipe, one_pipe = (Pipeline(chicago, s, chicago_gis) for s in two_stores)
    bulk_pipe.imports.import_table(read_open311_json(STREET_SCALE), OPEN311)
    requests = json.loads(STREET_SCALE.read_text(encoding="utf-8"))
    arrivals = sorted(
        (r for r in requests if r["lat"] is not None),
        key=lambda r: datetime.fromisoformat(r["requested_datetime"]),
    )
    for r in arrivals:
        one_pipe.intake.submit(
            Report(
                external_id=r["service_request_id"],
                source="open311",
                service_code=r["service_code"],
                lon=r["long"],
                lat=r["lat"],
                requested_at=datetime.fromisoformat(r["requested_datetime"]),
                address=r["address"],
            )
        )

    def groups(pipeline: Pipeline) -> set[frozenset[str]]:
        layer = pipeline.reads.reports()
        return {frozenset(g) for _, g in layer.groupby("incident_id")["external_id"]}

    bulk = groups(bulk_pipe)
    assert bulk == groups(one_pipe)
    assert any({PARENT[0], CHILD[0]} <= g for g in bulk)  # the City's labelled pair
    layer = bulk_pipe.reads.reports()
    assert layer["street_name"].notna().all()
