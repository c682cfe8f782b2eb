"""Checking a city's reference layers before using them: ``voirie layers check CITY_DIR``.

Every layer city.yaml names is opened and measured (features, CRS, extent in the city's
CRS, what loading would repair or drop, how complete each named attribute is), and every
problem found is reported: one broken layer does not hide the problems of the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio.errors
from pyproj.exceptions import CRSError, ProjError

from voirie.city import City, StreetLayer, ZoneLayer, load_city
from voirie.gis.layers import (
    GeometryKind,
    LayerStats,
    clean_geometry,
    read_source,
    street_fields,
    streets_from,
    zone_fields,
    zones_from,
)


@dataclass
class LayerReport:
    """What one reference layer holds and what is wrong with it."""

    name: str
    """``streets``, or the zone layer's name"""
    key: str
    """where city.yaml declares it (``streets``, ``zones[1]``)"""
    path: Path
    """the file, relative to the city folder as city.yaml names it"""
    features: int | None = None
    crs: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    """extent (minx, miny, maxx, maxy) in the city's metric CRS"""
    stats: LayerStats | None = None
    coverage: dict[str, float] = field(default_factory=dict)
    """share of features with a value, per attribute city.yaml names"""
    problems: list[str] = field(default_factory=list)
    """what makes the layer unusable as configured"""
    notes: list[str] = field(default_factory=list)
    """what loading repairs or drops by itself"""


def check_city_layers(city_dir: str | Path) -> list[LayerReport]:
    """Check every layer of a city folder; city.yaml itself must be valid.

    Raises ``CityConfigError`` only for problems of city.yaml; a missing, unreadable or
    incomplete layer file is reported in its ``LayerReport``.
    """
    city = load_city(city_dir, check_files=False)
    reports: list[LayerReport] = []
    if city.config.streets is not None:
        reports.append(_check(city, "streets", "streets", city.config.streets))
    for i, zone in enumerate(city.config.zones):
        reports.append(_check(city, zone.name, f"zones[{i}]", zone))
    return reports


def _check(city: City, name: str, key: str, layer: StreetLayer | ZoneLayer) -> LayerReport:
    report = LayerReport(name=name, key=key, path=Path(layer.path))
    where = f"{layer.path} ({key})"
    path = city.path(layer.path)
    if not path.is_file():
        report.problems.append(f"{where}: file not found in {city.folder}")
        return report
    try:
        source = read_source(path)
    except pyogrio.errors.CRSError as exc:
        report.problems.append(f"{where}: unknown CRS: {exc}")
        return report
    except Exception as exc:  # GDAL's errors vary by driver; all mean the same here.
        report.problems.append(f"{where}: unreadable: {exc}")
        return report
    report.features = len(source)
    if source.crs is None:
        report.problems.append(
            f"{where}: no CRS (unknown CRS): declare it in the file (a .prj for a shapefile)"
        )
    else:
        report.crs = source.crs.to_string()
    fields = street_fields(layer) if isinstance(layer, StreetLayer) else zone_fields(layer, key)
    missing = [(k, attr) for k, attr in fields if attr not in source.columns]
    for field_key, attr in missing:
        others = ", ".join(c for c in source.columns if c != source.geometry.name)
        report.problems.append(
            f"{where}: attribute {attr!r} ({key}.{field_key.split('.', 1)[1]}) not found; "
            f"the layer has: {others}"
        )
    for _, attr in fields:
        if attr in source.columns:
            report.coverage[attr] = float(pd.notna(source[attr]).mean()) if len(source) else 0.0
    metric = city.metric_crs if source.crs is not None else None
    try:
        frame, stats = _load(source, layer, metric, complete=not missing)
    except (CRSError, ProjError) as exc:
        report.problems.append(f"{where}: unknown CRS {report.crs}: {exc}")
        return report
    report.stats = stats
    if metric is not None and len(frame):
        minx, miny, maxx, maxy = (float(v) for v in frame.total_bounds)
        report.bbox = (minx, miny, maxx, maxy)
    if len(source) and not stats.kept:
        report.problems.append(f"{where}: no usable feature")
    report.notes += _notes(where, stats, "lines" if isinstance(layer, StreetLayer) else "polygons")
    return report


def _load(
    source: gpd.GeoDataFrame,
    layer: StreetLayer | ZoneLayer,
    metric_crs: str | None,
    complete: bool,
) -> tuple[gpd.GeoDataFrame, LayerStats]:
    """The layer as ``load_*`` builds it when it can; its cleaned geometry otherwise."""
    if complete and metric_crs is not None:
        loaded = (
            streets_from(source, layer, metric_crs)
            if isinstance(layer, StreetLayer)
            else zones_from(source, layer, metric_crs)
        )
        return loaded.frame, loaded.stats
    kind: GeometryKind = "lines" if isinstance(layer, StreetLayer) else "polygons"
    return clean_geometry(source, kind, metric_crs)


def _notes(where: str, stats: LayerStats, kind: GeometryKind) -> list[str]:
    wrong = "non-linear" if kind == "lines" else "non-polygonal"
    counts = [
        (stats.empty, "empty geometry dropped", "empty geometries dropped"),
        (
            stats.repaired,
            "invalid polygon repaired (make_valid)",
            "invalid polygons repaired (make_valid)",
        ),
        (stats.rejected, f"{wrong} feature dropped", f"{wrong} features dropped"),
        (stats.duplicates, "duplicate segment id dropped", "duplicate segment ids dropped"),
    ]
    return [f"{where}: {n} {one if n == 1 else many}" for n, one, many in counts if n]
