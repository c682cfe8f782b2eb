"""A new city in minutes: a city folder drafted from a city's own reports and layers.

``voirie city init`` writes ``city.yaml`` from what the files say, so that ``voirie import``
can use the folder as it is, and a person reviews it afterwards:

- **services** are the categories found in the reports (their code when the source has a
  code column that is a valid code, otherwise a stable code derived from the names, the
  same one ``voirie import`` derives), **groups** the source's group column or one group;
- **teams** come from a responsible-team column when there is one, and the **routing
  rules** are learned from it by the procedure the walk-forward folds chose
  (``rules_replay.learn``: the recency-weighted majority team of each service); without
  one, every report goes to triage until rules are written;
- **zones** are the given layers (code and name attributes recognised by their names and
  values); the **territory** is the first zone layer, or, without any, the reports' own
  extent (their convex hull, trimmed of stray points, 250 m wider);
- the **metric CRS** is the UTM zone of the reports' centre unless one is given;
- the **deduplication thresholds** are voirie's defaults (30 m, 7 days, same service),
  each marked as a default to review.

Layers are copied into ``layers/`` so the folder is self-contained, as a shipped city is.
"""

from __future__ import annotations

import gzip
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import yaml
from pyogrio.errors import DataSourceError
from pyproj import CRS
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info

from voirie.city import (
    CODE_PATTERN,
    DEFAULT_RADIUS_M,
    DEFAULT_WINDOW_DAYS,
    City,
    load_city,
    service_code_for,
    slug,
)
from voirie.errors import SourceError
from voirie.gis.enrich import CityGIS
from voirie.gis.layers import read_source
from voirie.ingest.mapping import ColumnMapping
from voirie.ingest.sources import RawTable
from voirie.ingest.validate import positions
from voirie.services.rules_replay import learn

CITY_FILE = "city.yaml"
DEFAULT_WHY = "voirie city init default: review against how this kind of problem is reported"
STAND_IN_SHARE = 0.5
"""Share of a service's located reports at one exact point that marks the point as a
stand-in (a call centre, a town hall, a district's centre) rather than where problems are:
such a service's reports are never merged (Chicago's day: 1,801 of 1,822 information calls
at the 311 centre)."""
STAND_IN_MIN_REPORTS = 10
TERRITORY_BUFFER_M = 250.0
# Share of reports left out at each end of latitude and longitude before the extent is
# drawn: a few reports geocoded to (0, 0) or to another city must not make the territory.
EXTENT_TRIM = 0.001
# Attribute names that say "the code" / "the name" of a zone or a street, in the languages
# of the cities voirie knows, most telling first.
CODE_HINTS = ("code", "c_", "num", "insee", "id")
NAME_HINTS = ("name", "nom", "libelle", "label", "l_", "community", "street", "voie")
# Formats GDAL reads from one file, copied as they are; anything else is converted.
SINGLE_FILE = (".geojson", ".json", ".gpkg", ".fgb", ".pbf", ".osm")
ONE_GROUP = {"fr": "Signalements", "de": "Meldungen"}


@dataclass(frozen=True)
class CitySources:
    """What a new city is drafted from (the reports already read with their mapping)."""

    name: str
    reports: RawTable
    mapping: ColumnMapping
    streets: Path | None = None
    zones: Sequence[Path] = ()
    team_column: str | None = None
    locale: str = "en"
    timezone: str = "UTC"
    metric_crs: str | None = None
    jurisdiction_id: str | None = None
    provenance: str = ""


@dataclass
class Draft:
    """What ``init_city`` wrote, for the person who ran it."""

    folder: Path
    city: City
    reports: int
    located: int
    rules: int
    left_to_triage: dict[str, str] = field(default_factory=dict)


