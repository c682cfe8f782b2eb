"""Streamed layer writers: GeoJSON, CSV, GeoPackage and zipped Shapefile, in any CRS.

Every writer takes the layer as an iterable of chunks (``Reads.iter_layer``) so that
memory stays flat whatever the size of the layer: GeoJSON and CSV are produced chunk by
chunk as bytes, GeoPackage and Shapefile are appended to a file chunk by chunk.

- GeoJSON: one FeatureCollection; in another CRS than WGS84 it carries the CRS name
  (``urn:ogc:def:crs:EPSG::2154``) as GDAL writes it, axis order x/y.
- CSV: every attribute, plus ``x``/``y`` in the chosen CRS and ``wkt``.
- GeoPackage: datetimes are real DATETIME fields (UTC); every column gets its French title
  in ``gpkg_data_columns`` (GeoPackage schema extension), which QGIS shows as the alias.
- Shapefile (zip): field names cut to 10 characters (``SHAPEFILE_NAMES``), datetimes as
  ISO 8601 text (the format has no date-time type); a ``fields.csv`` in the archive maps
  each short name to the full name and its French title.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from voirie.codecs.csvsafe import safe_row, safe_table
from voirie.errors import InvalidInput
from voirie.services.pipeline import Pipeline
from voirie.store.selection import EVERYTHING, Layer, Selection
from voirie.values import aware_utc

Format = Literal["csv", "geojson", "gpkg", "zip"]
FORMATS: tuple[Format, ...] = ("csv", "geojson", "gpkg", "zip")
MEDIA_TYPES: dict[Format, str] = {
    "csv": "text/csv; charset=utf-8",
    "geojson": "application/geo+json",
    "gpkg": "application/geopackage+sqlite3",
    "zip": "application/zip",
}
WGS84 = "EPSG:4326"
CHUNK_SIZE = 20_000
ID_COLUMNS: dict[Layer, str] = {"reports": "report_id", "incidents": "incident_id"}

TITLES_FR: dict[str, str] = {
    "report_id": "Identifiant du signalement",
    "external_id": "Identifiant d'origine",
    "source": "Source",
    "service_code": "Code du service",
    "service_name": "Service",
    "description": "Description",
    "address": "Adresse",
    "channel": "Canal",
    "lon": "Longitude (WGS84)",
    "lat": "Latitude (WGS84)",
    "requested_at": "Date du signalement",
    "received_at": "Date de réception",
    "segment_id": "Tronçon de voie",
    "street_name": "Nom de la voie",
    "snap_distance_m": "Distance à la voie (m)",
    "position_m": "Position le long du tronçon (m)",
    "side": "Côté de la voie",
    "snap_method": "Méthode de rattachement",
    "boundary_distance_m": "Distance à la limite de zone (m)",
    "off_network": "Hors réseau",
    "outside_territory": "Hors territoire",
    "near_boundary": "Proche d'une limite",
    "incident_id": "Identifiant de l'incident",
    "dedupe_score": "Score de regroupement",
    "dedupe_reason": "Motif du regroupement",
    "team": "Équipe",
    "status": "Statut",
    "origin_report_id": "Premier signalement",
    "priority": "Priorité",
    "due_at": "Échéance",
    "report_count": "Nombre de signalements",
    "first_reported_at": "Premier signalement le",
    "last_reported_at": "Dernier signalement le",
    "updated_at": "Mis à jour le",
    "rule_id": "Règle d'affectation",
    "rule_version": "Version de la règle",
    "routing_reason": "Motif de l'affectation",
    "x": "X (SCR choisi)",
    "y": "Y (SCR choisi)",
    "wkt": "Géométrie (WKT)",
}
"""French titles of the public columns; a ``zone_<layer>`` column is titled "Zone <layer>"."""


def layer_chunks(
    pipeline: Pipeline,
    layer: Layer,
    selection: Selection = EVERYTHING,
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[gpd.GeoDataFrame]:
    """The selected rows in chunks; one empty chunk (with the columns) when none match."""
    empty = True
    for chunk in pipeline.reads.iter_layer(layer, selection, chunk_size):
        empty = False
        yield chunk
    if empty:
        read = pipeline.reads.reports if layer == "reports" else pipeline.reads.incidents
        yield read(replace(selection, limit=0, offset=0))


def _values(text: str | None) -> tuple[str, ...] | None:
    """A comma-separated list (None when not given)."""
    if text is None or not text.strip():
        return None
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _instant(text: str | None, name: str) -> datetime | None:
    if text is None or not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidInput(
            f"{name}: {text!r} is not an ISO 8601 date or date-time", field=name
        ) from exc
    try:
        # In UTC here, as the stores compare it: year 1 with a positive offset (or 9999
        # with a negative one) is outside what a datetime holds, a 500 in the store.
        return aware_utc(moment).astimezone(UTC)
    except OverflowError as exc:
        raise InvalidInput(f"{name}: {text!r} is out of range", field=name) from exc


def download_selection(
    *,
    status: str | None = None,
    service: str | None = None,
    team: str | None = None,
    zone: str | None = None,
    bbox: str | None = None,
    start: str | None = None,
    end: str | None = None,
) -> Selection:
    """The filters of a download (HTTP query or CLI options) as a selection.

    Lists are comma-separated; ``zone`` is ``layer:code``; ``bbox`` is
    ``minlon,minlat,maxlon,maxlat`` in WGS84; ``start``/``end`` are ISO 8601 (UTC if no
    offset) and keep reports requested, or incidents active, between them.
    """
    zone_pair = None
    if zone:
        layer, _, code = zone.partition(":")
        if not layer or not code:
            raise InvalidInput(f"zone: expected layer:code, got {zone!r}", field="zone")
        zone_pair = (layer, code)
    box = None
    if bbox:
        try:
            x0, y0, x1, y1 = (float(v) for v in bbox.split(","))
        except ValueError as exc:
            raise InvalidInput(
                f"bbox: expected minlon,minlat,maxlon,maxlat, got {bbox!r}", field="bbox"
            ) from exc
        if x0 > x1 or y0 > y1:
            raise InvalidInput("bbox: the lower corner must come first", field="bbox")
        box = (x0, y0, x1, y1)
    return Selection(
        statuses=_values(status),
        service_codes=_values(service),
        teams=_values(team),
        zone=zone_pair,
        bbox=box,
        start=_instant(start, "start"),
        end=_instant(end, "end"),
    )


def check_crs(crs: str | None) -> str | None:
    """An output CRS GDAL and pyproj understand (e.g. ``EPSG:2154``), or InvalidInput."""
    if crs is None:
        return None
    try:
        CRS.from_user_input(crs)
    except CRSError as exc:
        raise InvalidInput(f"crs: unknown CRS {crs!r} (e.g. EPSG:2154)", field="crs") from exc
    return crs


def title_fr(column: str) -> str:
    """The French title of a column (``zone_<layer>`` columns get the layer's name)."""
    if column in TITLES_FR:
        return TITLES_FR[column]
    if column.startswith("zone_"):
        return "Zone " + column.removeprefix("zone_").replace("_", " ")
    return column


def _project(frame: gpd.GeoDataFrame, crs: str | None) -> gpd.GeoDataFrame:
    """The frame in ``crs`` (unchanged when None or already there)."""
    if crs is None or (frame.crs is not None and CRS.from_user_input(crs) == frame.crs):
        return frame
    return frame.to_crs(crs)


def _records(table: pd.DataFrame) -> pd.Series:
    """Each row as one JSON object, from one call of pandas' C encoder (dates ISO 8601 UTC,
    NaN as null).

    The encoder escapes every quote inside strings, so in its output ``},{"`` only occurs
    between two records of flat rows: splitting there is safe, and much faster than
    pandas' own line-delimited mode.
    """
    if not len(table):
        return pd.Series([], dtype=object)
    table = table.copy(deep=False)
    for name in table.columns:
        if isinstance(table[name].dtype, pd.DatetimeTZDtype):
            # numpy formats datetimes ten times faster than the JSON encoder does.
            column = table[name]
            text = np.datetime_as_string(
                column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ms]"),
                unit="ms",
                timezone="UTC",
            )
            table[name] = pd.Series(text, index=table.index, dtype=object).where(
                column.notna(), None
            )
    text = table.to_json(orient="records", date_format="iso", force_ascii=False)
    return '{"' + pd.Series(text[3:-2].split('},{"'), dtype=object) + "}"


