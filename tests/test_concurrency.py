"""Reports of one problem arriving at once from separate processes end in one incident.

Eight writer processes, each with its own Pipeline and store (as API workers have), wait
at a barrier and submit a report of the same problem (same service, a few metres apart)
at the same instant; three rounds, one problem per round. On PostGIS the writers
serialize on the advisory locks of the service; on sqlite on the database's write lock,
waiting rather than failing: any error reaching a writer fails the test.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import pandas as pd

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.model import Report
from voirie.services.pipeline import Pipeline
from voirie.settings import StoreSettings
from voirie.store import open_store

WRITERS = 8
ROUNDS = 3
SERVICE = "Autres objets encombrants abandonnés"
# Boulevard de Bonne-Nouvelle (2e); each round's problem is 300 m further east.
LON, LAT = 2.34858, 48.87053
M_PER_DEG_LON = 73_300.0
START = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)
BARRIER_TIMEOUT_S = 120.0
JOIN_TIMEOUT_S = 600.0


def _writer(
    url: str,
    city: City,
    gis: CityGIS,
    index: int,
    barrier: Barrier,
    results: Queue[tuple[int, int, int | None, str | None]],
) -> None:
    """One API worker: its own store and pipeline; one report per round, at the barrier."""
    store = open_store(StoreSettings(database_url=url, pool_min_size=1, pool_max_size=2))
    try:
        pipeline = Pipeline(city, store, gis)
        code = city.services_by_name[SERVICE.casefold()].code
        for round_ in range(ROUNDS):
            report = Report(
                external_id=f"r{round_}-w{index}",
                source="app",
                service_code=code,
                lon=LON + (300 * round_ + index) / M_PER_DEG_LON,
                lat=LAT,
                requested_at=START + timedelta(days=round_, seconds=index),
            )
            barrier.wait(BARRIER_TIMEOUT_S)
            try:
                results.put((round_, index, pipeline.intake.submit(report).incident_id, None))
            except Exception:  # any error reaching a writer is the failure
                results.put((round_, index, None, traceback.format_exc()))
    finally:
        store.close()


def test_concurrent_writers_of_one_problem_make_one_incident(
    store_url: str, paris: City, paris_gis: CityGIS
) -> None:
    # The writers upgrade nothing: the store is brought up to date before they start.
    setup = open_store(StoreSettings(database_url=store_url, pool_min_size=1, pool_max_size=2))
    setup.upgrade()
    Pipeline(paris, setup, paris_gis)  # records the routing rules once, before the race
    setup.close()
    # Forked writers share the parent's loaded city and GIS indexes (no thread runs here).
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(WRITERS)
    results: Queue[tuple[int, int, int | None, str | None]] = ctx.Queue()
    writers = [
        ctx.Process(target=_writer, args=(store_url, paris, paris_gis, i, barrier, results))
        for i in range(WRITERS)
    ]
    for process in writers:
        process.start()
    rows = [results.get(timeout=JOIN_TIMEOUT_S) for _ in range(WRITERS * ROUNDS)]
    for process in writers:
        process.join(JOIN_TIMEOUT_S)
    assert all(process.exitcode == 0 for process in writers)
    outcome = pd.DataFrame(rows, columns=["round", "writer", "incident_id", "error"])
    errors = outcome["error"].dropna().tolist()
    assert not errors, errors[0]
    per_round = outcome.groupby("round")["incident_id"].nunique()
    assert per_round.tolist() == [1] * ROUNDS, outcome.sort_values(["round", "writer"])
    check = open_store(StoreSettings(database_url=store_url, pool_min_size=1, pool_max_size=1))
    try:
        incidents = check.read("incidents", paris.jurisdiction_id)
    finally:
        check.close()
    assert len(incidents) == ROUNDS
    assert incidents["report_count"].tolist() == [WRITERS] * ROUNDS