def init_city(folder: Path, sources: CitySources, *, overwrite: bool = False) -> Draft:
    """Write a city folder at ``folder`` from ``sources`` and load it back (so every
    problem a city.yaml can have is found here, not at the first import)."""
    if (folder / CITY_FILE).exists() and not overwrite:
        raise SourceError(f"{folder / CITY_FILE} exists; give --force to replace it")
    created = not folder.exists()
    try:
        return _draft(folder, sources)
    except BaseException:
        if created:  # a refused input leaves nothing half-written behind
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _draft(folder: Path, sources: CitySources) -> Draft:
    """``init_city`` once the folder may be written."""
    rows = sources.reports.rows
    every_lon, every_lat = _positions(sources.reports, sources.mapping)
    located = np.isfinite(every_lon) & np.isfinite(every_lat)
    located &= (every_lon != 0) | (every_lat != 0)  # (0, 0): a position never geocoded
    every_lon[~located], every_lat[~located] = np.nan, np.nan
    lon, lat = every_lon[located], every_lat[located]
    if not len(lon):
        position = sources.mapping.position_field(sources.reports.columns)
        raise SourceError(
            f"reports: no row has a valid position in {position!r}; check --format/--mapping"
        )
    (folder / "layers").mkdir(parents=True, exist_ok=True)
    crs = sources.metric_crs or utm_crs(lon, lat)
    zones = [_zone_entry(folder, path) for path in sources.zones]
    if not zones:
        zones = [_territory_from_reports(folder, sources.name, lon, lat, crs)]
    services, groups = _catalogue(rows, sources.mapping, sources.locale, every_lon, every_lat)
    teams = _teams(rows, sources.team_column)
    doc: dict[str, Any] = {
        "name": sources.name,
        "jurisdiction_id": sources.jurisdiction_id or slug(sources.name, 64),
        "metric_crs": crs,
        "timezone": sources.timezone,
        "locale": sources.locale,
        "territory": {"layer": zones[0]["name"]},
        "near_boundary_m": 10,
        **({"streets": _street_entry(folder, sources.streets)} if sources.streets else {}),
        "zones": zones,
        "groups": groups,
        "services": services,
        "teams": teams,
        "routing": {"default_team": "triage", "rules": []},
    }
    _write(folder, doc, sources.provenance)
    _write_licence(folder, sources)
    city = load_city(folder)
    draft = Draft(folder, city, reports=len(rows), located=len(lon), rules=0)
    if sources.team_column:
        learned = learn(
            city,
            sources.reports,
            sources.mapping,
            sources.team_column,
            gis=CityGIS(city),
        )
        doc["routing"]["rules"] = [rule.entry() for rule in learned.rules]
        _write(folder, doc, sources.provenance)
        draft.city = load_city(folder)
        draft.rules = len(learned.rules)
        draft.left_to_triage = dict(learned.left_out)
    return draft


def utm_crs(lon: np.ndarray, lat: np.ndarray) -> str:
    """The WGS 84 UTM zone (an EPSG code) of the points' centre: metres, little distortion
    over a city."""
    x, y = float(np.median(lon)), float(np.median(lat))
    found = query_utm_crs_info(
        datum_name="WGS 84", area_of_interest=AreaOfInterest(x, y, x, y), contains=True
    )
    if not found:
        raise SourceError(f"reports: no UTM zone contains their centre ({y:.5f}, {x:.5f})")
    return f"{found[0].auth_name}:{found[0].code}"


