"""A worker's first public reads cost what the later ones do (issue 19).

At 1M incidents a worker's first burst of 16 reads took 7-16 s where later ones took 1 s:
work cached on first use was done by every request of the burst at once (the OGC
collections' extents, the Open311 default window's probes), and each new thread of the
server's pool built the city's projection again from its CRSs (30-80 ms per thread).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from open311_support import DATA

from voirie.api.app import create_app
from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.maps import ogc
from voirie.services.pipeline import Pipeline
from voirie.services.reads import Reads
from voirie.settings import CitySettings, StoreSettings
from voirie.store.base import Store

THREADS = 8


def _in_threads(work: Callable[[], object], n: int = THREADS) -> list[object]:
    """``work`` in ``n`` new threads started together; their answers."""
    barrier = threading.Barrier(n)
    answers: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        answers[i] = work()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_the_reads_project_as_the_city_does_and_cheaply_in_a_new_thread(
    store: Store, paris: City, paris_gis: CityGIS
) -> None:
    reads = Reads(paris, store, paris_gis)
    rng = np.random.default_rng(19)
    minx, miny, maxx, maxy = reads.territory_box
    lon = rng.uniform(minx - 0.05, maxx + 0.05, 5000)
    lat = rng.uniform(miny - 0.05, maxy + 0.05, 5000)
    want = paris_gis.project(lon, lat)
    for got in [reads.project(lon, lat), *_in_threads(lambda: reads.project(lon, lat))]:
        assert isinstance(got, tuple)
        assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
    assert reads.metric.project is reads.project
    # The reads' own transformer, made from the operation's PROJ pipeline, not the city's,
    # made from its two CRSs, which each new thread looks up again in PROJ's database
    # (30-80 ms a thread: bench/RESULTS.md, issue 19's fourth pass).
    assert reads.project is not paris_gis.project


def test_a_burst_of_first_open311_reads_finds_the_default_window_once(
    store: Store, paris: City, paris_gis: CityGIS
) -> None:
    pipeline = Pipeline(paris, store, paris_gis)
    pipeline.imports.import_table(read_csv(DATA), DANSMARUE)
    mark = pipeline.reads.change_mark()

    def probes(reads: Reads) -> list[datetime]:
        """Count the store probes of ``reads``' window, still asking the store."""
        asked: list[datetime] = []
        probe = reads.newest_request_before

        def counted(before: datetime) -> datetime | None:
            asked.append(before)
            return probe(before)

        reads.newest_request_before = counted  # type: ignore[method-assign]
        return asked

    alone = Reads(paris, store, paris_gis)
    asked_alone = probes(alone)
    want = alone.recent_requests_start(90, mark)
    assert want is not None
    assert len(asked_alone) > 1

    asked = probes(pipeline.reads)
    answers = _in_threads(lambda: pipeline.reads.recent_requests_start(90, mark))
    assert answers == [want] * THREADS
    assert len(asked) == len(asked_alone)  # one computation, not one per thread


def test_the_ogc_collections_are_ready_before_the_first_request(
    tmp_path: Path, paris_gis: CityGIS
) -> None:
    url = f"sqlite:///{tmp_path / 'voirie.gpkg'}"
    app = create_app(StoreSettings(database_url=url), CitySettings(city="paris"), gis=paris_gis)
    with TestClient(app) as client:
        collections, crs = ogc.collections.cache_info(), ogc.supported_crs.cache_info()
        lambert = "http://www.opengis.net/def/crs/EPSG/0/2154"
        answer = client.get(f"/ogc/collections/incidents/items?crs={lambert}")
        assert answer.status_code == 200
        # Both found in the caches the app's start filled: nothing computed for a request.
        assert ogc.collections.cache_info().misses == collections.misses
        assert ogc.collections.cache_info().hits > collections.hits
        assert ogc.supported_crs.cache_info().misses == crs.misses
        assert ogc.supported_crs.cache_info().hits > crs.hits
