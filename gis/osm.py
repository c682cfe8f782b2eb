"""Street segments from an OpenStreetMap extract (``.osm.pbf``, also ``.osm`` XML).

Read with pyosmium (the ``osmium`` package, the maintained binding of libosmium). Every
way tagged ``highway`` becomes one or more segments: a way is cut at each node it shares
with another highway way (a junction), as street networks are drawn, so that a report's
position along its segment is measured from the previous junction. Each segment carries:

* ``osm_id``: ``<way id>-<part>`` (stable while the way keeps its junctions);
* ``name`` (``None`` for unnamed ways), ``highway`` (the OSM class: residential,
  primary...), ``oneway`` (bool; ``oneway=-1`` ways are reversed so that the digitised
  direction is the direction of travel; roundabouts and motorways are one-way unless
  tagged ``oneway=no``).

The result is a WGS84 GeoDataFrame, reprojected and cleaned like any other layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import geopandas as gpd
import numpy as np
import osmium
import shapely

OSM_SUFFIXES = (".osm.pbf", ".osm", ".osm.bz2", ".osm.gz")
_ONEWAY_YES = frozenset({"yes", "true", "1"})
_ONEWAY_NO = frozenset({"no", "false", "0"})
_IMPLIED_ONEWAY_HIGHWAYS = frozenset({"motorway"})


def is_osm(path: Path) -> bool:
    """Whether ``path`` names an OpenStreetMap extract (by its suffix)."""
    return path.name.lower().endswith(OSM_SUFFIXES)


@dataclass
class _Ways:
    ids: list[int] = field(default_factory=list)
    names: list[str | None] = field(default_factory=list)
    highways: list[str] = field(default_factory=list)
    oneways: list[bool] = field(default_factory=list)
    reversed: list[bool] = field(default_factory=list)
    nodes: list[np.ndarray] = field(default_factory=list)
    coords: list[np.ndarray] = field(default_factory=list)


def _oneway(tags: osmium.osm.TagList, highway: str) -> tuple[bool, bool]:
    """(one-way, drawn against the direction of travel) from a way's tags."""
    value = (tags.get("oneway") or "").lower()
    if value == "-1":
        return True, True
    if value in _ONEWAY_YES:
        return True, False
    if value in _ONEWAY_NO:
        return False, False
    implied = highway in _IMPLIED_ONEWAY_HIGHWAYS or tags.get("junction") == "roundabout"
    return implied, False


def _read_ways(path: Path) -> _Ways:
    ways = _Ways()
    processor = (
        osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY)
        .with_locations()
        .with_filter(osmium.filter.KeyFilter("highway"))
    )
    for way in processor:  # once per way, when the layer is loaded
        if not isinstance(way, osmium.osm.Way):
            continue
        nodes = [(node.ref, node.lon, node.lat) for node in way.nodes if node.location.valid()]
        if len(nodes) < 2:
            continue
        highway = way.tags.get("highway") or ""
        oneway, backwards = _oneway(way.tags, highway)
        array = np.array(nodes, dtype=float)
        ways.ids.append(way.id)
        ways.names.append(way.tags.get("name") or None)
        ways.highways.append(highway)
        ways.oneways.append(oneway)
        ways.reversed.append(backwards)
        ways.nodes.append(array[:, 0].astype(np.int64))
        ways.coords.append(array[:, 1:])
    return ways


def read_osm(path: Path) -> gpd.GeoDataFrame:
    """Highway segments of an OSM extract, cut at junctions, in WGS84 (EPSG:4326)."""
    ways = _read_ways(path)
    columns: dict[str, list[object]] = {
        "osm_id": [],
        "name": [],
        "highway": [],
        "oneway": [],
        "geometry": [],
    }
    # A junction: a node listed more than once over all highway ways (shared by two
    # ways, or visited twice by one).
    all_nodes = np.concatenate(ways.nodes) if ways.nodes else np.array([], dtype=np.int64)
    distinct, count = np.unique(all_nodes, return_counts=True)
    junctions = distinct[count > 1]
    for i, way_id in enumerate(ways.ids):
        nodes, coords = ways.nodes[i], ways.coords[i]
        inner = np.flatnonzero(np.isin(nodes[1:-1], junctions)) + 1
        bounds = [0, *inner.tolist(), len(nodes) - 1]
        for part, (start, end) in enumerate(pairwise(bounds)):
            line = coords[start : end + 1]
            if ways.reversed[i]:
                line = line[::-1]
            columns["osm_id"].append(f"{way_id}-{part}")
            columns["name"].append(ways.names[i])
            columns["highway"].append(ways.highways[i])
            columns["oneway"].append(ways.oneways[i])
            columns["geometry"].append(shapely.linestrings(line))
    geometry = columns.pop("geometry")
    return gpd.GeoDataFrame(columns, geometry=geometry, crs="EPSG:4326")
