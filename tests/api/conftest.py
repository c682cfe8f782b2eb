"""Fixtures shared by the API tests that drive a real ``voirie serve`` with outside clients
(GDAL, QGIS): one live server per test module and backend, over the 200 real Paris reports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from databases import BACKENDS
from liveserver import LiveServer, loaded_store, serving

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
