"""Enrichment on the real Paris layers."""

from __future__ import annotations

import numpy as np
import shapely

from voirie.gis.enrich import CityGIS


def test_a_report_on_a_known_street(paris_gis: CityGIS) -> None:
    # 126 Rue Oberkampf, 75011 (a real DansMaRue report location).
    out = paris_gis.enrich(np.array([2.3800201422199687]), np.array([48.86614608645489]))
    row = out.iloc[0]
    assert row["street_name"] == "Rue Oberkampf"
    assert 0 <= row["snap_distance_m"] < 30
    assert row["zone_arrondissement"] == "11"
    assert row["side"] in {"left", "right"}
    assert not row["off_network"]
    assert not row["outside_territory"]


def test_snapped_point_lies_on_its_segment_at_its_position(paris_gis: CityGIS) -> None:
    lon = np.array([2.3493394857237635, 2.3846349717052386, 2.309826851511525])
    lat = np.array([48.86993026606752, 48.850200651757156, 48.86124420096348])
    out = paris_gis.enrich(lon, lat)
    streets = paris_gis.streets
    assert streets is not None
    segments = streets.set_index("segment_id").geometry.loc[out["segment_id"]].to_numpy()
    x, y = paris_gis.project(out["snap_lon"].to_numpy(), out["snap_lat"].to_numpy())
    snapped = shapely.points(x, y)
    assert np.all(shapely.distance(segments, snapped) < 0.01)
    assert np.all((out["position_m"] >= 0) & (out["position_m"] <= shapely.length(segments)))
    points = shapely.points(out["x"], out["y"])
    assert np.allclose(shapely.distance(points, segments), out["snap_distance_m"])


def test_outside_the_territory_and_far_from_streets(paris_gis: CityGIS) -> None:
    # The Atlantic, and the middle of the Bois de Vincennes' lake area (inside Paris).
    out = paris_gis.enrich(np.array([-8.0, 2.4380]), np.array([46.0, 48.8330]))
    assert bool(out["outside_territory"].iloc[0])
    assert out["segment_id"].isna().iloc[0]
    assert not bool(out["outside_territory"].iloc[1])


def test_single_point_path_equals_bulk_path(paris_gis: CityGIS) -> None:
    lon = np.array([2.3800201422199687, 2.349339, 2.363114595220107])
    lat = np.array([48.86614608645489, 48.86993, 48.87350463761569])
    bulk = paris_gis.enrich(lon, lat)
    for i in range(3):
        one = paris_gis.enrich(lon[i : i + 1], lat[i : i + 1]).iloc[0]
        assert one.equals(bulk.iloc[i].rename(0)) or one.to_dict() == bulk.iloc[i].to_dict()
