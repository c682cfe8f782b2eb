"""The ``filter`` of OGC API Features Part 3: CQL2 text or JSON in, checked CQL2-JSON out.

``filter-lang`` says the encoding (``cql2-text``, the default, or ``cql2-json``); the
``cql2`` library (the reference Rust parser) parses either into CQL2-JSON. Then every
property must be one of the collection's queryables, and every geometry literal given in
``filter-crs`` is brought to WGS84 longitude/latitude, the layers' own coordinates. The
store turns the result into SQL (``voirie.store.cql2``). The queryables document
(JSON Schema, as pygeoapi and tipg serve it) is built here too.

Spec: https://docs.ogc.org/DRAFTS/19-079r2.html (Part 3), https://docs.ogc.org/is/21-065r2/21-065r2.html.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import cql2
import numpy as np
import shapely
import shapely.errors
import shapely.geometry
from pyproj import CRS, Transformer
from pyproj.exceptions import ProjError

from voirie.errors import InvalidInput
from voirie.maps.export import TITLES_FR
from voirie.store.cql2 import QUERYABLES, ZONE_PREFIX

LANGUAGES = ("cql2-text", "cql2-json")
PARAMETERS = ("filter", "filter-lang", "filter-crs")
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
)
"""What the filters implement: Basic CQL2 with LIKE/BETWEEN/IN and CASEI, S_INTERSECTS on
the layers' points (the temporal functions are only partly there: not declared)."""
SCHEMA_MEDIA_TYPE = "application/schema+json"
_CRS84 = CRS.from_user_input("OGC:CRS84")
_FORMATS = {"integer": "integer", "number": "number", "string": "string"}
_TITLES = TITLES_FR | {"geometry": "Position", "supporters": "Soutiens"}


def queryable_names(layer: str, zone_layers: Iterable[str]) -> set[str]:
    """The property names a filter on a layer may use."""
    return set(QUERYABLES[layer]) | {f"{ZONE_PREFIX}{name}" for name in zone_layers}


def queryables(
    layer: str,
    url: str,
    title: str,
    zone_layers: Iterable[str],
    enums: Mapping[str, list[str]],
) -> dict[str, Any]:
    """The queryables of a layer as a JSON Schema (draft 2019-09, OGC Part 3 keywords:
    ``x-ogc-role`` marks the primary geometry and instant)."""
    properties: dict[str, Any] = {}
    for name, found in QUERYABLES[layer].items():
        entry: dict[str, Any] = {"title": _TITLES.get(name, name)}
        if found.kind == "geometry":
            entry |= {"format": "geometry-point", "x-ogc-role": "primary-geometry"}
        elif found.kind == "datetime":
            entry |= {"type": "string", "format": "date-time"}
        else:
            entry["type"] = _FORMATS[found.kind]
        if name in enums:
            entry["enum"] = enums[name]
        properties[name] = entry
    primary = "requested_at" if layer == "reports" else "first_reported_at"
    properties[primary]["x-ogc-role"] = "primary-instant"
    for zone in zone_layers:
        properties[f"{ZONE_PREFIX}{zone}"] = {"title": f"Zone {zone}", "type": "string"}
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": url,
        "type": "object",
        "title": title,
        "properties": properties,
        "additionalProperties": False,
    }


def parse(text: str, language: str, crs: CRS, names: set[str]) -> str:
    """A ``filter`` as checked CQL2-JSON text, geometries in WGS84 longitude/latitude."""
    if language not in LANGUAGES:
        raise InvalidInput(
            f"filter-lang: unknown language {language!r}; use cql2-text or cql2-json",
            field="filter-lang",
        )
    try:
        expression = cql2.parse_text(text) if language == "cql2-text" else cql2.parse_json(text)
        tree: Any = expression.to_json()
    except (cql2.ParseError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise InvalidInput(f"filter: not valid {language}: {reason}", field="filter") from exc
    _check_properties(tree, names)
    if not crs.equals(_CRS84):
        try:
            tree = _to_wgs84(tree, Transformer.from_crs(crs, _CRS84))
        except (ValueError, TypeError, ProjError, shapely.errors.GEOSException) as exc:
            raise InvalidInput(
                f"filter: a geometry cannot be read in filter-crs: {exc}", field="filter"
            ) from exc
    return json.dumps(tree)


def _check_properties(node: object, names: set[str]) -> None:
    if isinstance(node, Mapping):
        if "property" in node and node["property"] not in names:
            raise InvalidInput(
                f"filter: unknown property {node['property']!r}; the queryables are "
                f"{', '.join(sorted(names))}",
                field="filter",
            )
        for value in node.values():
            _check_properties(value, names)
    elif isinstance(node, list):
        for value in node:
            _check_properties(value, names)


def _to_wgs84(node: Any, transformer: Transformer) -> Any:
    """Geometry literals (GeoJSON or ``bbox``) from the filter's CRS to CRS84."""
    if isinstance(node, list):
        return [_to_wgs84(value, transformer) for value in node]
    if not isinstance(node, Mapping):
        return node
    if "bbox" in node:
        box = [float(v) for v in node["bbox"]]
        if len(box) == 6:
            box = [box[0], box[1], box[3], box[4]]
        x0, y0, x1, y1 = box
        return {"bbox": list(transformer.transform_bounds(x0, y0, x1, y1, densify_pts=21))}
    if "coordinates" in node and "type" in node:
        shape = shapely.geometry.shape(node)
        moved = shapely.transform(shape, lambda xy: _transform(transformer, xy))
        return shapely.geometry.mapping(moved)
    return {key: _to_wgs84(value, transformer) for key, value in node.items()}


def _transform(transformer: Transformer, xy: np.ndarray) -> np.ndarray:
    x, y = transformer.transform(xy[:, 0], xy[:, 1])
    return np.column_stack([x, y])
