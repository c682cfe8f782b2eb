"""Shared fixtures: the Paris city and its GIS, and stores of every backend.

PostGIS databases (the server, the migrated template, scratch clones; skipped without a
server, failed instead in CI) come from ``databases.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from databases import BACKENDS, prepare_server, scratch_database
from datafiles import PARIS_REPORTS, SAMPLE_200

from voirie.city import City, load_city
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.services.pipeline import Pipeline
from voirie.settings import StoreSettings
from voirie.store import Store, open_store


@pytest.fixture(scope="session")
def postgis_server() -> str:
    """URL of a PostgreSQL server with PostGIS, where the test template is current."""
    return prepare_server()


@pytest.fixture
def postgis_url(postgis_server: str) -> Iterator[str]:
    """A fresh database with PostGIS and the current schema, for this test only."""
    yield from scratch_database(postgis_server)


@pytest.fixture
def empty_postgis_url(postgis_server: str) -> Iterator[str]:
    """A fresh empty database (no extension, no schema), for this test only."""
    yield from scratch_database(postgis_server, None)


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """``VOIRIE_DATABASE_URL`` of the store of each backend (``store`` upgrades it)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'voirie.gpkg'}"
    return str(request.getfixturevalue("postgis_url"))


@pytest.fixture(params=BACKENDS)
def empty_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """``VOIRIE_DATABASE_URL`` of a store of each backend that was never upgraded."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.gpkg'}"
    return str(request.getfixturevalue("empty_postgis_url"))


def _connect(url: str) -> Store:
    """A store for a URL, through the same factory the CLI and the API use."""
    return open_store(StoreSettings(database_url=url, pool_min_size=1, pool_max_size=4))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An upgraded store of each backend (``[sqlite]`` and ``[postgis]``), closed afterwards."""
    opened = _connect(store_url)
    opened.upgrade()
    yield opened
    opened.close()


@pytest.fixture(params=BACKENDS)
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Two fresh upgraded stores of one backend (the same ids will be reserved in both)."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            urls = [f"sqlite:///{tmp_path / f'{name}.gpkg'}" for name in ("a", "b")]
        else:
            server = request.getfixturevalue("postgis_server")
            urls = [stack.enter_context(contextmanager(scratch_database)(server)) for _ in range(2)]
        stores = [
            open_store(StoreSettings(database_url=u, pool_min_size=1, pool_max_size=2))
            for u in urls
        ]
        for opened in stores:
            stack.callback(opened.close)
            opened.upgrade()
        yield stores[0], stores[1]


@pytest.fixture(scope="session")
def paris() -> City:
    """The reference city, from its folder in ``cities/``."""
    return load_city("paris")


@pytest.fixture(scope="session")
def paris_gis(paris: City) -> CityGIS:
    """Paris's reference layers with their indexes (about 2 s to build: built once)."""
    return CityGIS(paris)


@pytest.fixture(scope="session")
def paris_report_points(paris_gis: CityGIS) -> tuple[np.ndarray, np.ndarray]:
    """Metric x/y of every bundled Paris report that has coordinates."""
    raw = read_csv(PARIS_REPORTS).rows
    lon = pd.to_numeric(raw["longitude"], errors="coerce").to_numpy()
    lat = pd.to_numeric(raw["latitude"], errors="coerce").to_numpy()
    keep = np.isfinite(lon) & np.isfinite(lat)
    return paris_gis.project(lon[keep], lat[keep])


@pytest.fixture(name="pipeline")
def sample_pipeline(store: Store, paris: City, paris_gis: CityGIS) -> Pipeline:
    """The 200 real DansMaRue reports of ``tests/data`` imported into a store of each
    backend (a test module needing another pipeline defines its own ``pipeline``)."""
    loaded = Pipeline(paris, store, paris_gis)
    loaded.imports.import_table(read_csv(SAMPLE_200), DANSMARUE)
    return loaded
