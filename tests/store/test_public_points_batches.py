"""A city's public points are recomputed in statements of ``WRITE_BATCH_ROWS`` rows
(``voirie.store.public_points``), each within the statement timeout whatever the city's
size, and a row already at its public point is not written again.

At 1M incidents one UPDATE of every blurred row took longer than the 60 s statement
timeout, and the server started without its public points. Here the same happens to a
store of 20,000 incidents: the statement timeout is made tiny for the store that
places them, and the batches small, instead of the store big.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.api.test_blur_everywhere import blurring_paris
from voirie.city import City
from voirie.gis.blur import Blur
from voirie.gis.enrich import CityGIS
from voirie.model import Report
from voirie.services.pipeline import Pipeline
from voirie.settings import StoreSettings
from voirie.store import Store, open_store, public_points
from voirie.store.public_points import Placement

J = "paris.fr"
GRAFFITI = "graffitis-tags-a-914fea"
COPIES = 20_000
"""Incidents of a blurred service: one statement writing them all takes over the tiny
timeout, one batch of them well under it."""
TINY_TIMEOUT_MS = 250
BATCH_ROWS = 100


def _fill(store: Store, paris: City, gis: CityGIS) -> None:
    """One graffiti incident through the pipeline, then ``COPIES`` copies of it within
    ~300 m (other 50 m cells), written as a bulk import writes them."""
    pipeline = Pipeline(paris, store, gis)
    first = pipeline.intake.submit(
        Report(
            external_id="batch-0",
            source="test",
            service_code=GRAFFITI,
            lon=2.3470,
            lat=48.8590,
            requested_at=datetime(2024, 5, 2, 9, 30, tzinfo=UTC),
        )
    ).incident_id
    row = store.lookup("incidents", J, "id", [first])
    rng = np.random.default_rng(2154)
    with store.transaction(J) as uow:
        copies = pd.concat([row] * COPIES, ignore_index=True)
        copies["id"] = uow.tables.reserve_ids("incidents", COPIES)
        copies["lon"] = copies["lon"] + rng.uniform(-0.004, 0.004, COPIES)
        copies["lat"] = copies["lat"] + rng.uniform(-0.003, 0.003, COPIES)
        uow.tables.insert("incidents", copies)


def _placement(paris_gis: CityGIS, folder: Path) -> Placement:
    """Paris blurring the graffiti group on a 50 m grid, as ``services.reads`` places it."""
    city = blurring_paris(folder)
    blur = Blur(city, paris_gis)
    return Placement(blur.services, blur.public, blur.fingerprint(city.metric_crs))


def _points(store: Store) -> pd.DataFrame:
    """Every incident's exact and public point, by id."""
    rows = store.rows(
        "SELECT id, service_code, lon, lat, public_lon, public_lat FROM incidents ORDER BY id",
        (),
    )
    return pd.DataFrame(rows, columns=["id", "service_code", "lon", "lat", "plon", "plat"])


def _expected(points: pd.DataFrame, placement: Placement) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = placement.public(
        points["service_code"].to_numpy(object),
        points["lon"].to_numpy(float),
        points["lat"].to_numpy(float),
    )
    return lon, lat


@pytest.mark.postgis
def test_a_city_larger_than_one_statement_gets_its_public_points(
    postgis_url: str,
    paris: City,
    paris_gis: CityGIS,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Placed by a store whose statements are cancelled after ``TINY_TIMEOUT_MS``: the
    whole city in one UPDATE was (``StoreError``: over the statement timeout)."""
    filler = open_store(StoreSettings(database_url=postgis_url))
    try:
        filler.upgrade()
        _fill(filler, paris, paris_gis)
    finally:
        filler.close()
    monkeypatch.setattr(public_points, "WRITE_BATCH_ROWS", BATCH_ROWS)
    placement = _placement(paris_gis, tmp_path / "blurring")
    hurried = open_store(
        StoreSettings(database_url=postgis_url, statement_timeout_ms=TINY_TIMEOUT_MS)
    )
    try:
        assert hurried.place_publicly(J, placement)
        points = _points(hurried)
    finally:
        hurried.close()
    lon, lat = _expected(points, placement)
    assert len(points) == COPIES + 1
    assert points["plon"].notna().all()
    np.testing.assert_array_equal(points["plon"].to_numpy(float), lon)
    np.testing.assert_array_equal(points["plat"].to_numpy(float), lat)


def test_points_already_placed_are_not_written_again(
    store: Store, paris: City, paris_gis: CityGIS, tmp_path: Path
) -> None:
    """Placed again after the fingerprint was lost (a write without the placement, or a
    start interrupted before it recorded it): every point is right, and on PostGIS no
    row has a new version (its ``xmin``: no index entries written again)."""
    _fill(store, paris, paris_gis)
    placement = _placement(paris_gis, tmp_path / "blurring")
    assert store.place_publicly(J, placement)
    versions = _versions(store)
    with store.transaction(J) as uow:
        uow.session.run("DELETE FROM public_points WHERE jurisdiction_id = ?", (J,))
    assert store.place_publicly(J, placement)
    points = _points(store)
    lon, lat = _expected(points, placement)
    np.testing.assert_array_equal(points["plon"].to_numpy(float), lon)
    np.testing.assert_array_equal(points["plat"].to_numpy(float), lat)
    assert _versions(store) == versions


def _versions(store: Store) -> list[tuple[object, ...]] | None:
    """Each incident's row version (PostGIS's ``xmin``), by id; None on sqlite."""
    if store.backend != "postgis":
        return None
    return store.rows("SELECT id, xmin::text FROM incidents ORDER BY id", ())
