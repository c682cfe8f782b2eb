"""A public tile (a city that blurs) draws each incident at its stored public point
(migration 0020): found there through the public points' index, and absent from the tile
of its exact point; an incident without one stays at its exact point. Both backends,
decoded by GDAL (``test_tile_contract.decode``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import morecantile
import pytest
from pyproj import Transformer

from tests.store.test_tile_contract import decode
from voirie.city import City
from voirie.model import Report
from voirie.services.pipeline import Pipeline
from voirie.store import Store

J = "paris.fr"
EXACT = (2.3470, 48.8590)  # rue de Rivoli
PUBLIC = (2.3530, 48.8620)  # about 550 m away: another z16 tile
ELSEWHERE = (2.3300, 48.8500)  # an incident without a public point
_MERCATOR = Transformer.from_crs(4326, 3857, always_xy=True)


def _tile(point: tuple[float, float], z: int) -> tuple[int, int, int]:
    t = morecantile.tms.get("WebMercatorQuad").tile(*point, z)
    return z, t.x, t.y


def _features(
    store: Store, point: tuple[float, float], public: bool, folder: Path
) -> dict[int, tuple[float, float]]:
    """Incident id -> its point (EPSG:3857) in the z16 tile holding ``point``."""
    tile = _tile(point, 16)
    content = store.incident_tile(J, *tile, public=public)
    found = decode(content, *tile, folder) if content else []
    return {
        int(f["properties"]["mvt_id"]): tuple(f["geometry"]["coordinates"])  # type: ignore[index, misc]
        for f in found
    }


@pytest.fixture
def incidents(paris: City, store: Store) -> tuple[int, int]:
    """Two incidents; the first has a public point elsewhere (as a blurring city stores
    it), the second none."""
    pipeline = Pipeline(paris, store)
    ids = [
        pipeline.intake.submit(
            Report(
                external_id=f"tile-{k}",
                source="test",
                service_code="graffitis-tags-a-914fea",
                lon=lon,
                lat=lat,
                requested_at=datetime(2024, 5, 2, 9, 30, tzinfo=UTC),
            )
        ).incident_id
        for k, (lon, lat) in enumerate((EXACT, ELSEWHERE))
    ]
    with store.transaction(J) as uow:
        uow.session.run(
            "UPDATE incidents SET public_lon = ?, public_lat = ? WHERE id = ?", (*PUBLIC, ids[0])
        )
    return ids[0], ids[1]


def test_a_public_tile_draws_the_stored_public_point(
    store: Store, incidents: tuple[int, int], tmp_path: Path
) -> None:
    blurred, plain = incidents
    assert _tile(EXACT, 16) != _tile(PUBLIC, 16)
    at_public = _features(store, PUBLIC, True, tmp_path)
    x, y = _MERCATOR.transform(*PUBLIC)
    assert at_public[blurred] == pytest.approx((x, y), abs=2.5)  # under a pixel at z16
    assert blurred not in _features(store, EXACT, True, tmp_path)
    assert plain in _features(store, ELSEWHERE, True, tmp_path)  # no public point: exact
    # Without ``public`` (a city that blurs nothing): the exact point.
    assert blurred in _features(store, EXACT, False, tmp_path)
    assert blurred not in _features(store, PUBLIC, False, tmp_path)
