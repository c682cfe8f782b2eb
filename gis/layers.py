"""Reading reference layers (streets, zones) into the city's metric CRS.

Sources are whatever GDAL reads through pyogrio (GeoPackage, Shapefile, FlatGeobuf,
GeoJSON...); gzip files are read in place through ``/vsigzip/`` and zip archives (a zipped
shapefile) through ``/vsizip/``; OpenStreetMap extracts (``.osm.pbf``) through pyosmium.
Geometry is repaired or dropped here, once, so the stages downstream can assume valid,
single-part, metric geometry; what was repaired or dropped is counted in a ``LayerStats``
so that ``voirie layers check`` can report it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import shapely

from voirie.city import City, StreetLayer, ZoneLayer
from voirie.errors import CityConfigError

GeometryKind = Literal["lines", "polygons"]
_POLYGONAL = ["Polygon", "MultiPolygon"]
_COLLECTION_TYPE_ID = 7
_POLYGON_TYPE_IDS = [3, 6]  # shapely type ids of Polygon and MultiPolygon


@dataclass
class LayerStats:
    """What reading one layer did to its features."""

    read: int = 0
    """features in the source file"""
    empty: int = 0
    """features without geometry (null or empty), dropped"""
    repaired: int = 0
    """invalid polygons repaired with ``make_valid``"""
    rejected: int = 0
    """features (or line parts) of the wrong geometry type, dropped"""
    exploded: int = 0
    """extra line parts from splitting multi-part lines"""
    duplicates: int = 0
    """segments dropped because another one has the same id"""
    kept: int = 0
    """features in the loaded layer"""


@dataclass(frozen=True)
class LoadedLayer:
    """A loaded layer and the counts of what loading it did."""

    frame: gpd.GeoDataFrame
    stats: LayerStats


def gdal_path(path: Path) -> str:
    """The path as GDAL wants it: gzip files through ``/vsigzip/``, zip through ``/vsizip/``."""
    text = str(path)
    lower = text.lower()
    if lower.endswith(".gz"):
        return f"/vsigzip/{text}"
    if lower.endswith(".zip"):
        return f"/vsizip/{text}"
    return text


def read_source(path: Path) -> gpd.GeoDataFrame:
    """The layer as stored, in its own CRS (``None`` when the file declares none); an
    OpenStreetMap extract gives its highway segments (see :mod:`voirie.gis.osm`)."""
    # Imported here: pyosmium is needed only to read layers, which a start that loads the
    # city's cached GIS (voirie.gis.cache) does not do.
    from voirie.gis import osm

    if osm.is_osm(path):
        return osm.read_osm(path)
    return gpd.read_file(gdal_path(path), engine="pyogrio")


def _require_crs(frame: gpd.GeoDataFrame, path: Path) -> None:
    if frame.crs is None:
        raise CityConfigError([f"{path}: the layer has no CRS; declare it in the source file"])


def read_layer(path: Path, metric_crs: str) -> gpd.GeoDataFrame:
    """Read a vector layer and reproject it to ``metric_crs``; a missing CRS is an error."""
    frame = read_source(path)
    _require_crs(frame, path)
    frame = frame[~(frame.geometry.isna() | frame.geometry.is_empty)]
    return frame.to_crs(metric_crs)


def clean_geometry(
    source: gpd.GeoDataFrame, kind: GeometryKind, metric_crs: str | None
) -> tuple[gpd.GeoDataFrame, LayerStats]:
    """Drop empty geometry, reproject (unless ``metric_crs`` is None), then make the geometry
    single-part lines (``lines``) or valid polygons (``polygons``), counting each step."""
    stats = LayerStats(read=len(source))
    missing = (source.geometry.isna() | source.geometry.is_empty).to_numpy()
    stats.empty = int(missing.sum())
    frame = source[~missing]
    if metric_crs is not None:
        frame = frame.to_crs(metric_crs)
    if kind == "lines":
        parts = frame.explode(index_parts=False, ignore_index=True)
        stats.exploded = len(parts) - len(frame)
        lines = (parts.geom_type == "LineString").to_numpy()
        stats.rejected = int((~lines).sum())
        frame = parts[lines]
    else:
        invalid = (~frame.geometry.is_valid).to_numpy()
        stats.repaired = int(invalid.sum())
        frame = frame.set_geometry(_polygonal_parts(frame.geometry.make_valid().to_numpy()))
        polygonal = frame.geom_type.isin(_POLYGONAL).to_numpy()
        stats.rejected = int((~polygonal).sum())
        frame = frame[polygonal]
    stats.kept = len(frame)
    return frame, stats


def _polygonal_parts(geometry: np.ndarray) -> np.ndarray:
    """Keep the polygons of mixed collections (real layers hold polygons with stray lines)."""
    out = geometry.copy()
    mixed = np.flatnonzero(shapely.get_type_id(out) == _COLLECTION_TYPE_ID)
    for i in mixed:  # a handful of features per layer, at load time only
        parts = shapely.get_parts(out[i])
        polygons = parts[np.isin(shapely.get_type_id(parts), _POLYGON_TYPE_IDS)]
        if len(polygons):
            out[i] = shapely.union_all(polygons)
    return out


def _missing_fields(frame: gpd.GeoDataFrame, path: Path, fields: list[tuple[str, str]]) -> None:
    missing = [
        f"{path}: {key}: no attribute {name!r} in the layer"
        for key, name in fields
        if name not in frame.columns
    ]
    if missing:
        raise CityConfigError(missing)


def street_fields(layer: StreetLayer) -> list[tuple[str, str]]:
    """(city.yaml key, attribute) of every attribute the street layer must have."""
    fields = [("streets.name_field", layer.name_field)]
    if layer.id_field:
        fields.append(("streets.id_field", layer.id_field))
    fields += [(f"streets.attributes[{i}]", attr) for i, attr in enumerate(layer.attributes)]
    return fields


def zone_fields(layer: ZoneLayer, key: str) -> list[tuple[str, str]]:
    """(city.yaml key, attribute) of every attribute a zone layer (at ``key``) must have."""
    return [(f"{key}.code_field", layer.code_field), (f"{key}.name_field", layer.name_field)]


def segment_ids(lines: gpd.GeoSeries) -> np.ndarray:
    """Stable ids for segments whose source has none: a digest of the WGS84 geometry.

    Computed on coordinates rounded to 1e-7 degrees (about 1 cm) so that the same street
    file, reloaded or reordered, gives the same ids.
    """
    wgs84 = shapely.set_precision(lines.to_crs(4326).values, 1e-7)
    return np.array(
        [hashlib.sha1(wkb).hexdigest()[:12] for wkb in shapely.to_wkb(wgs84)], dtype=object
    )


def streets_from(source: gpd.GeoDataFrame, layer: StreetLayer, metric_crs: str) -> LoadedLayer:
    """Street segments from a source frame (which has a CRS and every named attribute)."""
    frame, stats = clean_geometry(source, "lines", metric_crs)
    ids = (
        frame[layer.id_field].astype(str).to_numpy()
        if layer.id_field
        else segment_ids(frame.geometry)
    )
    out = gpd.GeoDataFrame(
        {
            "segment_id": ids,
            "street_name": frame[layer.name_field].astype("string").to_numpy(),
            **{attr: frame[attr].to_numpy() for attr in layer.attributes},
        },
        geometry=frame.geometry.to_numpy(),
        crs=frame.crs,
    )
    out = out.drop_duplicates("segment_id", ignore_index=True)
    stats.duplicates = stats.kept - len(out)
    stats.kept = len(out)
    return LoadedLayer(out, stats)


def zones_from(source: gpd.GeoDataFrame, layer: ZoneLayer, metric_crs: str) -> LoadedLayer:
    """Zone polygons from a source frame (which has a CRS and every named attribute)."""
    frame, stats = clean_geometry(source, "polygons", metric_crs)
    out = gpd.GeoDataFrame(
        {
            "code": frame[layer.code_field].astype(str).to_numpy(),
            "name": frame[layer.name_field].astype("string").to_numpy(),
        },
        geometry=frame.geometry.to_numpy(),
        crs=frame.crs,
    )
    return LoadedLayer(out, stats)


def read_streets(city: City, layer: StreetLayer) -> LoadedLayer:
    """The street layer with the counts of what reading it repaired or dropped."""
    path = city.path(layer.path)
    source = read_source(path)
    _require_crs(source, path)
    _missing_fields(source, path, street_fields(layer))
    return streets_from(source, layer, city.metric_crs)


def read_zones(city: City, layer: ZoneLayer) -> LoadedLayer:
    """A zone layer with the counts of what reading it repaired or dropped."""
    path = city.path(layer.path)
    source = read_source(path)
    _require_crs(source, path)
    zones = city.config.zones
    key = f"zones[{zones.index(layer)}]" if layer in zones else f"zone {layer.name}"
    _missing_fields(source, path, zone_fields(layer, key))
    return zones_from(source, layer, city.metric_crs)


def load_streets(city: City, layer: StreetLayer) -> gpd.GeoDataFrame:
    """Street segments with ``segment_id``, ``street_name`` and the attributes city.yaml names."""
    return read_streets(city, layer).frame


def load_zones(city: City, layer: ZoneLayer) -> gpd.GeoDataFrame:
    """Zone polygons with ``code`` and ``name``, invalid geometry repaired."""
    return read_zones(city, layer).frame
