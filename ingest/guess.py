"""A column mapping guessed from a CSV's header and values, for a city's first import.

``voirie city init --format csv`` without ``--mapping`` drafts one rather than refuse: each
field takes the first column whose name is one of the usual names of that field in open
311 and incident exports (Open311, Socrata, Opendatasoft, DansMaRue; English, French,
Spanish, Italian, German) *and* whose values fit it: an id unique on every row, positions
validation reads for most rows, dates one format reads for most rows (the format is then
part of the mapping: ISO 8601, or day-first or month-first as the values tell). Names are
compared folded (case, accents, spaces and punctuation ignored). The guess is written
beside city.yaml as ``mapping.yaml``, for a person to read and correct, and ``voirie
import`` uses it when given no ``--mapping``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import pandas as pd

from voirie.city import CODE_PATTERN
from voirie.errors import SourceError
from voirie.ingest.mapping import ColumnMapping
from voirie.ingest.points import split_points
from voirie.ingest.sources import RawTable

MOST = 0.9
"""Share of a column's non-blank values that must fit its field."""
NAMES: dict[str, tuple[str, ...]] = {
    "external_id": (
        "service_request_id", "sr_number", "request_id", "ticket_id", "case_id",
        "case_number", "incident_id", "unique_key", "id_dmr", "id", "identifiant",
        "numero", "number", "objectid",
    ),
    "lat": ("latitude", "lat", "lat_wgs84", "latitud", "latitudine", "breitengrad", "y"),
    "lon": (
        "longitude", "long", "lon", "lng", "lon_wgs84", "longitud", "longitudine",
        "laengengrad", "x",
    ),
    "point": (
        "geo_point_2d", "geo_point", "geopoint", "location", "point", "coordinates",
        "wkt", "the_geom", "geometry", "geom",
    ),
    "requested_at": (
        "requested_datetime", "created_date", "created_at", "creation_date", "date_creation",
        "datedecl", "date_declaration", "date_signalement", "reported_date", "date_reported",
        "open_date", "opened", "created", "requested_at", "date", "datetime", "fecha",
        "data", "datum",
    ),
    "service_name": (
        "service_name", "sr_type", "complaint_type", "request_type", "soustype", "sous_type",
        "subcategory", "sub_category", "problem_type", "issue_type", "category", "categorie",
        "type", "categoria", "tipo", "kategorie",
    ),
    "service_code": (
        "service_code", "sr_short_code", "code_service", "service_type_code", "category_code",
        "type_code", "code_categorie", "code_type",
    ),
    "group_name": ("type", "category", "categorie", "group", "service_group", "famille"),
    "address": (
        "address", "street_address", "incident_address", "address_string", "adresse",
        "direccion", "indirizzo", "adresse_complete", "anschrift",
    ),
    "description": ("description", "descr", "details", "comments", "commentaire", "detail"),
    "channel": ("origin", "channel", "canal", "prefixe", "source_channel"),
}  # fmt: skip
TEAM_NAMES = (
    "agency_responsible", "owner_department", "responsible_agency", "intervenant",
    "assigned_team", "assigned_to", "assigned_department", "agency_name", "agency",
    "department", "team", "equipe", "service_responsable", "direction", "responsable",
    "organisme", "dienststelle", "zustaendigkeit", "responsabile", "ufficio",
)  # fmt: skip
"""Usual names of a column naming the team (department, agency) that handled a report:
Open311's ``agency_responsible``, Chicago's ``owner_department``, DansMaRue's
``intervenant``..., most telling first."""
MAX_TEAMS = 200
"""More distinct values than this (or than a fifth of the rows) is not a list of teams."""
DATE_FORMATS = (
    "ISO8601",
    "%m/%d/%Y %I:%M:%S %p",  # Socrata
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y",
    "%Y/%m/%d %H:%M:%S",
)
"""Formats tried for a date column, in order: the first that reads ``MOST`` of it wins,
so day-first and month-first are told apart by a day after the 12th."""
_FOLD = re.compile(r"[^a-z0-9]+")


def _folded(name: str) -> str:
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return _FOLD.sub("_", text).strip("_")


def _by_folded_name(columns: Sequence[str]) -> dict[str, str]:
    """Each folded column name and the first column that has it."""
    by_name: dict[str, str] = {}
    for column in columns:
        by_name.setdefault(_folded(column), column)
    return by_name


def _values(rows: pd.DataFrame, column: str) -> pd.Series:
    """The column's non-blank values, stripped."""
    cells = rows[column].astype(object)
    stripped = cells[cells.notna()].astype(str).str.strip()
    return stripped[stripped != ""]


