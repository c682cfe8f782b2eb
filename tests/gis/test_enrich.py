"""Enrichment on the real Paris layers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely

from voirie.city import load_city
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


# Real DansMaRue reports: A2023G051223, whose nearest segment is the cross street Rue de
# Douai (12 m) although its address names Rue Jean-Baptiste Pigalle (20 m), and
# G2023G042969, nearest Rue Calmels (21 m), address Rue Montcalm (28 m).
CROSS_STREET_LON = np.array([2.3360068793991986, 2.3392429345255428])
CROSS_STREET_LAT = np.array([48.881378172987375, 48.89382552975555])
CROSS_STREET_ADDRESS = np.array(
    ["65 Rue Jean-Baptiste Pigalle, 75009 PARIS", "42 Rue Montcalm, 75018 PARIS"], dtype=object
)


def test_the_address_street_wins_over_a_nearer_cross_street(paris_gis: CityGIS) -> None:
    nearest = paris_gis.enrich(CROSS_STREET_LON, CROSS_STREET_LAT)
    assert nearest["street_name"].tolist() == ["Rue de Douai", "Rue Calmels"]
    assert nearest["snap_method"].tolist() == ["nearest", "nearest"]
    out = paris_gis.enrich(CROSS_STREET_LON, CROSS_STREET_LAT, CROSS_STREET_ADDRESS)
    assert out["street_name"].tolist() == ["Rue Jean-Baptiste Pigalle", "Rue Montcalm"]
    assert out["snap_method"].tolist() == ["address_match", "address_match"]
    assert (out["snap_distance_m"] > nearest["snap_distance_m"]).all()
    assert (out["snap_distance_m"] <= paris_gis.address_match_radius_m).all()
    # The linear reference is that of the address street's segment.
    streets = paris_gis.streets
    assert streets is not None
    segments = streets.set_index("segment_id").geometry.loc[out["segment_id"]].to_numpy()
    points = shapely.points(out["x"], out["y"])
    assert np.allclose(shapely.distance(points, segments), out["snap_distance_m"])
    x, y = paris_gis.project(out["snap_lon"].to_numpy(), out["snap_lat"].to_numpy())
    assert np.all(shapely.distance(segments, shapely.points(x, y)) < 0.01)
    assert np.all((out["position_m"] >= 0) & (out["position_m"] <= shapely.length(segments)))
    assert set(out["side"]) <= {"left", "right"}
    # Zones do not depend on the snap.
    zone_columns = [c for c in out.columns if c.startswith("zone_")]
    pd.testing.assert_frame_equal(out[zone_columns], nearest[zone_columns])


def test_addresses_that_do_not_help_keep_the_nearest_segment(paris_gis: CityGIS) -> None:
    lon = np.repeat(CROSS_STREET_LON[:1], 4)
    lat = np.repeat(CROSS_STREET_LAT[:1], 4)
    # No address, an unparsable one, a street too far away, a street not in the network.
    address = np.array(
        [None, "75009 PARIS", "126 Rue Oberkampf, 75011 PARIS", "1 Rue Imaginaire, 75009"],
        dtype=object,
    )
    out = paris_gis.enrich(lon, lat, address)
    assert out["street_name"].tolist() == ["Rue de Douai"] * 4
    assert out["snap_method"].tolist() == ["nearest"] * 4


def test_the_address_street_beyond_the_radius_is_not_used(paris_gis: CityGIS) -> None:
    # Rue Oberkampf's report, with the address of a parallel street farther than 60 m.
    out = paris_gis.enrich(
        np.array([2.3800201422199687]),
        np.array([48.86614608645489]),
        np.array(["1 Rue Jean-Pierre Timbaud, 75011 PARIS"], dtype=object),
    )
    assert out["street_name"].iloc[0] == "Rue Oberkampf"
    assert out["snap_method"].iloc[0] == "nearest"


def test_off_network_points_stay_off_network_with_an_address(paris_gis: CityGIS) -> None:
    out = paris_gis.enrich(
        np.array([-8.0, 2.4380]),
        np.array([46.0, 48.8330]),
        np.array(["1 Rue de Rivoli, 75001 PARIS", "1 Route de la Pyramide, 75012"], dtype=object),
    )
    assert out["segment_id"].isna().all()
    assert out["snap_method"].isna().all()
    assert not bool(out["off_network"].iloc[0])  # outside the territory instead
    assert bool(out["off_network"].iloc[1])


def test_addresses_must_match_the_points(paris_gis: CityGIS) -> None:
    with pytest.raises(ValueError, match="addresses"):
        paris_gis.enrich(CROSS_STREET_LON, CROSS_STREET_LAT, CROSS_STREET_ADDRESS[:1])


def test_single_point_path_equals_bulk_path_with_addresses(paris_gis: CityGIS) -> None:
    lon = np.concatenate([CROSS_STREET_LON, [2.3800201422199687, 2.349339, 2.3631146]])
    lat = np.concatenate([CROSS_STREET_LAT, [48.86614608645489, 48.86993, 48.8735046]])
    address = np.concatenate(
        [
            CROSS_STREET_ADDRESS,
            ["126 Rue Oberkampf, 75011 PARIS", None, "26 Rue de la Lune, 75002 PARIS"],
        ]
    )
    bulk = paris_gis.enrich(lon, lat, address)
    assert (bulk["snap_method"] == "address_match").sum() >= 3
    for i in range(len(lon)):
        one = paris_gis.enrich(lon[i : i + 1], lat[i : i + 1], address[i : i + 1])
        pd.testing.assert_frame_equal(one, bulk.iloc[i : i + 1].reset_index(drop=True))


def test_off_network_only_where_the_city_has_streets(paris_gis: CityGIS) -> None:
    # Paris has a street network: a point inside the city far from any street is off it.
    lon, lat = np.array([2.4380]), np.array([48.8330])
    paris = paris_gis.enrich(lon, lat).iloc[0]
    assert pd.isna(paris["segment_id"])
    assert bool(paris["off_network"])
    # Chicago has no street layer: no segment, and no off_network flag either.
    chicago = CityGIS(load_city(Path(__file__).parents[2] / "cities/chicago"))
    out = chicago.enrich(np.array([-87.679846, -87.6298]), np.array([41.871831, 41.8781]))
    assert out["segment_id"].isna().all()
    assert out["zone_community_area"].notna().all()
    assert not out["off_network"].any()
    assert not out["outside_territory"].any()
