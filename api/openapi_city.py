"""The OpenAPI document states the city's data the server checks requests against.

An app serves one city, so its document can list what city.yaml allows: team codes,
service codes, zone layers, statuses, the CRS an export is offered in, the jurisdiction.
A generated client then offers only values the server takes, and a fuzzer generating
from the document finds no request valid by the schema and refused by the server: every
value declared here is refused with a 4xx naming the field when it is not listed
(``check_listed``, ``check_zone`` and the routes' own checks), and nothing is declared
for a parameter whose server accepts any value (a staff filter on an unknown team is
simply empty).

Patterns are JSON Schema regular expressions that accept what the server reads: lists are
comma-separated with blanks and surrounding spaces ignored (``voirie.maps.export``'s and
Open311's reading), and Open311 update statuses are read whatever their case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from voirie.api.open311.updates import FIXMYSTREET_STATUSES
from voirie.api.validation import STORABLE
from voirie.city import City
from voirie.codecs.mvt import MAX_ZOOM
from voirie.errors import InvalidInput
from voirie.model import Status

_SPACE = "[\\u0009\\u000a\\u000d\\u0020]*"
"""Spaces around a list item (what ``str.strip`` removes that a query may carry)."""


def _escaped(value: str) -> str:
    """``value`` as a JSON Schema regex literal (ECMA 262: the same escapes as Python's)."""
    return re.sub(r"([\\^$.|?*+()\[\]{}/-])", r"\\\1", value)


def one_of(values: Iterable[str]) -> str:
    """The regex alternation of ``values`` (longest first: no prefix shadows a value)."""
    return "|".join(_escaped(v) for v in sorted(set(values), key=lambda v: (-len(v), v)))


def list_of(values: Iterable[str]) -> str:
    """A comma-separated list of ``values``, blanks and spaces around items ignored."""
    item = f"{_SPACE}(({one_of(values)}){_SPACE})?"
    return f"^{item}(,{item})*$"


def _caseless(value: str) -> str:
    """``value`` matched in any case (JSON Schema regexes take no flags)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else _escaped(c) for c in value)


@dataclass(frozen=True)
class CityValues:
    """What city.yaml allows in a request, as the server checks it."""

    jurisdiction_id: str
    teams: tuple[str, ...]
    services: tuple[str, ...]
    zone_layers: tuple[str, ...]
    export_crs: tuple[str, ...]

    @classmethod
    def of(cls, city: City) -> CityValues:
        """The values of ``city``; exports are offered in the OGC API's CRS list
        (WGS84 both axis orders, the city's metric CRS, Lambert-93, Web Mercator)."""
        crs = ("EPSG:4326", "OGC:CRS84", city.metric_crs, "EPSG:2154", "EPSG:3857")
        return cls(
            jurisdiction_id=city.jurisdiction_id,
            teams=tuple(city.teams),
            services=tuple(city.services),
            zone_layers=tuple(zone.name for zone in city.config.zones),
            export_crs=tuple(dict.fromkeys(crs)),
        )

    def zone_pattern(self) -> str:
        """``layer:code`` with one of the city's zone layers (any storable code), or blank."""
        code = STORABLE.removeprefix("^").removesuffix("*$") + "+"
        return f"^(({one_of(self.zone_layers)}):{code})?$"


def check_listed(values: Iterable[str] | None, allowed: Iterable[str], field: str) -> None:
    """Refuse a value not in ``allowed``, naming ``field`` and the allowed values."""
    known = set(allowed)
    unknown = [v for v in values or () if v not in known]
    if unknown:
        shown = ", ".join(sorted(known)) if len(known) <= 12 else f"{len(known)} values"
        raise InvalidInput(
            f"{field}: unknown {', '.join(map(repr, unknown[:5]))}; one of {shown}", field=field
        )


def check_zone(zone: tuple[str, str] | None, layers: Iterable[str]) -> None:
    """Refuse a ``layer:code`` whose layer the city does not have, naming ``zone``."""
    if zone is not None:
        check_listed([zone[0]], layers, "zone")


def _set(schema: dict[str, Any], **declared: Any) -> None:
    """Declare on a parameter's schema, or on its non-null branch (``str | None``)."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "array":
            branch["items"].update(declared)
        elif branch.get("type") != "null":
            branch.update(declared)


def _parameters(document: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    operation = document["paths"].get(path, {}).get(method, {})
    return {p["name"]: p["schema"] for p in operation.get("parameters", [])}


def _body(document: dict[str, Any], path: str) -> list[dict[str, Any]]:
    """The request body schemas of a POST (each media type), ``$ref`` resolved."""
    body = document["paths"].get(path, {}).get("post", {}).get("requestBody", {})
    found = []
    for media in body.get("content", {}).values():
        schema = media.get("schema", {})
        ref = schema.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
        found.append(schema)
    return found


def declare_city(document: dict[str, Any], values: CityValues) -> None:
    """Write the city's values into the OpenAPI ``document`` (in place)."""
    statuses = [s.value for s in Status]
    exports = _parameters(document, "/exports/{layer}.{fmt}")
    if exports:
        _set(exports["status"], pattern=list_of(statuses))
        _set(exports["service"], pattern=list_of(values.services))
        _set(exports["team"], pattern=list_of(values.teams))
        _set(exports["zone"], pattern=values.zone_pattern())
        _set(exports["crs"], enum=list(values.export_crs))
    incidents = _parameters(document, "/api/v1/incidents")
    if incidents:
        _set(incidents["zone"], pattern=values.zone_pattern())
        _set(incidents["service"], enum=list(values.services))
        _set(incidents["team"], enum=list(values.teams))
    dispatch = _parameters(document, "/maps/dispatch")
    if dispatch:
        _set(dispatch["team"], enum=list(values.teams))
    for schema in _body(document, "/api/v1/incidents/{incident_id}/assignment"):
        schema["properties"]["team"] = {**schema["properties"]["team"], "enum": list(values.teams)}
    tiles = _parameters(document, "/tiles/incidents/{z}/{x}/{y}.mvt")
    if tiles:
        # x and y below 2^z: a bound that depends on z, which a schema cannot state.
        _set(tiles["z"], minimum=0, maximum=MAX_ZOOM)
        _set(tiles["x"], minimum=0, maximum=(1 << MAX_ZOOM) - 1)
        _set(tiles["y"], minimum=0, maximum=(1 << MAX_ZOOM) - 1)
    _declare_open311(document, values)


def _declare_open311(document: dict[str, Any], values: CityValues) -> None:
    for path, operations in document["paths"].items():
        if not path.startswith("/open311/"):
            continue
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "jurisdiction_id":
                    _set(parameter["schema"], enum=[values.jurisdiction_id])
    definition = _parameters(document, "/open311/v2/services/{service_code}.{fmt}")
    if definition:
        _set(definition["service_code"], enum=list(values.services))
    requests = _parameters(document, "/open311/v2/requests.{fmt}")
    if requests:
        # At least one of open and closed, blank items ignored.
        item = f"{_SPACE}(open|closed){_SPACE}"
        _set(requests["status"], pattern=f"^({_SPACE},)*{item}(,({item}|{_SPACE}))*$")
    for schema in _body(document, "/open311/v2/requests.{fmt}"):
        schema["properties"]["service_code"] = {
            **schema["properties"]["service_code"],
            "enum": list(values.services),
        }
        schema["properties"]["jurisdiction_id"] = {
            **schema["properties"]["jurisdiction_id"],
            "enum": [values.jurisdiction_id],
        }
    update_statuses = sorted({*FIXMYSTREET_STATUSES, *(s.value for s in Status)})
    caseless = "|".join(_caseless(s) for s in update_statuses)
    for schema in _body(document, "/open311/v2/servicerequestupdates.{fmt}"):
        status = schema["properties"]["status"]
        schema["properties"]["status"] = {**status, "pattern": f"^({caseless})$"}


def install(app: FastAPI, city: City) -> None:
    """Declare ``city``'s values in ``app``'s OpenAPI document (FastAPI's ``openapi``
    extension point, after the routers are included)."""
    values = CityValues.of(city)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()
        declare_city(document, values)
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point
