"""Reading reference layers (streets, zones) into the city's metric CRS.

Sources are whatever GDAL reads through pyogrio; gzip files are read in place through
``/vsigzip/``. Geometry is repaired or dropped here, once, so the stages downstream can
assume valid, single-part, metric geometry.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from voirie.city import City, StreetLayer, ZoneLayer
from voirie.errors import CityConfigError


def gdal_path(path: Path) -> str:
    """The path as GDAL wants it: gzip files through the ``/vsigzip/`` handler."""
    text = str(path)
    return f"/vsigzip/{text}" if text.endswith(".gz") else text


def read_layer(path: Path, metric_crs: str) -> gpd.GeoDataFrame:
    """Read a vector layer and reproject it to ``metric_crs``; a missing CRS is an error."""
    frame = gpd.read_file(gdal_path(path))
    if frame.crs is None:
        raise CityConfigError([f"{path}: the layer has no CRS; declare it in the source file"])
    frame = frame[~(frame.geometry.isna() | frame.geometry.is_empty)]
    return frame.to_crs(metric_crs)


def segment_ids(lines: gpd.GeoSeries) -> np.ndarray:
    """Stable ids for segments whose source has none: a digest of the WGS84 geometry.

    Computed on coordinates rounded to 1e-7 degrees (about 1 cm) so that the same street
    file, reloaded or reordered, gives the same ids.
    """
    wgs84 = shapely.set_precision(lines.to_crs(4326).values, 1e-7)
    return np.array(
        [hashlib.sha1(wkb).hexdigest()[:12] for wkb in shapely.to_wkb(wgs84)], dtype=object
    )


def load_streets(city: City, layer: StreetLayer) -> gpd.GeoDataFrame:
    """Street segments with ``segment_id``, ``street_name`` and the attributes city.yaml names."""
    frame = read_layer(city.path(layer.path), city.metric_crs)
    frame = frame.explode(index_parts=False, ignore_index=True)
    frame = frame[frame.geom_type == "LineString"]
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
    return out.drop_duplicates("segment_id", ignore_index=True)


def load_zones(city: City, layer: ZoneLayer) -> gpd.GeoDataFrame:
    """Zone polygons with ``code`` and ``name``, invalid geometry repaired."""
    frame = read_layer(city.path(layer.path), city.metric_crs)
    geometry = frame.geometry.make_valid()
    polygonal = geometry.geom_type.isin(["Polygon", "MultiPolygon"])
    return gpd.GeoDataFrame(
        {
            "code": frame[layer.code_field].astype(str).to_numpy()[polygonal.to_numpy()],
            "name": frame[layer.name_field].astype("string").to_numpy()[polygonal.to_numpy()],
        },
        geometry=geometry[polygonal].to_numpy(),
        crs=frame.crs,
    )
