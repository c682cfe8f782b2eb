"""``InFlight.of``: the incidents of a written, uncommitted batch as the next batch's
reads will see them once it commits (issue 14 item 2).

What must hold, per incident the batch opened or joined: the latest and the earliest of
its reports in the batch, whichever report opened it; a stored incident's last report
moved forward and its first moved back only by later or earlier reports; an opened one
placed at its opening report, status new, with metric coordinates and service labels;
the candidate frame's columns and dtypes, so that it merges with the stored candidates.
The end-to-end equality with the serial import is ``test_import_inflight.py``.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from datafiles import SAMPLE_200

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.model import Status
from voirie.services import imports
from voirie.services.inflight import InFlight
from voirie.services.pipeline import Pipeline
from voirie.services.writer import Written
from voirie.store.base import Store

DAY, HOUR = timedelta(days=1), timedelta(hours=1)


@pytest.fixture
def read_batch(
    store: Store, paris: City, paris_gis: CityGIS
) -> tuple[Pipeline, pd.DataFrame, pd.DataFrame]:
    """The 200 real reports of ``tests/data`` prepared as the import prepares a batch,
    then imported; and the batch's candidates read from the store they went into."""
    pipeline = Pipeline(paris, store, paris_gis)
    table = read_csv(SAMPLE_200)
    batch, _ = pipeline.imports._prepare(
        table, DANSMARUE, imports._Repeats("external_id"), imports.ImportSummary()
    )
    pipeline.imports.import_table(table, DANSMARUE)
    with store.transaction(paris.jurisdiction_id) as uow:
        candidates = pipeline.attacher.batch_candidates(uow, batch)
    assert len(candidates) > 1
    return pipeline, batch.reset_index(drop=True), candidates


def test_the_incidents_a_batch_opened_and_joined_as_they_will_be_read(
    read_batch: tuple[Pipeline, pd.DataFrame, pd.DataFrame],
) -> None:
    pipeline, batch, candidates = read_batch
    stored = candidates.iloc[0]
    joined, opened = int(stored["incident_id"]), int(candidates["incident_id"].max()) + 1_000
    # Two reports join a stored incident, one before its first report and one after its
    # last; two open a new one, its opener not the latest of the two.
    reports = batch.iloc[:4].copy()
    t = reports["requested_at"].iloc[2]
    reports["requested_at"] = [
        stored["first_reported_at"] - DAY,
        stored["last_reported_at"] + DAY,
        t,
        t - HOUR,
    ]
    written = Written(
        incident_id=np.array([joined, joined, opened, opened], dtype=np.int64),
        opened=np.array([False, False, True, False]),
        attached_stored=np.array([True, True, False, False]),
        new_ids=np.array([opened], dtype=np.int64),
    )

    flight = InFlight.of(pipeline.attacher, reports, candidates, written).incidents

    assert list(flight.columns) == list(candidates.columns)
    assert flight.dtypes.to_dict() == candidates.dtypes.to_dict()
    assert [int(i) for i in flight["incident_id"]] == [joined, opened]
    moved, new = flight.iloc[0], flight.iloc[1]
    assert moved["last_reported_at"] == stored["last_reported_at"] + DAY
    assert moved["first_reported_at"] == stored["first_reported_at"] - DAY
    unchanged = [c for c in candidates.columns if not c.endswith("_reported_at")]
    assert moved[unchanged].tolist() == stored[unchanged].tolist()
    opener = reports.iloc[2]
    assert (new["last_reported_at"], new["first_reported_at"]) == (t, t - HOUR)
    assert new["status"] == Status.NEW.value
    place = ["lon", "lat", "service_code", "segment_id", "street_name"]
    assert new[place].tolist() == opener[place].tolist()
    x, y = pipeline.gis.project(np.array([opener["lon"]]), np.array([opener["lat"]]))
    assert (new["x"], new["y"]) == (x[0], y[0])
    group, match = pipeline.policy.labels(np.array([opener["service_code"]], dtype=object))
    assert (new["group"], new["match"]) == (group[0], match[0])


def test_a_stored_incident_keeps_the_times_the_batch_does_not_move(
    read_batch: tuple[Pipeline, pd.DataFrame, pd.DataFrame],
) -> None:
    pipeline, batch, candidates = read_batch
    stored = candidates.iloc[0]
    reports = batch.iloc[:1].copy()
    # Between its first and its last report: neither moves.
    reports["requested_at"] = [stored["first_reported_at"]]
    written = Written(
        incident_id=np.array([int(stored["incident_id"])], dtype=np.int64),
        opened=np.array([False]),
        attached_stored=np.array([True]),
        new_ids=np.zeros(0, dtype=np.int64),
    )

    flight = InFlight.of(pipeline.attacher, reports, candidates, written).incidents

    assert flight.dtypes.to_dict() == candidates.dtypes.to_dict()
    assert len(flight) == 1
    assert flight.iloc[0].tolist() == stored.tolist()