def _json_ids(ids: pd.Series) -> pd.Series:
    """Feature ids as JSON values: integers as digits, anything else as JSON strings."""
    if pd.api.types.is_integer_dtype(ids.dtype):
        return ids.astype("int64").astype(str).astype(object)
    return _records(pd.DataFrame({"id": ids.to_numpy()})).str.slice(len('{"id":'), -1)


def geojson_features(frame: gpd.GeoDataFrame, id_column: str) -> str:
    """The rows of a frame as GeoJSON Feature objects joined by commas (no loop per row).

    ``id_column`` becomes the feature ``id`` and stays among the properties.
    """
    if not len(frame):
        return ""
    geometry = pd.Series(shapely.to_geojson(frame.geometry.to_numpy()), dtype=object)
    geometry = geometry.where(geometry.notna(), "null")
    ids = _json_ids(frame[id_column].reset_index(drop=True))
    heads = '{"type":"Feature","id":' + ids + ',"geometry":' + geometry + ',"properties":'
    properties = _records(pd.DataFrame(frame.drop(columns=frame.geometry.name)))
    # Interleaved and joined once: the large property texts are copied a single time.
    parts = np.empty(3 * len(frame), dtype=object)
    parts[0::3] = heads.to_numpy()
    parts[1::3] = properties.to_numpy()
    parts[2::3] = "},\n"
    parts[-1] = "}"
    return "".join(parts.tolist())


