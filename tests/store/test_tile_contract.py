"""Contract: ``Store.incident_tile`` gives the same tile on every backend.

PostGIS encodes with ``ST_AsMVT``, sqlite with ``voirie.maps.tiles``; both are decoded with
GDAL's MVT driver and compared with the incidents the pipeline reads.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.maps import tiles
from voirie.pipeline import Pipeline
from voirie.store import Store

DATA = Path(__file__).parents[1] / "data" / "dansmarue_200.csv"
# Tiles over the slice's reports: the whole city at z10, one district at z12, a few streets
# at z14, and an empty tile in the Atlantic.
TILES = [(10, 518, 352), (12, 2074, 1409), (14, 8298, 5636)]
EMPTY = (10, 400, 360)


def decode(content: bytes, z: int, x: int, y: int, folder: Path) -> list[dict[str, object]]:
    """Features of a tile as GDAL reads them (EPSG:3857), those in the buffer included."""
    path = folder / f"{z}_{x}_{y}.mvt"
    path.write_bytes(content)
    done = subprocess.run(
        ["ogr2ogr", "-f", "GeoJSON", "/vsistdout/", str(path), "-oo", f"Z={z}", "-oo",
         f"X={x}", "-oo", f"Y={y}", "-oo", "CLIP=NO"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    found: list[dict[str, object]] = json.loads(done.stdout)["features"]
    return found


@pytest.fixture
def pipeline(store: Store, paris: City, paris_gis: CityGIS) -> Pipeline:
    loaded = Pipeline(paris, store, paris_gis)
    loaded.import_table(read_csv(DATA), DANSMARUE)
    return loaded


@pytest.mark.parametrize(("z", "x", "y"), TILES)
def test_tile_holds_the_incidents_it_covers(
    pipeline: Pipeline, tmp_path: Path, z: int, x: int, y: int
) -> None:
    incidents = pipeline.incidents()
    *_, keep = tiles.tile_coordinates(
        incidents["lon"].to_numpy(float), incidents["lat"].to_numpy(float), z, x, y
    )
    expected = incidents[keep].set_index("incident_id")
    content = pipeline.store.incident_tile(pipeline.city.jurisdiction_id, z, x, y)
    read = decode(content, z, x, y, tmp_path)
    assert len(expected) > 0
    assert sorted(f["properties"]["mvt_id"] for f in read) == sorted(expected.index)  # type: ignore[index]
    minx, _, maxx, _ = tiles.mercator_bounds(z, x, y)
    pixel = (maxx - minx) / tiles.EXTENT
    mercator = expected.to_crs(3857)
    for feature in read:
        properties: dict[str, object] = feature["properties"]  # type: ignore[assignment]
        row = expected.loc[properties.pop("mvt_id")]
        assert set(properties) == set(tiles.FIELDS)
        assert properties["status"] == row["status"]
        assert properties["team"] == row["team"]
        assert properties["service_code"] == row["service_code"]
        assert properties["priority"] == row["priority"]
        assert properties["report_count"] == row["report_count"]
        assert properties["last_reported"] == row["last_reported_at"].strftime("%Y-%m-%d")
        point = mercator.geometry.loc[row.name]
        gx, gy = feature["geometry"]["coordinates"]  # type: ignore[index]
        assert np.hypot(gx - point.x, gy - point.y) <= pixel


def test_tile_without_incidents_is_empty(pipeline: Pipeline) -> None:
    assert pipeline.store.incident_tile(pipeline.city.jurisdiction_id, *EMPTY) == b""


def test_tile_of_another_jurisdiction_is_empty(pipeline: Pipeline) -> None:
    assert pipeline.store.incident_tile("elsewhere.example", *TILES[0]) == b""
