"""Contract: ``Store.incident_tile`` gives the same tile on every backend.

PostGIS encodes with ``ST_AsMVT``, sqlite with ``voirie.codecs.mvt``; both are decoded with
GDAL's MVT driver and compared with the incidents the pipeline reads: one feature per
incident from ``mvt.CLUSTER_BELOW_ZOOM``, one per cell (with its counts) below.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer

from voirie.codecs import mvt
from voirie.model import OPEN_STATUSES, Report
from voirie.services.pipeline import Pipeline

# Tiles over the slice's reports: the whole city at z10 and one district at z12 (aggregated
# per cell), a few streets at z14 and z15 (one feature per incident), and an empty tile in the
# Atlantic.
CITY_ZOOM = 10
CELL_TILES = [(CITY_ZOOM, 518, 352), (12, 2074, 1409)]
TILES = [(14, 8298, 5636), (15, 16597, 11273)]
EMPTY = (10, 400, 360)


def decode(content: bytes, z: int, x: int, y: int, folder: Path) -> list[dict[str, object]]:
    """Features of a tile as GDAL reads them (EPSG:3857), those in the buffer included."""
    path = folder / f"{z}_{x}_{y}.mvt"
    path.write_bytes(content)
    done = subprocess.run(
        [
            "ogr2ogr",
            "-f",
            "GeoJSON",
            "/vsistdout/",
            str(path),
            "-oo",
            f"Z={z}",
            "-oo",
            f"X={x}",
            "-oo",
            f"Y={y}",
            "-oo",
            "CLIP=NO",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    found: list[dict[str, object]] = json.loads(done.stdout)["features"]
    return found


def test_aggregation_starts_below_the_threshold() -> None:
    assert all(z < mvt.CLUSTER_BELOW_ZOOM for z, _, _ in CELL_TILES)
    assert all(z >= mvt.CLUSTER_BELOW_ZOOM for z, _, _ in TILES)


@pytest.mark.parametrize(("z", "x", "y"), CELL_TILES)
def test_low_zoom_tile_holds_one_point_per_cell(
    pipeline: Pipeline, tmp_path: Path, z: int, x: int, y: int
) -> None:
    incidents = pipeline.reads.incidents()
    px, py, keep = mvt.tile_coordinates(
        incidents["lon"].to_numpy(float), incidents["lat"].to_numpy(float), z, x, y
    )
    kept = incidents[keep]
    first, last = mvt.CELL_RANGE
    # Expected cells, computed with pandas (independently of both backends' grouping).
    cells = (
        pd.DataFrame(
            {
                "cx": np.clip(px[keep] // mvt.CELL, first, last),
                "cy": np.clip(py[keep] // mvt.CELL, first, last),
                "open": kept["status"].isin([str(s) for s in OPEN_STATUSES]).to_numpy(),
                "reports": kept["report_count"].to_numpy(),
            }
        )
        .groupby(["cx", "cy"])
        .agg(count=("open", "size"), open=("open", "sum"), reports=("reports", "sum"))
    )
    expected = {
        (cx * mvt.CELL + mvt.CELL // 2, cy * mvt.CELL + mvt.CELL // 2): {
            "count": int(r["count"]),
            "open": int(r["open"]),
            "reports": int(r["reports"]),
        }
        for (cx, cy), r in cells.iterrows()
    }
    content = pipeline.store.incident_tile(pipeline.city.jurisdiction_id, z, x, y)
    read = decode(content, z, x, y, tmp_path)
    minx, _, maxx, maxy = mvt.mercator_bounds(z, x, y)
    pixel = (maxx - minx) / mvt.EXTENT
    found = {}
    for feature in read:
        gx, gy = feature["geometry"]["coordinates"]  # type: ignore[index]
        properties: dict[str, object] = feature["properties"]  # type: ignore[assignment]
        properties.pop("mvt_id")
        found[(round((gx - minx) / pixel), round((maxy - gy) / pixel))] = properties
    assert len(kept) > 0
    assert sum(int(p["count"]) for p in found.values()) == len(kept)  # type: ignore[call-overload]
    assert found == expected
    if z == CITY_ZOOM:  # the slice's incidents share cells over the whole city
        assert len(found) < len(kept)


@pytest.mark.parametrize(("z", "x", "y"), TILES)
def test_tile_holds_the_incidents_it_covers(
    pipeline: Pipeline, tmp_path: Path, z: int, x: int, y: int
) -> None:
    incidents = pipeline.reads.incidents()
    *_, keep = mvt.tile_coordinates(
        incidents["lon"].to_numpy(float), incidents["lat"].to_numpy(float), z, x, y
    )
    expected = incidents[keep].set_index("incident_id")
    content = pipeline.store.incident_tile(pipeline.city.jurisdiction_id, z, x, y)
    read = decode(content, z, x, y, tmp_path)
    assert len(expected) > 0
    assert sorted(f["properties"]["mvt_id"] for f in read) == sorted(expected.index)  # type: ignore[index]
    minx, _, maxx, _ = mvt.mercator_bounds(z, x, y)
    pixel = (maxx - minx) / mvt.EXTENT
    mercator = expected.to_crs(3857)
    for feature in read:
        properties: dict[str, object] = feature["properties"]  # type: ignore[assignment]
        row = expected.loc[properties.pop("mvt_id")]
        assert set(properties) == set(mvt.FIELDS)
        assert properties["status"] == row["status"]
        assert properties["team"] == row["team"]
        assert properties["service_code"] == row["service_code"]
        assert properties["priority"] == row["priority"]
        assert properties["report_count"] == row["report_count"]
        assert properties["last_reported"] == row["last_reported_at"].strftime("%Y-%m-%d")
        point = mercator.geometry.loc[row.name]
        gx, gy = feature["geometry"]["coordinates"]  # type: ignore[index]
        assert np.hypot(gx - point.x, gy - point.y) <= pixel


@pytest.mark.parametrize("beyond", [-0.3, 0.4], ids=["west", "east"])
def test_a_point_rounding_onto_the_buffer_edge_is_in_the_tile(
    pipeline: Pipeline, tmp_path: Path, beyond: float
) -> None:
    """Less than half a unit outside the buffer, a point's tile coordinate rounds onto the
    buffer's edge: both encoders keep it, so each store must fetch it."""
    z, x, y = TILES[0]
    minx, miny, maxx, maxy = mvt.mercator_bounds(z, x, y)
    unit = (maxx - minx) / mvt.EXTENT
    edge = -mvt.BUFFER + beyond if beyond < 0 else mvt.EXTENT + mvt.BUFFER + beyond
    lon, lat = Transformer.from_crs(3857, 4326, always_xy=True).transform(
        minx + edge * unit, (miny + maxy) / 2
    )
    code = next(iter(pipeline.city.services))
    opened = pipeline.intake.submit(
        Report(
            external_id=f"edge{beyond}",
            source="app",
            service_code=code,
            lon=lon,
            lat=lat,
            requested_at=datetime(2025, 1, 1, tzinfo=UTC),
        )
    )
    px, _, keep = mvt.tile_coordinates(np.array([lon]), np.array([lat]), z, x, y)
    assert keep[0]
    assert abs(px[0]) == (mvt.BUFFER if beyond < 0 else mvt.EXTENT + mvt.BUFFER)
    read = decode(
        pipeline.store.incident_tile(pipeline.city.jurisdiction_id, z, x, y), z, x, y, tmp_path
    )
    assert opened.incident_id in {f["properties"]["mvt_id"] for f in read}  # type: ignore[index]


def test_tile_without_incidents_is_empty(pipeline: Pipeline) -> None:
    assert pipeline.store.incident_tile(pipeline.city.jurisdiction_id, *EMPTY) == b""


def test_tile_of_another_jurisdiction_is_empty(pipeline: Pipeline) -> None:
    assert pipeline.store.incident_tile("elsewhere.example", *TILES[0]) == b""
    assert pipeline.store.incident_tile("elsewhere.example", *CELL_TILES[0]) == b""
