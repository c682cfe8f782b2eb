"""Chicago: a second city with no street layer, its history imported as Open311 JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voirie.city import City, load_city
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import OPEN311
from voirie.ingest.sources import read_open311_json
from voirie.services.pipeline import Pipeline
from voirie.store.sqlite import SqliteStore

ROOT = Path(__file__).parents[1]
CHICAGO = ROOT / "cities/chicago"
# 100 real 2021-01-01 requests, made by scripts/chicago_to_open311.py --rows 100 --seed 0.
FIXTURE = Path(__file__).parent / "data/chicago_100.json"


@pytest.fixture(scope="module")
def chicago() -> City:
    return load_city(CHICAGO)


@pytest.fixture(scope="module")
def chicago_gis(chicago: City) -> CityGIS:
    return CityGIS(chicago)


def test_the_chicago_folder_loads(chicago: City) -> None:
    assert chicago.jurisdiction_id == "chicago.gov"
    assert chicago.metric_crs == "EPSG:26971"
    assert chicago.config.timezone == "America/Chicago"
    assert chicago.config.streets is None
    assert [z.name for z in chicago.config.zones] == ["community_area"]
    assert chicago.services["311IOC"].name == "311 INFORMATION ONLY CALL"
    assert chicago.services["SFD"].group == "lights-signals"
    rules = {r.service: r.team for r in chicago.config.routing.rules}
    assert rules["GRAF"] == "Streets and Sanitation"
    assert set(rules) == set(chicago.services)


def test_open311_history_imports_without_streets(
    tmp_path: Path, chicago: City, chicago_gis: CityGIS
) -> None:
    requests = json.loads(FIXTURE.read_text(encoding="utf-8"))
    no_xy = {r["service_request_id"] for r in requests if r["lat"] is None}
    assert len(requests) == 100
    assert no_xy  # the fixture keeps the day's row without coordinates
    store = SqliteStore(tmp_path / "chicago.gpkg")
    store.upgrade()
    try:
        pipeline = Pipeline(chicago, store, chicago_gis)
        summary = pipeline.imports.import_table(read_open311_json(FIXTURE), OPEN311)
        assert summary.read == 100
        assert summary.imported + summary.quarantined == summary.read
        quarantine = summary.quarantine.set_index("external_id")
        assert no_xy <= set(quarantine.index)
        assert (quarantine.loc[sorted(no_xy), "field"] == "lat").all()
        assert (quarantine.loc[sorted(no_xy), "reason"] == "missing").all()

        layer = pipeline.reads.reports()
        assert len(layer) == summary.imported
        assert layer["zone_community_area"].notna().all()
        assert layer["zone_community_area"].astype(int).between(1, 77).all()
        assert layer["segment_id"].isna().all()
        assert not layer["off_network"].astype(bool).any()
        assert layer["incident_id"].notna().all()
        departments = {t.code for t in chicago.config.teams}
        assert set(layer["team"]) <= departments
        # The offset in requested_datetime is kept: 00:09:47 CST is 06:09:47 UTC.
        first = layer.set_index("external_id").loc["SR21-00000026", "requested_at"]
        assert str(first).startswith("2021-01-01")
        again = pipeline.imports.import_table(read_open311_json(FIXTURE), OPEN311)
        assert again.imported == 0
        assert again.already_imported == summary.imported
    finally:
        store.close()
