"""Writing report and incident layers as GeoJSON, GeoPackage or CSV, in any CRS.

Timestamps are written as ISO 8601 text with their offset so every tool reads the same
instant. CSV carries the coordinates as x/y in the chosen CRS plus WKT, so a spreadsheet
and GDAL both read it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import geopandas as gpd
import pandas as pd

Format = Literal["csv", "geojson", "gpkg"]
FORMATS: tuple[Format, ...] = ("csv", "geojson", "gpkg")
MEDIA_TYPES: dict[Format, str] = {
    "csv": "text/csv; charset=utf-8",
    "geojson": "application/geo+json",
    "gpkg": "application/geopackage+sqlite3",
}


def _plain(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Datetimes as ISO text and nullable types as plain objects, which every driver writes."""
    out = frame.copy()
    for name in out.columns:
        if name == out.geometry.name:
            continue
        column = out[name]
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            text = column.dt.strftime("%Y-%m-%dT%H:%M:%S%z").str.replace(
                r"(\+|-)(\d\d)(\d\d)$", r"\1\2:\3", regex=True
            )
            out[name] = text.astype(object).where(column.notna(), None)
        elif pd.api.types.is_string_dtype(column.dtype) or column.dtype == object:
            out[name] = column.astype(object).where(column.notna(), None)
    return out


def write_layer(frame: gpd.GeoDataFrame, path: Path, fmt: Format, *, crs: str | None = None,
                layer: str = "layer") -> None:
    """Write a layer to ``path`` in ``fmt``, reprojected to ``crs`` when given."""
    out = _plain(frame.to_crs(crs) if crs else frame)
    if fmt == "csv":
        table = pd.DataFrame(out.drop(columns=out.geometry.name))
        table["x"] = out.geometry.x
        table["y"] = out.geometry.y
        table["wkt"] = out.geometry.to_wkt()
        table.to_csv(path, index=False)
    elif fmt == "geojson":
        # RFC 7946 wants WGS84; another CRS is written with its name, as GDAL does.
        out.to_file(path, driver="GeoJSON", engine="pyogrio")
    else:
        out.to_file(path, driver="GPKG", layer=layer, engine="pyogrio")
