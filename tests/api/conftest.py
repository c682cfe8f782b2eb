"""Fixtures shared by the API tests: one live ``voirie serve`` per test module and backend
for outside clients (GDAL, QGIS), one in-process app per module and backend for the
staff tests (``world``), one test client per module and backend (``client``), all over
the 200 real Paris reports; and the app of the Open311 tests (``served``, ``city_served``:
``open311_support.serve``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from databases import BACKENDS
from fastapi.testclient import TestClient
from liveserver import LiveServer, loaded_store, sample_client, serving
from open311_support import Served, serve
from staffworld import StaffWorld, module_world

from voirie.city import City
from voirie.gis.enrich import CityGIS

EMPTY_STORE = "empty_store"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{EMPTY_STORE}: ``served`` without the sample reports (tests/api/conftest.py)"
    )


@pytest.fixture
def served(
    request: pytest.FixtureRequest,
    store_url: str,
    paris: City,
    paris_gis: CityGIS,
    tmp_path: Path,
) -> Iterator[Served]:
    """The app on a store of each backend (``open311_support.SQLITE_ONLY``: sqlite) for
    this test, holding the 200 sample reports; an empty store for a test or module marked
    ``empty_store`` (every report in it posted by the test)."""
    empty = request.node.get_closest_marker(EMPTY_STORE) is not None
    app = serve(store_url, paris, paris_gis, tmp_path / "media", load=not empty)
    yield app
    app.store.close()


@pytest.fixture(scope="module")
def city_served(
    tmp_path_factory: pytest.TempPathFactory, paris: City, paris_gis: CityGIS
) -> Iterator[Served]:
    """The app on an empty sqlite store, one for the module's tests: for tests reading
    only the city's own data (services, the OpenAPI document), which no backend changes."""
    folder = tmp_path_factory.mktemp("city-served")
    app = serve(f"sqlite:///{folder / 'v.gpkg'}", paris, paris_gis, folder / "media", load=False)
    yield app
    app.store.close()


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    paris: City,
    paris_gis: CityGIS,
) -> Iterator[LiveServer]:
    """A live server on a store of the 200 sample reports, for the module's tests."""
    folder = tmp_path_factory.mktemp("live")
    with loaded_store(request, folder, paris, paris_gis) as url, serving(url, folder) as live:
        yield live


@pytest.fixture(scope="module", params=BACKENDS)
def client(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    paris: City,
    paris_gis: CityGIS,
) -> Iterator[TestClient]:
    """A test client of the app on a store of each backend holding the 200 sample
    reports, one for the module's tests."""
    yield from sample_client(request, tmp_path_factory.mktemp("client"), paris, paris_gis)


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    paris: City,
    paris_gis: CityGIS,
) -> Iterator[StaffWorld]:
    """One app per backend for the module's tests, with a token per role (a module adds
    what it needs by overriding ``world`` with a fixture that asks for this one)."""
    yield from module_world(request, tmp_path_factory, paris, paris_gis)