def _crs_member(crs: str | None) -> str:
    """The legacy GeoJSON ``crs`` member GDAL reads, for output that is not WGS84."""
    if crs is None or CRS.from_user_input(crs) == CRS.from_epsg(4326):
        return ""
    authority = CRS.from_user_input(crs).to_authority()
    if authority is None:
        return ""
    name = f"urn:ogc:def:crs:{authority[0]}::{authority[1]}"
    return f'"crs":{{"type":"name","properties":{{"name":"{name}"}}}},'


def geojson_chunks(
    frames: Iterable[gpd.GeoDataFrame], id_column: str, crs: str | None = None
) -> Iterator[bytes]:
    """A FeatureCollection as a stream of byte chunks, one per input chunk."""
    yield ('{"type":"FeatureCollection",' + _crs_member(crs) + '"features":[\n').encode()
    separator = ""
    for frame in frames:
        text = geojson_features(_project(frame, crs), id_column)
        if text:
            yield (separator + text).encode("utf-8")
            separator = ",\n"
    yield b"\n]}\n"


def _csv_table(frame: gpd.GeoDataFrame) -> pd.DataFrame:
    """Attributes plus x, y and WKT of the geometry, in the frame's CRS."""
    table = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    geometry = frame.geometry.to_numpy()
    table["x"] = shapely.get_x(geometry)
    table["y"] = shapely.get_y(geometry)
    table["wkt"] = shapely.to_wkt(geometry, rounding_precision=-1)
    for name in table.columns:
        if isinstance(table[name].dtype, pd.DatetimeTZDtype):
            table[name] = _iso(table[name])
    return table


def _iso(column: pd.Series) -> pd.Series:
    """Datetimes as ISO 8601 UTC text with their offset, ``+00:00`` (nulls kept)."""
    utc = column.dt.tz_convert("UTC")
    text: pd.Series = utc.dt.strftime("%Y-%m-%dT%H:%M:%S+00:00").astype(object)
    return text.where(column.notna(), None)


def csv_chunks(frames: Iterable[gpd.GeoDataFrame], crs: str | None = None) -> Iterator[bytes]:
    """CSV with a header then one block of rows per chunk."""
    header = True
    for frame in frames:
        buffer = io.StringIO()
        safe_table(_csv_table(_project(frame, crs))).to_csv(buffer, index=False, header=header)
        header = False
        yield buffer.getvalue().encode("utf-8")


