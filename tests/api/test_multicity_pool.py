"""A multi-city server opens its one store's whole pool at start, as a one-city server does
(``PostgisStore.fill_pool``): the factory's apps, of several cities or of one, start full;
an app built without ``full_pool`` (tests, the CLI's one-off commands) opens the minimum."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from voirie.api.multicity import MultiCity, app_from_env
from voirie.cityset import load_sites
from voirie.gis.enrich import CityGIS
from voirie.settings import StoreSettings
from voirie.store import Store
from voirie.store.postgis import PostgisStore


def _pool_size(store: Store) -> int:
    assert isinstance(store, PostgisStore)
    return int(store.pool.get_stats()["pool_size"])


@pytest.mark.parametrize("full_pool", [True, False])
def test_a_multicity_server_starts_with_its_pool_full(
    postgis_url: str, paris_gis: CityGIS, full_pool: bool
) -> None:
    settings = StoreSettings(database_url=postgis_url, pool_min_size=1, pool_max_size=3)
    sites = load_sites("paris,chicago")
    # Chicago's indexes are not needed to start: built on first use, never here.
    app = MultiCity(settings, sites, gis={"paris": paris_gis}, full_pool=full_pool)
    with TestClient(app):
        assert _pool_size(app.store()) == (3 if full_pool else 1)


def test_the_factory_starts_every_server_with_its_pool_full(
    postgis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``uvicorn voirie.api.multicity:app_from_env --factory``, with several cities and
    with one."""
    monkeypatch.setenv("VOIRIE_DATABASE_URL", postgis_url)
    monkeypatch.setenv("VOIRIE_POOL_MAX_SIZE", "3")
    monkeypatch.setenv("VOIRIE_CITIES", "paris,chicago")
    several = app_from_env()
    assert isinstance(several, MultiCity)
    with TestClient(several):
        assert _pool_size(several.store()) == 3
    monkeypatch.setenv("VOIRIE_CITIES", "chicago")
    one = app_from_env()
    assert isinstance(one, FastAPI)
    with TestClient(one):
        assert _pool_size(one.state.pipeline.store) == 3