def _positions(table: RawTable, mapping: ColumnMapping) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude of every report, read as validation reads them (decimal
    commas, a point column, the mapping's ``crs``); NaN where a report has none."""
    try:
        return positions(table, mapping)
    except SourceError as exc:
        raise SourceError(f"reports: {exc}") from None


def _territory_from_reports(
    folder: Path, name: str, lon: np.ndarray, lat: np.ndarray, crs: str
) -> dict[str, Any]:
    """A one-polygon zone layer around the reports, for a city that gave no zones."""
    if len(lon) >= 1000:
        lo_x, hi_x = np.quantile(lon, [EXTENT_TRIM, 1 - EXTENT_TRIM])
        lo_y, hi_y = np.quantile(lat, [EXTENT_TRIM, 1 - EXTENT_TRIM])
        keep = (lon >= lo_x) & (lon <= hi_x) & (lat >= lo_y) & (lat <= hi_y)
        lon, lat = lon[keep], lat[keep]
    points = gpd.GeoSeries(shapely.points(lon, lat), crs="EPSG:4326").to_crs(crs)
    hull = shapely.convex_hull(shapely.multipoints(points.to_numpy()))
    area = gpd.GeoDataFrame(
        {"code": ["1"], "name": [name]},
        geometry=[hull.buffer(TERRITORY_BUFFER_M)],
        crs=crs,
    ).to_crs("EPSG:4326")
    path = folder / "layers" / "territory.geojson.gz"
    path.write_bytes(gzip.compress(area.to_json().encode(), mtime=0))
    return {
        "name": "territory",
        "path": "layers/territory.geojson.gz",
        "code_field": "code",
        "name_field": "name",
        "label": "Territory (drawn around the reports by voirie city init)",
    }


def _copy_layer(folder: Path, source: Path, stem: str) -> str:
    """Copy a layer into ``layers/`` (GeoJSON gzipped, one-file formats as they are, the
    rest converted to GeoPackage) and return its path relative to the folder."""
    suffixes = "".join(source.suffixes).lower()
    if suffixes.endswith((".geojson", ".json")):
        target = f"layers/{stem}.geojson.gz"
        (folder / target).write_bytes(gzip.compress(source.read_bytes(), mtime=0))
    elif suffixes.endswith(SINGLE_FILE) or suffixes.endswith(".gz"):
        target = f"layers/{stem}{suffixes}"
        shutil.copyfile(source, folder / target)
    else:
        target = f"layers/{stem}.gpkg"
        read_source(source).to_file(folder / target, driver="GPKG", engine="pyogrio")
    return target


def _layer_name(path: Path) -> str:
    """A zone layer's code from its file name (``community_areas.geojson`` gives
    ``community_areas``)."""
    stem = path.name.split(".", 1)[0]
    return re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_").lower() or "zone"


def _pick(frame: pd.DataFrame, hints: Sequence[str], *, unique: bool, text: bool) -> str | None:
    """The attribute whose name best matches ``hints`` among those that qualify (every
    value present, and unique / textual when asked)."""
    qualifying = []
    for column in frame.columns:
        values = frame[column]
        kinds = (str,) if text else (str, int, np.integer)
        if values.isna().any() or not all(isinstance(v, kinds) for v in values):
            continue  # a blank, a decimal or a nested value cannot be a code or a name
        if unique and not values.is_unique:
            continue
        qualifying.append(str(column))
    for hint in hints:
        for column in qualifying:
            if column.lower().startswith(hint) or hint in column.lower():
                return column
    return qualifying[0] if qualifying else None


def _read(option: str, path: Path, kinds: tuple[str, ...]) -> gpd.GeoDataFrame:
    """A layer given on the command line, refused with the option's name when it is not a
    vector layer of ``kinds`` geometry with a CRS."""
    try:
        frame = read_source(path)
    except (DataSourceError, OSError) as exc:
        raise SourceError(f"{option} {path}: not a vector layer GDAL can read ({exc})") from exc
    if not isinstance(frame, gpd.GeoDataFrame) or frame.geometry.isna().all():
        raise SourceError(f"{option} {path}: the file has no geometry")
    if frame.crs is None:
        raise SourceError(f"{option} {path}: the layer declares no CRS")
    found = set(frame.geom_type.dropna())
    if not found <= set(kinds):
        wanted, seen = " or ".join(kinds), ", ".join(sorted(found))
        raise SourceError(f"{option} {path}: expected {wanted} geometry, found {seen}")
    return frame


def _zone_entry(folder: Path, path: Path) -> dict[str, Any]:
    """The city.yaml entry of a zone layer, its code and name attributes recognised."""
    frame = _read("--zones", path, ("Polygon", "MultiPolygon"))
    attributes = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    code = _pick(attributes, CODE_HINTS, unique=True, text=False)
    if code is None:
        raise SourceError(f"--zones {path}: no attribute has a distinct value for every zone")
    name = _pick(attributes, NAME_HINTS, unique=False, text=True) or code
    layer = _layer_name(path)
    return {
        "name": layer,
        "path": _copy_layer(folder, path, layer),
        "code_field": code,
        "name_field": name,
        "label": layer.replace("_", " ").capitalize(),
    }


def _is_text(value: object) -> bool:
    return isinstance(value, str)


def _street_entry(folder: Path, path: Path) -> dict[str, Any]:
    """The city.yaml entry of the street layer, its name attribute recognised."""
    frame = _read("--streets", path, ("LineString", "MultiLineString"))
    attributes = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    names = [c for c in attributes.columns if attributes[c].map(_is_text).mean() > 0.5]
    name = _pick(attributes[names].fillna(""), NAME_HINTS, unique=False, text=True)
    if name is None:
        raise SourceError(f"--streets {path}: no text attribute names the streets")
    return {"path": _copy_layer(folder, path, "streets"), "name_field": name}


def _text(rows: pd.DataFrame, column: str | None) -> pd.Series:
    """A source column as stripped text ("" where absent)."""
    if column is None or column not in rows:
        return pd.Series("", index=rows.index, dtype=object)
    return rows[column].fillna("").astype(str).str.strip()


def _catalogue(
    rows: pd.DataFrame, mapping: ColumnMapping, locale: str, lon: np.ndarray, lat: np.ndarray
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Services (one per category found) and their groups, with default thresholds; a
    service whose reports stand at one stand-in point is never merged (``_stand_in``)."""
    codes = _text(rows, mapping.service_code)
    names = _text(rows, mapping.service_name)
    group_names = _text(rows, mapping.group_name)
    found = pd.DataFrame({"code": codes, "name": names, "group": group_names})
    found["lon"], found["lat"] = lon, lat
    found = found[(found["code"] != "") | (found["name"] != "")]
    if found.empty:
        raise SourceError("reports: no row names a category (service code or name)")
    one_group = ONE_GROUP.get(locale.split("_", 1)[0], "Reports")
    found["group"] = found["group"].where(found["group"] != "", one_group)
    services: dict[str, dict[str, Any]] = {}
    groups: dict[str, str] = {}
    categories = ["code", "name", "group"]
    stand_ins = {key: _stand_in(points) for key, points in found.groupby(categories)}
    distinct = found[categories].drop_duplicates().sort_values(categories)
    for code, name, group in distinct.itertuples(index=False, name=None):
        service = code if CODE_PATTERN.match(code) else service_code_for(group, name or code)
        group_code = slug(group, 24) or "reports"
        groups.setdefault(group_code, group)
        entry = {"code": service, "name": name or service, "group": group_code}
        services.setdefault(service, entry)
        if "dedupe" not in services[service] and (why := stand_ins[(code, name, group)]):
            services[service]["dedupe"] = {
                "match": "never",
                "radius_m": DEFAULT_RADIUS_M,
                "window_days": DEFAULT_WINDOW_DAYS,
                "why": why,
            }
    group_entries = [
        {
            "code": code,
            "name": name,
            "dedupe": {
                "match": "service",
                "radius_m": DEFAULT_RADIUS_M,
                "window_days": DEFAULT_WINDOW_DAYS,
                "why": DEFAULT_WHY,
            },
        }
        for code, name in sorted(groups.items())
    ]
    return list(services.values()), group_entries


def _stand_in(points: pd.DataFrame) -> str | None:
    """Why a service's reports are never merged, when most of them stand at one exact
    point (``STAND_IN_SHARE``): that point is a stand-in, not where the problems are, and
    merging by distance would make every report there one incident."""
    located = points.dropna(subset=["lon", "lat"])
    if len(located) < STAND_IN_MIN_REPORTS:
        return None
    counts = located.round({"lon": 6, "lat": 6}).value_counts(["lon", "lat"])
    (lon, lat), top = counts.index[0], int(counts.iloc[0])
    if top < STAND_IN_SHARE * len(located):
        return None
    return (
        f"voirie city init: {top} of {len(located)} reports at one point ({lat:.5f}, "
        f"{lon:.5f}), a stand-in location rather than the place of a problem: never merged"
    )


def _teams(rows: pd.DataFrame, column: str | None) -> list[dict[str, str]]:
    """The teams named in the responsible-team column, most reports first."""
    if column is None:
        return []
    if column not in rows:
        raise SourceError(f"--team-column: the reports have no column {column!r}")
    values = _text(rows, column)
    counts = values[values != ""].value_counts()
    return [{"code": team, "name": team} for team in counts.index]


def _write(folder: Path, doc: dict[str, Any], provenance: str) -> None:
    """Write city.yaml under a header saying where it came from."""
    source = f" from {provenance}" if provenance else ""
    header = (
        f"# {doc['name']}: drafted by `voirie city init`{source}.\n"
        "# Review it before going live: thresholds marked as defaults, team names, zones.\n"
    )
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=100)
    (folder / CITY_FILE).write_text(header + text, encoding="utf-8")


def _write_licence(folder: Path, sources: CitySources) -> None:
    """LICENCE.md listing every source the folder was made from: its licence must be
    stated there before the city's data is published."""
    if (folder / "LICENCE.md").exists():
        return
    files = [p.name for p in (sources.streets, *sources.zones) if p is not None]
    lines = [
        f"# {sources.name}: sources and licences",
        "",
        "Drafted by `voirie city init`. State the licence and attribution of each source",
        "below before publishing (maps, OGC API and downloads show them).",
        "",
        f"- reports: {sources.provenance or 'the reports file given to voirie city init'}",
        *[f"- layer: {name}" for name in files],
        "",
    ]
    (folder / "LICENCE.md").write_text("\n".join(lines), encoding="utf-8")


def describe_crs(code: str) -> str:
    """A CRS code with its name, for the summary (``EPSG:32616 (WGS 84 / UTM zone 16N)``)."""
    return f"{code} ({CRS.from_user_input(code).name})"