def _gdal_ready(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Text columns as plain objects with None for missing values, which every driver writes."""
    out = frame.copy()
    for name in out.columns:
        if name == out.geometry.name:
            continue
        column = out[name]
        if pd.api.types.is_string_dtype(column.dtype) or column.dtype == object:
            out[name] = column.astype(object).where(column.notna(), None)
    return out


def write_gpkg(
    frames: Iterable[gpd.GeoDataFrame], path: Path, layer: str, crs: str | None = None
) -> int:
    """Append chunks to a GeoPackage layer, then add the French column titles; rows written."""
    written = 0
    columns: list[str] = []
    for frame in frames:
        out = _gdal_ready(_project(frame, crs))
        pyogrio.write_dataframe(
            out,
            path,
            layer=layer,
            driver="GPKG",
            append=written > 0,
            # GeoPackage 1.3: the R*Tree triggers every reader and validator knows.
            dataset_options=None if written else {"VERSION": "1.3"},
        )
        written += len(out)
        columns = [c for c in out.columns if c != out.geometry.name]
    _titles(path, layer, columns)
    return written


_DATA_COLUMNS_DDL = """
CREATE TABLE IF NOT EXISTS gpkg_data_columns (
  table_name TEXT NOT NULL, column_name TEXT NOT NULL, name TEXT, title TEXT,
  description TEXT, mime_type TEXT, constraint_name TEXT,
  CONSTRAINT pk_gdc PRIMARY KEY (table_name, column_name),
  CONSTRAINT gdc_tn UNIQUE (table_name, name));
CREATE TABLE IF NOT EXISTS gpkg_data_column_constraints (
  constraint_name TEXT NOT NULL, constraint_type TEXT NOT NULL, value TEXT,
  min NUMERIC, min_is_inclusive BOOLEAN, max NUMERIC, max_is_inclusive BOOLEAN,
  description TEXT,
  CONSTRAINT gdcc_ntv UNIQUE (constraint_name, constraint_type, value));
INSERT OR IGNORE INTO gpkg_extensions VALUES
  ('gpkg_data_columns', NULL, 'gpkg_schema',
   'http://www.geopackage.org/spec/#extension_schema', 'read-write'),
  ('gpkg_data_column_constraints', NULL, 'gpkg_schema',
   'http://www.geopackage.org/spec/#extension_schema', 'read-write');
"""


def _titles(path: Path, layer: str, columns: list[str]) -> None:
    """Record each column's French title in the GeoPackage schema extension."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS gpkg_extensions (table_name TEXT, "
                "column_name TEXT, extension_name TEXT NOT NULL, definition TEXT NOT NULL, "
                "scope TEXT NOT NULL, CONSTRAINT ge_tce UNIQUE "
                "(table_name, column_name, extension_name))"
            )
            conn.executescript(_DATA_COLUMNS_DDL)
            conn.executemany(
                "INSERT OR REPLACE INTO gpkg_data_columns "
                "(table_name, column_name, name, title) VALUES (?, ?, ?, ?)",
                [(layer, c, title_fr(c), title_fr(c)) for c in columns],
            )
    finally:
        conn.close()


def shapefile_names(columns: Iterable[str]) -> dict[str, str]:
    """Unique Shapefile field names (at most 10 characters) for the given column names."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for column in columns:
        short = column[:10]
        n = 1
        while short.lower() in taken:
            suffix = str(n)
            short = column[: 10 - len(suffix)] + suffix
            n += 1
        taken.add(short.lower())
        names[column] = short
    return names


def write_shapefile_zip(
    frames: Iterable[gpd.GeoDataFrame], path: Path, layer: str, crs: str | None = None
) -> int:
    """A zipped Shapefile (``layer.shp`` and companions, plus ``fields.csv``); rows written."""
    written = 0
    with tempfile.TemporaryDirectory(prefix="voirie-shp-") as folder:
        target = Path(folder) / f"{layer}.shp"
        names: dict[str, str] = {}
        for frame in frames:
            out = _gdal_ready(_project(frame, crs))
            for name in out.columns:
                if isinstance(out[name].dtype, pd.DatetimeTZDtype):
                    out[name] = _iso(out[name])
            names = shapefile_names(c for c in out.columns if c != out.geometry.name)
            out = out.rename(columns=names)
            pyogrio.write_dataframe(
                out,
                target,
                layer=layer,
                driver="ESRI Shapefile",
                append=written > 0,
                layer_options={"ENCODING": "UTF-8"},
            )
            written += len(out)
        fields = io.StringIO()
        writer = csv.writer(fields)
        writer.writerow(["shapefile_field", "column", "title_fr"])
        writer.writerows(
            safe_row([short, column, title_fr(column)]) for column, short in names.items()
        )
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for part in sorted(Path(folder).iterdir()):
                archive.write(part, part.name)
            archive.writestr("fields.csv", fields.getvalue())
    return written


def write_layer(
    frames: Iterable[gpd.GeoDataFrame],
    path: Path,
    fmt: Format,
    *,
    id_column: str,
    crs: str | None = None,
    layer: str = "layer",
) -> int:
    """Write a layer to a file chunk by chunk, reprojected to ``crs`` when given; rows written."""
    if fmt == "gpkg":
        return write_gpkg(frames, path, layer, crs)
    if fmt == "zip":
        return write_shapefile_zip(frames, path, layer, crs)
    counted = _Counted(frames)
    chunks = (
        geojson_chunks(counted, id_column, crs) if fmt == "geojson" else csv_chunks(counted, crs)
    )
    with path.open("wb") as out:
        for chunk in chunks:
            out.write(chunk)
    return counted.rows


class _Counted:
    """Passes chunks through, counting their rows."""

    def __init__(self, frames: Iterable[gpd.GeoDataFrame]) -> None:
        self.frames = frames
        self.rows = 0

    def __iter__(self) -> Iterator[gpd.GeoDataFrame]:
        for frame in self.frames:
            self.rows += len(frame)
            yield frame