def _fits(values: pd.Series, field: str, rows: int) -> bool:
    """Whether most of a column's values fit the field (an id: every value unique, on
    most of the ``rows``)."""
    if values.empty:
        return False
    if field == "external_id":
        return bool(values.is_unique) and len(values) >= MOST * rows
    if field in ("lat", "lon"):
        number = pd.to_numeric(values.str.replace(",", ".", regex=False), errors="coerce")
        limit = 90 if field == "lat" else 180
        return bool((number.abs() <= limit).mean() >= MOST)
    if field == "point":
        x, _ = split_points(values)
        return bool(x.notna().mean() >= MOST)
    if field == "service_code":
        return bool(values.str.fullmatch(CODE_PATTERN).mean() >= MOST)
    return True


def _names_one_service(rows: pd.DataFrame, code: str, name: str) -> bool:
    """Whether each value of the ``code`` column goes with one value of ``name`` on most
    rows (a code of the service, not a code of something else beside it)."""
    both = rows[[code, name]].dropna().astype(str)
    if both.empty:
        return False
    names_per_code = both.groupby(code)[name].transform("nunique")
    return bool((names_per_code == 1).mean() >= MOST)


def _date_format(values: pd.Series) -> str | None:
    """The first of ``DATE_FORMATS`` that reads most of the values (None: none does)."""
    for fmt in DATE_FORMATS:
        parsed = pd.to_datetime(values, format=fmt, errors="coerce", utc=True)
        if parsed.notna().mean() >= MOST:
            return fmt
    return None


def guess_mapping(table: RawTable, source: str) -> tuple[ColumnMapping, list[str]]:
    """A mapping of ``table``'s columns named ``source``, and one line per field saying
    which column it took; ``SourceError`` naming the fields no column fits."""
    by_name = _by_folded_name(table.columns)
    rows, taken, chosen = table.rows, set[str](), dict[str, str]()

    def pick(field: str) -> str | None:
        for name in NAMES[field]:
            column = by_name.get(name)
            fits = column is not None and column not in taken
            if fits and _fits(_values(rows, str(column)), field, len(rows)):
                taken.add(str(column))
                chosen[field] = str(column)
                return column
        return None

    for field in ("external_id", "lat", "lon"):
        pick(field)
    if not ("lat" in chosen and "lon" in chosen):
        taken.difference_update(chosen.pop(key) for key in ("lat", "lon") if key in chosen)
        pick("point")
    date_format = None
    if dates := pick("requested_at"):
        date_format = _date_format(_values(rows, dates))
        if date_format is None:
            taken.discard(chosen.pop("requested_at"))
    fields = ("service_name", "service_code", "group_name", "address", "description", "channel")
    for field in fields:
        pick(field)
    code, name = chosen.get("service_code"), chosen.get("service_name")
    if code is not None and (name is None or not _names_one_service(rows, code, name)):
        taken.discard(chosen.pop("service_code"))
    lacking = _lacking(chosen)
    if lacking:
        raise SourceError(
            f"reports: no --mapping, and no column could be told to hold {', '.join(lacking)} "
            f"(columns: {', '.join(table.columns)}); write a mapping (see README)"
        )
    mapping = ColumnMapping.model_validate(
        {"source": source, "date_format": None if date_format == "ISO8601" else date_format}
        | chosen
    )
    said = [f"{field}: {column}" for field, column in chosen.items()]
    return mapping, said + ([f"date_format: {date_format}"] if date_format else [])


def guess_team_column(table: RawTable, mapping: ColumnMapping) -> str | None:
    """The column naming the team that handled each report, if one has a usual name
    (``TEAM_NAMES``), is not read by the mapping, is filled on half the rows or more and
    holds a short list of values (at least 2, at most ``MAX_TEAMS`` and a fifth of its
    filled rows); ``None`` when no column does."""
    mapped = {value for value in mapping.model_dump().values() if isinstance(value, str)}
    by_name = _by_folded_name(table.columns)
    for name in TEAM_NAMES:
        found = by_name.get(name)
        if found is None or found in mapped:
            continue
        values = _values(table.rows, found)
        teams = values.nunique()
        if len(values) >= len(table.rows) / 2 and 2 <= teams <= min(MAX_TEAMS, len(values) / 5):
            return found
    return None


def _lacking(chosen: dict[str, str]) -> Sequence[str]:
    """The fields a mapping needs that no column was found for."""
    needed = ("external_id", "requested_at", "service_name")
    lacking = [field for field in needed if field not in chosen]
    if not ("point" in chosen or ("lat" in chosen and "lon" in chosen)):
        lacking.append("the position (lat and lon, or a point)")
    return lacking


def mapping_yaml(mapping: ColumnMapping) -> str:
    """The mapping as the YAML a ``--mapping`` file holds (its set keys only)."""
    import yaml

    keys = mapping.model_dump(exclude_defaults=True)
    return yaml.safe_dump({"source": mapping.source, **keys}, sort_keys=False, allow_unicode=True)
