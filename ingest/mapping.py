"""Column mappings: which source column holds which report field.

Each import format is a mapping (DansMaRue and Open311 JSON ship with one); the generic CSV
format reads one from a YAML file, so a partner's export imports without code.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from voirie.errors import SourceError

_FIELD_ORDER = (
    "external_id",
    "lat",
    "lon",
    "point",
    "requested_at",
    "service_code",
    "service_name",
    "group_name",
    "description",
    "address",
    "channel",
    "media_url",
    "contact_name",
    "contact_email",
    "contact_phone",
    "device_id",
)


class ColumnMapping(BaseModel):
    """Source column for each report field; ``None`` when the source has no such column."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(description="name of the source, part of the external id's scope")
    external_id: str
    lat: str | None = None
    lon: str | None = None
    point: str | None = Field(
        default=None,
        description="a column holding the whole point ('lat, lon' as Opendatasoft's "
        "geo_point_2d, '(lat, lon)', WKT 'POINT (lon lat)', {'lon': x, 'lat': y}), read "
        "when the source has no lat and lon columns",
    )
    requested_at: str
    service_code: str | None = None
    service_name: str | None = None
    group_name: str | None = None
    description: str | None = None
    address: str | None = None
    channel: str | None = None
    media_url: str | None = None
    contact_name: str | None = None
    contact_email: str | None = None
    contact_phone: str | None = None
    device_id: str | None = None
    date_format: str | None = Field(
        default=None,
        description="strftime format of requested_at, or epoch / epoch_ms (seconds or "
        "milliseconds since 1970 UTC, as ArcGIS writes dates); ISO 8601 when absent",
    )
    other_date_formats: tuple[str, ...] = Field(
        default=(),
        description="strftime formats tried in order for a requested_at that date_format "
        "does not read (a source whose exports changed format over the years)",
    )
    crs: str | None = Field(
        default=None,
        description="reference system of the lon (x, easting) and lat (y, northing) columns, "
        "e.g. EPSG:2154 for Lambert-93; WGS 84 longitude and latitude when absent",
    )

    @field_validator("crs")
    @classmethod
    def _known_crs(cls, value: str | None) -> str | None:
        if value is not None:
            from voirie.ingest.reproject import known_crs

            known_crs(value)  # ValueError naming it, reported under the key
        return value

    @model_validator(mode="after")
    def _service(self) -> ColumnMapping:
        if self.service_code is None and self.service_name is None:
            raise ValueError("give 'service_code' or 'service_name' (the category column)")
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give 'lat' and 'lon' together")
        if self.lat is None and self.point is None:
            raise ValueError("give 'lat' and 'lon', or 'point' (the position's columns)")
        return self

    def date_formats(self) -> tuple[str, ...]:
        """The formats a ``requested_at`` is read in, in order (pandas' names)."""
        return (self.date_format or "ISO8601", *self.other_date_formats)

    def reads_point(self, columns: Collection[str]) -> bool:
        """Whether a source of ``columns`` gives positions in the ``point`` column: it is
        mapped, and the lat and lon columns are not (or not both in the source)."""
        pair = (self.lat, self.lon)
        return self.point is not None and not all(c is not None and c in columns for c in pair)

    def position_columns(self, columns: Collection[str]) -> list[str]:
        """The column(s) positions are read from in a source of ``columns``."""
        if self.reads_point(columns):
            return [str(self.point)]
        return [str(self.lat), str(self.lon)]

    def position_field(self, columns: Collection[str]) -> str:
        """The position's column(s) in a source of ``columns`` as an error names them
        (``lat/lon``, or the point)."""
        return "/".join(self.position_columns(columns))

    def missing_columns(self, columns: Collection[str]) -> list[str]:
        """Quoted names of the columns a source of ``columns`` lacks for any row to be
        imported (see ``category_columns``), in the order of the fields."""
        found = set(columns)
        missing = [repr(c) for c in (self.external_id,) if c not in found]
        positions = self.position_columns(found)
        if any(c not in found for c in positions):
            pair = [repr(c) for c in (self.lat, self.lon) if c is not None and c not in found]
            if self.point is None:
                missing += pair
            else:
                missing.append(
                    f"{' and '.join(pair)} (or {self.point!r})" if pair else repr(self.point)
                )
        return missing + [repr(c) for c in (self.requested_at,) if c not in found]

    def columns(self) -> list[str]:
        """Every source column the mapping reads, in the order of its fields, once each."""
        names = [getattr(self, name) for name in _FIELD_ORDER]
        return list(dict.fromkeys(name for name in names if name is not None))

    def category_columns(self) -> list[str]:
        """Columns naming the category; a source must have at least one of them."""
        return [col for col in (self.service_code, self.service_name) if col is not None]


DANSMARUE = ColumnMapping(
    source="dansmarue",
    external_id="id_dmr",
    lat="latitude",
    lon="longitude",
    requested_at="datedecl",
    service_name="soustype",
    group_name="type",
    address="adresse",
    channel="prefixe",
    point="geo_point_2d",  # the portal's own export has no latitude/longitude columns
    other_date_formats=("%d/%m/%Y", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M"),  # older exports
)

OPEN311 = ColumnMapping(
    source="open311",
    external_id="service_request_id",
    lat="lat",
    lon="long",
    requested_at="requested_datetime",
    service_code="service_code",
    service_name="service_name",
    description="description",
    address="address",
    media_url="media_url",
)


def load_mapping(path: Path) -> ColumnMapping:
    """Read a mapping YAML file, naming the file and key of every problem."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return ColumnMapping.model_validate(raw)
    except OSError as exc:
        raise SourceError(f"--mapping {path}: cannot read the file ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise SourceError(f"--mapping {path}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'mapping'}: {e['msg']}" for e in exc.errors()
        )
        raise SourceError(f"--mapping {path}: {problems}") from exc
