"""Column mappings: which source column holds which report field.

Each import format is a mapping (DansMaRue and Open311 JSON ship with one); the generic CSV
format reads one from a YAML file, so a partner's export imports without code.
"""

from __future__ import annotations

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
    lat: str
    lon: str
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
        default=None, description="strftime format of requested_at; ISO 8601 when absent"
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
        return self

    def required_columns(self) -> list[str]:
        """Columns a source must have for any row to be imported (see ``category_columns``)."""
        return [self.external_id, self.lat, self.lon, self.requested_at]

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
