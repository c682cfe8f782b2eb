"""``Incidents.open_near`` on both backends: the open incidents ``open_in_bbox`` gives for
the bbox around the point, as arrays ordered by id, and every one within reach.

The expected incidents come from the stored incidents layer filtered here (status,
services, time, bbox), the same expectation for every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.gis.metric import bbox_around
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.model import OPEN_STATUSES, Status
from voirie.services.pipeline import Pipeline
from voirie.store import Store
from voirie.store.candidates import OpenIncidents

SAMPLE = Path(__file__).parents[1] / "data" / "dansmarue_200.csv"
OPEN = {s.value for s in OPEN_STATUSES}


@pytest.fixture
def layer(store: Store, paris: City, paris_gis: CityGIS) -> pd.DataFrame:
    """The sample imported, one incident in five closed; the incidents layer, by id."""
    pipeline = Pipeline(paris, store, paris_gis)
    assert pipeline.imports.import_table(read_csv(SAMPLE), DANSMARUE).imported == 200
    incidents = store.read("incidents", paris.jurisdiction_id).sort_values("incident_id")
    with store.transaction(paris.jurisdiction_id) as uow:
        for incident_id in incidents["incident_id"].iloc[::5]:
            uow.incidents.update(int(incident_id), {"status": Status.CLOSED.value})
    return store.read("incidents", paris.jurisdiction_id).sort_values(
        "incident_id", ignore_index=True
    )


def _text(values: np.ndarray) -> list[object]:
    return [None if pd.isna(v) else v for v in values]


def _assert_same(near: OpenIncidents, frame: pd.DataFrame) -> None:
    """The arrays hold the frame's rows, in its order, with the same values."""
    assert near.incident_id.dtype == np.int64
    assert near.incident_id.tolist() == frame["incident_id"].tolist()
    assert near.lon.tolist() == frame["lon"].tolist()
    assert near.lat.tolist() == frame["lat"].tolist()
    assert near.service_code.tolist() == frame["service_code"].tolist()
    assert _text(near.segment_id) == _text(frame["segment_id"].to_numpy(object))
    assert _text(near.street_name) == _text(frame["street_name"].to_numpy(object))
    stamps = frame["last_reported_at"].dt.tz_convert(None).to_numpy("datetime64[ns]")
    assert near.last_reported_at.dtype == np.dtype("datetime64[ns]")
    assert (near.last_reported_at == stamps).all()


def test_open_near_gives_the_open_incidents_around_a_point(
    store: Store, layer: pd.DataFrame, paris: City, paris_gis: CityGIS
) -> None:
    x, y = paris_gis.project(layer["lon"].to_numpy(), layer["lat"].to_numpy())
    codes = sorted(set(layer["service_code"]))
    found = closed_left_out = 0
    with store.transaction(paris.jurisdiction_id) as uow:
        for k in range(0, len(layer), 3):
            center = layer.iloc[k]
            lon, lat = float(center["lon"]) + 1e-4, float(center["lat"])  # ~7 m east
            last = center["last_reported_at"].to_pydatetime()
            for reach, services, since in (
                (15.0, codes, datetime(2020, 1, 1, tzinfo=UTC)),
                (120.0, [str(center["service_code"])], last - timedelta(days=3)),
                (600.0, codes[::2], last),
            ):
                near = uow.incidents.open_near(lon, lat, reach, services, since)
                west, south, east, north = bbox_around(lon, lat, reach)
                keep = (
                    layer["status"].isin(OPEN)
                    & layer["service_code"].isin(services)
                    & (layer["last_reported_at"] >= since)
                    & layer["lon"].between(west, east)
                    & layer["lat"].between(south, north)
                )
                _assert_same(near, layer[keep])
                bulk = uow.incidents.open_in_bbox((west, south, east, north), services, since)
                _assert_same(near, bulk.sort_values("incident_id", ignore_index=True))
                # Every incident within reach is there: the bbox margin is generous.
                px, py = paris_gis.project(np.array([lon]), np.array([lat]))
                within = np.hypot(x - px[0], y - py[0]) <= reach
                reachable = (
                    keep.to_numpy()
                    | ~(
                        layer["status"].isin(OPEN)
                        & layer["service_code"].isin(services)
                        & (layer["last_reported_at"] >= since)
                    ).to_numpy()
                )
                assert reachable[within].all()
                found += len(near)
                closed_left_out += int((within & (layer["status"] == Status.CLOSED)).sum())
    assert found > 100
    assert closed_left_out > 0  # the status filter was put to the test


def test_open_near_with_nothing_around_gives_empty_arrays(
    store: Store, layer: pd.DataFrame, paris: City
) -> None:
    with store.transaction(paris.jurisdiction_id) as uow:
        near = uow.incidents.open_near(
            2.35, 48.85, 30.0, ["no-such-service"], datetime(2020, 1, 1, tzinfo=UTC)
        )
    assert len(near) == 0
    _assert_same(near, layer.iloc[:0])
