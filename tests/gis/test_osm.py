"""Street segments from an OpenStreetMap extract (.osm.pbf), written here with pyosmium."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import osmium
import pandas as pd
import shapely
import yaml

from voirie.city import load_city
from voirie.gis.check import check_city_layers
from voirie.gis.enrich import CityGIS
from voirie.gis.osm import read_osm

PARIS = Path(__file__).parents[2] / "cities/paris"

# Around Rue Oberkampf (Paris 11e): a street crossed in its middle by a one-way street drawn
# against its direction (oneway=-1), an unnamed roundabout, a motorway tagged oneway=no
# that starts where the first street ends, and a building outline (not a highway).
NODES = {
    1: (2.37900, 48.86550),
    2: (2.38000, 48.86614),
    3: (2.38100, 48.86680),
    4: (2.37950, 48.86680),
    5: (2.38200, 48.86500),
    6: (2.38230, 48.86520),
    7: (2.38200, 48.86540),
    8: (2.38300, 48.86750),
}
WAYS = [
    (1, [1, 2, 3], {"highway": "residential", "name": "Rue Oberkampf"}),
    (2, [4, 2], {"highway": "residential", "name": "Rue Test", "oneway": "-1"}),
    (3, [5, 6, 7, 5], {"highway": "primary", "junction": "roundabout"}),
    (4, [1, 3, 4, 1], {"building": "yes"}),
    (5, [3, 8], {"highway": "motorway", "oneway": "no", "name": "Voie Rapide"}),
]


def write_pbf(folder: Path) -> Path:
    """The extract above as OSM XML, converted to PBF by pyosmium's writer."""
    nodes = "".join(
        f'<node id="{i}" version="1" lat="{lat}" lon="{lon}"/>' for i, (lon, lat) in NODES.items()
    )
    ways = "".join(
        f'<way id="{i}" version="1">'
        + "".join(f'<nd ref="{n}"/>' for n in refs)
        + "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items())
        + "</way>"
        for i, refs, tags in WAYS
    )
    xml = folder / "extract.osm"
    xml.write_text(f'<?xml version="1.0"?><osm version="0.6">{nodes}{ways}</osm>', encoding="utf-8")
    pbf = folder / "streets.osm.pbf"
    with osmium.SimpleWriter(str(pbf)) as writer:
        for obj in osmium.FileProcessor(str(xml)):
            writer.add(obj)
    return pbf


def test_highways_become_segments_cut_at_junctions(tmp_path: Path) -> None:
    segments = read_osm(write_pbf(tmp_path)).set_index("osm_id")
    assert segments.crs == "EPSG:4326"
    # Way 1 is cut at node 2, where way 2 meets it; the building is not a highway.
    assert sorted(segments.index) == ["1-0", "1-1", "2-0", "3-0", "5-0"]
    assert segments.loc["1-0", "name"] == segments.loc["1-1", "name"] == "Rue Oberkampf"
    coords = {
        key: shapely.get_coordinates(geom).tolist() for key, geom in segments.geometry.items()
    }
    assert coords["1-0"] == [list(NODES[1]), list(NODES[2])]
    assert coords["1-1"] == [list(NODES[2]), list(NODES[3])]
    # oneway=-1: one-way, redrawn in the direction of travel.
    assert bool(segments.loc["2-0", "oneway"])
    assert coords["2-0"] == [list(NODES[2]), list(NODES[4])]
    # A roundabout is one-way without saying so; oneway=no overrides a motorway's default.
    assert bool(segments.loc["3-0", "oneway"])
    assert pd.isna(segments.loc["3-0", "name"])
    assert not bool(segments.loc["5-0", "oneway"])
    assert not bool(segments.loc["1-0", "oneway"])
    assert segments["highway"].to_dict() == {
        "1-0": "residential",
        "1-1": "residential",
        "2-0": "residential",
        "3-0": "primary",
        "5-0": "motorway",
    }


def _city_on_osm(tmp_path: Path) -> Path:
    """Paris with its street layer replaced by the extract."""
    folder = tmp_path / "city"
    shutil.copytree(PARIS, folder, ignore=shutil.ignore_patterns("reports", "streets.*"))
    write_pbf(folder / "layers")
    config = yaml.safe_load((folder / "city.yaml").read_text(encoding="utf-8"))
    config["streets"] = {
        "path": "layers/streets.osm.pbf",
        "name_field": "name",
        "id_field": "osm_id",
        "attributes": ["highway", "oneway"],
        "max_snap_distance_m": 150,
    }
    (folder / "city.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return folder


def test_a_city_snaps_to_its_osm_extract(tmp_path: Path) -> None:
    folder = _city_on_osm(tmp_path)
    streets = check_city_layers(folder)[0]
    assert streets.name == "streets"
    assert not streets.problems
    assert streets.features == 5
    assert streets.crs == "EPSG:4326"
    assert streets.coverage == {"name": 0.8, "osm_id": 1.0, "highway": 1.0, "oneway": 1.0}
    gis = CityGIS(load_city(folder))
    # A report a few metres off the second half of Rue Oberkampf, and one near Rue Test.
    out = gis.enrich(np.array([2.38055, 2.37975]), np.array([48.86645, 48.86650]))
    assert out["segment_id"].tolist() == ["1-1", "2-0"]
    assert out["street_name"].tolist() == ["Rue Oberkampf", "Rue Test"]
    assert out["segment_highway"].tolist() == ["residential", "residential"]
    assert out["segment_oneway"].tolist() == [False, True]
    assert (out["snap_distance_m"] < 15).all()
