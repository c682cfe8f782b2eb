"""The street layer is kept to the segments a report of the territory may snap to.

The bundled Paris layer is an OSM extract of Paris and its inner suburbs; every report is
inside the territory (the import quarantines, the API refuses the others), so only the
segments within ``max_snap_distance_m`` of it can ever be snapped to. The kept ones are
exactly those, and a report is snapped as the whole layer snaps it.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from voirie.city import City, Territory, ZoneLayer
from voirie.gis.enrich import CityGIS
from voirie.gis.layers import load_streets

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
FLAGS = {"outside_territory", "near_boundary", "boundary_distance_m"}
"""Columns that follow the territory, not the streets."""


def _territory(paris: City, paris_gis: CityGIS) -> shapely.Geometry:
    return shapely.union_all(paris_gis.zones[paris.config.territory.layer].polygons)


def test_only_the_segments_within_reach_of_the_territory_are_kept(
    paris: City, paris_gis: CityGIS
) -> None:
    assert paris.config.streets is not None
    whole = load_streets(paris, paris.config.streets)
    territory = _territory(paris, paris_gis)
    reach = paris_gis.max_snap_distance_m
    distance = shapely.distance(whole.geometry.to_numpy(), territory)
    expected = set(whole["segment_id"][distance <= reach])
    assert paris_gis.streets is not None
    kept = set(paris_gis.streets["segment_id"])
    assert len(kept) < len(whole) / 2  # the suburbs are gone
    assert expected <= kept
    # The kept ones beyond the reach are only those within the 1 m margin.
    assert (distance[whole["segment_id"].isin(kept - expected)] <= reach + 1.0).all()


def test_a_report_snaps_as_with_the_whole_layer(
    tmp_path: Path, paris: City, paris_gis: CityGIS, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real report points, and the same moved up to a few hundred metres (some now near
    or past the boundary), snapped by the Paris GIS and by one whose territory is a box
    around the whole street layer (so nothing is cut): the same snapping wherever a
    point is inside Paris."""
    assert paris.config.streets is not None
    whole = load_streets(paris, paris.config.streets)
    box = gpd.GeoDataFrame(
        {"code": ["all"], "name": ["everywhere"]},
        geometry=[shapely.box(*whole.total_bounds).buffer(1000)],
        crs=whole.crs,
    )
    box.to_file(tmp_path / "everywhere.geojson")
    zones = [
        *paris.config.zones,
        ZoneLayer(
            name="everywhere",
            path=str(tmp_path / "everywhere.geojson"),
            code_field="code",
            name_field="name",
        ),
    ]
    config = paris.config.model_copy(
        update={"zones": zones, "territory": Territory(layer="everywhere")}
    )
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    uncut = CityGIS(City(paris.folder, config))
    assert uncut.streets is not None
    assert len(uncut.streets) == len(whole)

    with gzip.open(REPORTS, "rt", encoding="utf-8") as text:
        rows = pd.read_csv(text, usecols=["latitude", "longitude"], nrows=4000)
    rng = np.random.default_rng(11)
    lon = np.concatenate([rows["longitude"], rows["longitude"] + rng.normal(0, 0.003, len(rows))])
    lat = np.concatenate([rows["latitude"], rows["latitude"] + rng.normal(0, 0.002, len(rows))])
    no_address = np.full(len(lon), None, dtype=object)
    cut = paris_gis.enrich(lon, lat, no_address)
    inside = ~cut["outside_territory"].to_numpy(bool)
    assert (~inside).sum() > 10  # some moved out: the boundary is exercised
    reference = uncut.enrich(lon, lat, no_address)
    snapping = [c for c in cut.columns if not c.startswith("zone_") and c not in FLAGS]
    pd.testing.assert_frame_equal(
        cut.loc[inside, snapping].reset_index(drop=True),
        reference.loc[inside, snapping].reset_index(drop=True),
    )
