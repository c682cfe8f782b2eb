"""Fixtures shared by the API tests: one live ``voirie serve`` per test module and backend
for outside clients (GDAL, QGIS), and one in-process app per module and backend for the
staff tests (``world``), both over the 200 real Paris reports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from databases import BACKENDS
from liveserver import LiveServer, loaded_store, serving
from staffworld import StaffWorld, module_world

from voirie.city import City
from voirie.gis.enrich import CityGIS


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
def world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    paris: City,
    paris_gis: CityGIS,
) -> Iterator[StaffWorld]:
    """One app per backend for the module's tests, with a token per role (a module adds
    what it needs by overriding ``world`` with a fixture that asks for this one)."""
    yield from module_world(request, tmp_path_factory, paris, paris_gis)
