"""The OpenAPI 3.0 definition of the OGC API at ``/ogc/api`` (the landing page's
``service-desc``), one path per collection as OGC API Features Part 1 shows it.

Clients read their paging from it: QGIS takes ``components/parameters/limit`` (its
``default`` and ``maximum``), GDAL's OAPIF driver (from 3.8) follows the ``$ref`` to
``limit`` among the parameters of ``paths["/collections/{id}/items"]``, relative to the
``servers`` URL. A definition with templated paths only, or paths under another prefix,
leaves both at 10 features per request.
"""

from __future__ import annotations

from typing import Any

from voirie.maps.ogc import DEFAULT_LIMIT, MAX_LIMIT, Collection

OPENAPI_MEDIA_TYPE = "application/vnd.oai.openapi+json;version=3.0"
GEOJSON = "application/geo+json"
JSON = "application/json"
HTML = "text/html"
SCHEMA = "application/schema+json"
ODBL = {"name": "ODbL 1.0", "url": "https://opendatacommons.org/licenses/odbl/1-0/"}


def param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter as OGC API Features declares them (form style, not exploded)."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
        "style": "form",
        "explode": False,
    }


PARAMETERS: dict[str, dict[str, Any]] = {
    "limit": param(
        "limit",
        "features per page",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    ),
    "offset": param(
        "offset",
        "position of the page's first feature among those matched (the next link sets it)",
        {"type": "integer", "minimum": 0, "default": 0},
    ),
    "after": param(
        "after",
        "incidents and reports: id of the feature before the page; the next link sets it "
        "(with offset) so that the server seeks to it instead of skipping offset features",
        {"type": "integer", "minimum": 0},
    ),
    "bbox": param(
        "bbox",
        "minx,miny,maxx,maxy in bbox-crs (default CRS84 lon/lat)",
        {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
    ),
    "bbox-crs": param("bbox-crs", "CRS URI of bbox", {"type": "string", "format": "uri"}),
    "crs": param(
        "crs",
        "output CRS URI (see the collection's crs list); default CRS84",
        {"type": "string", "format": "uri"},
    ),
    "datetime": param(
        "datetime",
        "instant or interval (start/end, '..' for open); incidents overlap it, "
        "reports are requested within it",
        {"type": "string"},
    ),
    "f": param(
        "f", "response format: json (default) or html", {"type": "string", "enum": ["json", "html"]}
    ),
    "filter": param(
        "filter",
        "incidents and reports: a CQL2 filter on the collection's queryables "
        "(e.g. status = 'new' AND S_INTERSECTS(geometry, BBOX(2.35,48.85,2.37,48.86)))",
        {"type": "string"},
    ),
    "filter-lang": param(
        "filter-lang",
        "encoding of filter (default cql2-text)",
        {"type": "string", "enum": ["cql2-text", "cql2-json"], "default": "cql2-text"},
    ),
    "filter-crs": param(
        "filter-crs",
        "CRS URI of the filter's geometries (default CRS84)",
        {"type": "string", "format": "uri"},
    ),
}
"""The parameters every collection shares, under ``components/parameters``."""

_FILTERS: dict[str, tuple[str, str]] = {
    "status": ("string", "incident status"),
    "team": ("string", "team code"),
    "service_code": ("string", "service code"),
    "incident_id": ("integer", "reports of one incident"),
    "code": ("string", "zone code"),
    "name": ("string", "zone name"),
    "segment_id": ("string", "street segment id"),
    "street_name": ("string", "exact street name"),
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def _responses(media: tuple[str, ...], description: str) -> dict[str, Any]:
    return {
        "200": {"description": description, "content": {m: {} for m in media}},
        "400": {"description": "a query parameter is unknown or has an invalid value"},
        "404": {"description": "no such collection or feature"},
    }


def _get(
    summary: str, parameters: list[dict[str, Any]], media: tuple[str, ...], description: str = ""
) -> dict[str, Any]:
    """A path item with one GET operation answering ``media``."""
    operation = {
        "summary": summary,
        "parameters": parameters,
        "responses": _responses(media, "JSON (default) or HTML (f=html)"),
    }
    if description:
        operation["description"] = description
    return {"get": operation}


def _filter(name: str) -> dict[str, Any]:
    kind, description = _FILTERS.get(name, ("string", f"features whose {name} is this value"))
    if name.startswith("zone_"):
        description = f"features in this zone of layer {name.removeprefix('zone_')!r}"
    return param(name, description, {"type": kind})


def _items(c: Collection) -> dict[str, Any]:
    shared = ["limit", "offset", "bbox", "bbox-crs", "crs"]
    if c.kind in ("incidents", "reports"):
        shared.insert(2, "after")
    if c.temporal:
        shared.append("datetime")
    if c.kind in ("incidents", "reports"):
        shared.extend(("filter", "filter-lang", "filter-crs"))
    parameters = [
        *(_ref(name) for name in shared),
        *(_filter(name) for name in c.filters),
        _ref("f"),
    ]
    return _get(
        f"{c.title}: features",
        parameters,
        (GEOJSON, HTML),
        "One page of features; follow the next link for the following pages.",
    )


def _with_crs(crs_uris: list[str]) -> dict[str, dict[str, Any]]:
    """``PARAMETERS`` with the CRS parameters limited to the CRSs this server supports."""
    parameters = dict(PARAMETERS)
    for name in ("crs", "bbox-crs", "filter-crs"):
        schema = {"type": "string", "format": "uri", "enum": crs_uris}
        parameters[name] = {**PARAMETERS[name], "schema": schema}
    return parameters


def definition(
    title: str, ogc_url: str, found: dict[str, Collection], crs_uris: list[str]
) -> dict[str, Any]:
    """The API definition of the collections ``found``, served from ``ogc_url``, whose
    features can be asked in the CRSs ``crs_uris``."""
    paths: dict[str, Any] = {
        "/": _get("Landing page", [_ref("f")], (JSON, HTML)),
        "/api": {
            "get": {
                "summary": "This API definition",
                "responses": {
                    "200": {"description": "OpenAPI 3.0", "content": {OPENAPI_MEDIA_TYPE: {}}}
                },
            }
        },
        "/conformance": _get("Conformance classes", [_ref("f")], (JSON, HTML)),
        "/collections": _get("Collections", [_ref("f")], (JSON, HTML)),
    }
    for c in found.values():
        base = f"/collections/{c.id}"
        paths[base] = _get(c.title, [_ref("f")], (JSON, HTML))
        paths[f"{base}/items"] = _items(c)
        if c.kind in ("incidents", "reports"):
            paths[f"{base}/queryables"] = _get(
                f"{c.title}: queryables", [_ref("f")], (SCHEMA, HTML), "What filter may name."
            )
        feature_id = {
            "name": "featureId",
            "in": "path",
            "required": True,
            "description": f"the feature's {c.id_column}",
            "schema": {"type": "string"},
        }
        paths[f"{base}/items/{{featureId}}"] = _get(
            f"{c.title}: one feature", [feature_id, _ref("crs"), _ref("f")], (GEOJSON, HTML)
        )
    return {
        "openapi": "3.0.3",
        "info": {
            "title": title,
            "version": "1.0.0",
            "description": "OGC API Features (Part 1 Core, Part 2 CRS) of street incidents, "
            "citizen reports, streets and zones.",
            "license": ODBL,
        },
        "servers": [{"url": ogc_url}],
        "paths": paths,
        "components": {"parameters": _with_crs(crs_uris)},
    }
