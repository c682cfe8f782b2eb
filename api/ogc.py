"""OGC API Features at ``/ogc``: Part 1 Core and Part 2 CRS, GeoJSON by default, HTML on request.

The handlers only parse the request and shape the response; what to read and how is in
``voirie.maps.ogc``. Links are absolute, built from the request's base URL. JSON is the
default (no ``Accept`` header, or one without ``text/html``); ``f=html`` or an ``Accept``
header asking for ``text/html`` gives plain HTML pages.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute
from starlette._utils import get_route_path
from starlette.types import Scope

from voirie.api.deps import PipelineDep
from voirie.api.validation import check_request
from voirie.errors import InvalidInput, NotFound, StoreError
from voirie.maps import attribution, ogc, ogc_filter, ogc_html, ogc_openapi, ogc_tiles
from voirie.model import Status
from voirie.services.pipeline import Pipeline


@asynccontextmanager
async def _warm(app: FastAPI) -> AsyncIterator[None]:
    """Work every OGC request needs, done once when the app starts: the collections
    (their extents reproject the reference layers, ~0.15 s) and the CRSs served.

    Cached on first use instead, a worker's first burst of requests computed them once
    per request at the same time (``functools.lru_cache`` does not make callers wait for
    one answer): a first round of 16 concurrent requests took 4.5-7.9 s at 1M incidents,
    later ones 0.4-1.1 s (issue 19)."""
    pipeline: Pipeline = app.state.pipeline
    ogc.collections(pipeline)
    ogc.supported_crs(pipeline)
    yield


router = APIRouter(prefix="/ogc", tags=["OGC API Features"], lifespan=_warm)

GEOJSON = "application/geo+json"
JSON = "application/json"
HTML = "text/html"
OPENAPI = ogc_openapi.OPENAPI_MEDIA_TYPE
_JSON_OR_HTML: dict[int | str, dict[str, Any]] = {
    200: {"content": {JSON: {}, HTML: {}}, "description": "JSON (default) or HTML (f=html)"}
}
_GEOJSON_OR_HTML: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {GEOJSON: {}, HTML: {}},
        "description": "GeoJSON (default) or HTML (f=html); header Content-Crs names the CRS",
    },
    400: {"description": "a query parameter is unknown or has an invalid value"},
    404: {"description": "no such collection or feature"},
}


_F = ogc_openapi.PARAMETERS["f"]
_CRS = ogc_openapi.PARAMETERS["crs"]
_ITEMS_PARAMETERS = [
    *(ogc_openapi.PARAMETERS[name] for name in ("limit", "offset", "after", "bbox", "bbox-crs")),
    _CRS,
    ogc_openapi.PARAMETERS["datetime"],
    *(ogc_openapi.PARAMETERS[name] for name in ("filter", "filter-lang", "filter-crs")),
    ogc_openapi.param("status", "incidents and reports: incident status", {"type": "string"}),
    ogc_openapi.param("team", "incidents and reports: team code", {"type": "string"}),
    ogc_openapi.param("service_code", "incidents and reports: service code", {"type": "string"}),
    ogc_openapi.param("incident_id", "reports: reports of one incident", {"type": "integer"}),
    ogc_openapi.param("street_name", "streets: exact street name", {"type": "string"}),
    ogc_openapi.param("code", "zone layers: zone code", {"type": "string"}),
    ogc_openapi.param("name", "zone layers: zone name", {"type": "string"}),
    _F,
]
_EXTRA_FILTERS_DOC = (
    " Incidents and reports also filter on zone_<layer>=<code> for each zone layer of the "
    "city; streets on each of their attributes."
)


def _wants_html(request: Request) -> bool:
    """``f=html``/``f=json`` decide; otherwise an Accept header asking for HTML does."""
    fmt = request.query_params.get("f")
    if fmt is not None:
        if fmt not in ("json", "geojson", "html"):
            raise InvalidInput(f"f: unknown format {fmt!r}; use json or html", field="f")
        return fmt == "html"
    return HTML in request.headers.get("accept", "")


def _lang(request: Request) -> ogc_html.Lang:
    """The HTML pages' language: ``lang``, else the browser's preference, else French."""
    return ogc_html.language(
        request.query_params.get("lang"), request.headers.get("accept-language", "")
    )


def _html(
    request: Request,
    pipeline: Pipeline,
    title: str,
    body: str,
    links: list[dict[str, str]] | None = None,
    map_data: dict[str, Any] | None = None,
) -> HTMLResponse:
    """An HTML page in the request's language, crediting the data, linking to its other
    language (a relative URL keeping the other parameters)."""
    lang = _lang(request)
    other = "en" if lang == "fr" else "fr"
    return HTMLResponse(
        ogc_html.page(
            title,
            body,
            links or [],
            lang=lang,
            credit=attribution.html(pipeline.city, lang),
            map_data=map_data,
            other_language_url="?" + urlencode({**request.query_params, "lang": other}),
        ),
        headers={"Content-Language": lang, "Vary": "Accept, Accept-Language"},
    )


def public_base(request: Request) -> str:
    """The server's address for absolute links: a city's own address when the request
    came to it (``VOIRIE_CITY_HOSTS``, set by ``voirie.api.multicity``), else
    ``VOIRIE_PUBLIC_URL`` when configured (behind a reverse proxy), otherwise the address
    this request was made to."""
    configured: str | None = request.scope.get("voirie.city_url") or getattr(
        request.app.state, "public_url", None
    )
    return configured or str(request.base_url).rstrip("/")


def _url(request: Request, path: str, params: dict[str, str] | None = None) -> str:
    """Absolute URL of a path of this API, on the server's public address."""
    query = f"?{urlencode(params)}" if params else ""
    return f"{public_base(request)}/ogc{path}{query}"


def _link(href: str, rel: str, media: str, title: str) -> dict[str, str]:
    return {"href": href, "rel": rel, "type": media, "title": title}


def _self_links(
    request: Request, path: str, media: str, base: str | None = None
) -> list[dict[str, str]]:
    """``self`` and ``alternate`` links of a document available as JSON and HTML."""
    html = request.query_params.get("f") == "html" or (
        "f" not in request.query_params and HTML in request.headers.get("accept", "")
    )
    here = f"{base or public_base(request)}/ogc{path}"
    json_link = _link(
        f"{here}?f=json", "self" if not html else "alternate", media, "this document as JSON"
    )
    html_link = _link(
        f"{here}?f=html", "self" if html else "alternate", HTML, "this document as HTML"
    )
    return [json_link, html_link]


def _json(
    body: dict[str, Any], media: str = JSON, headers: dict[str, str] | None = None
) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), media_type=media, headers=headers)


@router.get(
    "",
    summary="Landing page",
    response_class=Response,
    responses=_JSON_OR_HTML,
    openapi_extra={"parameters": [_F]},
)
@router.get("/", include_in_schema=False)
def landing(request: Request, pipeline: PipelineDep) -> Response:
    """What this API offers and where to find it."""
    title = _title(pipeline)
    base = public_base(request)
    links = [
        *_self_links(request, "", JSON),
        _link(_url(request, "/api"), "service-desc", OPENAPI, "the API definition"),
        _link(f"{base}/docs", "service-doc", HTML, "the API documentation"),
        _link(_url(request, "/conformance"), "conformance", JSON, "conformance classes"),
        _link(
            _url(request, "/conformance"),
            "http://www.opengis.net/def/rel/ogc/1.0/conformance",
            JSON,
            "conformance classes",
        ),
        _link(_url(request, "/collections"), "data", JSON, "the collections"),
        _link(
            _url(request, "/tileMatrixSets"),
            ogc_tiles.REL_TILING_SCHEMES,
            JSON,
            "tile matrix sets of the vector tiles",
        ),
        _link(
            _url(request, "/collections"),
            "http://www.opengis.net/def/rel/ogc/1.0/data",
            JSON,
            "the collections",
        ),
    ]
    description = (
        "Street incidents and citizen reports, with the city's streets and zones, "
        "as OGC API Features (GeoJSON, any of several CRS)."
    )
    if _wants_html(request):
        if _lang(request) == "fr":
            description = ogc_html.LANDING_FR
        return _html(request, pipeline, title, f"<p>{escape(description)}</p>", links)
    return _json({"title": title, "description": description, "links": links})


def _title(pipeline: Pipeline) -> str:
    return f"voirie — {pipeline.city.config.name}: OGC API Features"


@router.get(
    "/api",
    summary="The OGC API definition",
    response_class=Response,
    responses={
        200: {
            "content": {OPENAPI: {}},
            "description": "OpenAPI 3.0, one path per "
            "collection, with the paging clients read (limit default and maximum)",
        }
    },
)
def api_definition(request: Request, pipeline: PipelineDep) -> Response:
    """This OGC API's own definition (the landing page's ``service-desc``)."""
    body = ogc_openapi.definition(
        _title(pipeline),
        _url(request, ""),
        ogc.collections(pipeline),
        list(ogc.supported_crs(pipeline)),
    )
    return _json(body, OPENAPI)


@router.get(
    "/conformance",
    summary="Conformance classes",
    response_class=Response,
    responses=_JSON_OR_HTML,
    openapi_extra={"parameters": [_F]},
)
def conformance(request: Request, pipeline: PipelineDep) -> Response:
    """The conformance classes this API implements."""
    if _wants_html(request):
        body = ogc_html.link_list((uri, uri) for uri in ogc.CONFORMANCE)
        title = ogc_html.word(_lang(request), "Conformance")
        return _html(request, pipeline, title, body)
    return _json({"conformsTo": list(ogc.CONFORMANCE)})


def _collection_json(request: Request, pipeline: Pipeline, c: ogc.Collection) -> dict[str, Any]:
    path = f"/collections/{c.id}"
    return {
        "id": c.id,
        "title": c.title,
        "description": c.description,
        "itemType": "feature",
        "links": [
            *_self_links(request, path, JSON),
            _link(_url(request, f"{path}/items"), "items", GEOJSON, f"{c.title} as GeoJSON"),
            _link(
                _url(request, f"{path}/items", {"f": "html"}), "items", HTML, f"{c.title} as HTML"
            ),
            *_queryables_links(request, c),
            *_tiles_links(request, c),
        ],
        "extent": {"spatial": {"bbox": [list(c.bbox)], "crs": ogc.CRS84}},
        "crs": list(ogc.supported_crs(pipeline)),
        "storageCrs": c.storage_crs,
    }


@router.get(
    "/collections",
    summary="Collections",
    response_class=Response,
    responses=_JSON_OR_HTML,
    openapi_extra={"parameters": [_F]},
)
def collections(request: Request, pipeline: PipelineDep) -> Response:
    """Every feature collection: incidents, reports, streets and each zone layer."""
    found = ogc.collections(pipeline)
    links = _self_links(request, "/collections", JSON)
    if _wants_html(request):
        lang = _lang(request)
        body = ogc_html.link_list(
            (
                _url(request, f"/collections/{c.id}", {"f": "html", "lang": lang}),
                f"{ogc_html.collection_title(c.id, c.title, lang)} ({c.id})",
            )
            for c in found.values()
        )
        return _html(request, pipeline, ogc_html.word(lang, "Collections"), body, links)
    return _json(
        {
            "links": links,
            "collections": [_collection_json(request, pipeline, c) for c in found.values()],
            "crs": list(ogc.supported_crs(pipeline)),
        }
    )


@router.get(
    "/collections/{collectionId}",
    summary="One collection",
    response_class=Response,
    responses=_JSON_OR_HTML,
    openapi_extra={"parameters": [_F]},
)
def collection(collectionId: str, request: Request, pipeline: PipelineDep) -> Response:  # noqa: N803
    """A collection's description, extent, CRS and links."""
    c = ogc.collection(pipeline, collectionId)
    body = _collection_json(request, pipeline, c)
    if _wants_html(request):
        lang = _lang(request)
        info = ogc_html.definition_list(
            {
                "id": c.id,
                "description": c.description,
                "storage CRS": c.storage_crs,
                "extent (CRS84)": ", ".join(f"{v:.6f}" for v in c.bbox),
                "filters": ", ".join(c.filters),
            },
            lang,
        )
        drawn = ogc_html.map_data(None, None, None, c.bbox, ogc_html.outlines(pipeline))
        title = ogc_html.collection_title(c.id, c.title, lang)
        return _html(request, pipeline, title, info, body["links"], drawn)
    return _json(body)


def _queryables_links(request: Request, c: ogc.Collection) -> list[dict[str, str]]:
    """Where a filterable collection's queryables are (none for the reference layers)."""
    if c.kind not in ("incidents", "reports"):
        return []
    return [
        _link(
            _url(request, f"/collections/{c.id}/queryables"),
            "http://www.opengis.net/def/rel/ogc/1.0/queryables",
            ogc_filter.SCHEMA_MEDIA_TYPE,
            f"what a filter on {c.title} may name",
        )
    ]


def _tiles_links(request: Request, c: ogc.Collection) -> list[dict[str, str]]:
    """Where the incidents' vector tilesets are (OGC API Tiles; no other collection has any)."""
    if c.kind != "incidents":
        return []
    href = _url(request, f"/collections/{c.id}/tiles")
    return [_link(href, ogc_tiles.REL_VECTOR_TILESETS, JSON, f"{c.title}: vector tiles")]


@router.get(
    "/collections/{collectionId}/queryables",
    summary="What a CQL2 filter may name",
    response_class=Response,
    responses={
        200: {
            "content": {ogc_filter.SCHEMA_MEDIA_TYPE: {}, HTML: {}},
            "description": "JSON Schema of the queryables (default) or HTML (f=html)",
        },
        404: {"description": "no such collection, or one that takes no filter"},
    },
    openapi_extra={"parameters": [_F]},
)
def queryables(collectionId: str, request: Request, pipeline: PipelineDep) -> Response:  # noqa: N803
    """The properties a ``filter`` on the incidents or reports may use, with their types."""
    c = ogc.collection(pipeline, collectionId)
    if c.kind not in ("incidents", "reports"):
        raise NotFound(
            f"collectionId: {c.id} takes no CQL2 filter; incidents and reports do",
            field="collectionId",
        )
    city = pipeline.city
    enums = {
        "status": [s.value for s in Status],
        "team": sorted(city.teams),
        "service_code": sorted(city.services),
    }
    path = f"/collections/{c.id}/queryables"
    body = ogc_filter.queryables(c.kind, _url(request, path), c.title, pipeline.gis.zones, enums)
    if _wants_html(request):
        rows = {
            name: f"{entry.get('title', name)} — {entry.get('type', entry.get('format'))}"
            for name, entry in body["properties"].items()
        }
        links = _self_links(request, path, ogc_filter.SCHEMA_MEDIA_TYPE)
        lang = _lang(request)
        title = f"{ogc_html.collection_title(c.id, c.title, lang)} : "
        title += ogc_html.word(lang, "queryables")
        return _html(request, pipeline, title, ogc_html.definition_list(rows, lang), links)
    return _json(body, ogc_filter.SCHEMA_MEDIA_TYPE)


def _content_crs(crs: ogc.OutputCrs) -> dict[str, str]:
    return {"Content-Crs": f"<{crs.uri}>"}


def _output_crs(request: Request, pipeline: Pipeline) -> ogc.OutputCrs:
    supported = ogc.supported_crs(pipeline)
    return ogc.parse_crs(request.query_params.get("crs", ogc.CRS84), supported, "crs")


@router.get(
    "/collections/{collectionId}/items",
    summary="Features of a collection",
    response_class=Response,
    responses=_GEOJSON_OR_HTML,
    description="One page of features; follow the `next` link for the following pages."
    + _EXTRA_FILTERS_DOC,
    openapi_extra={"parameters": _ITEMS_PARAMETERS},
)
def items(collectionId: str, request: Request, pipeline: PipelineDep) -> Response:  # noqa: N803
    """Features matching bbox, datetime and property filters, one page at a time."""
    c = ogc.collection(pipeline, collectionId)
    supported = ogc.supported_crs(pipeline)
    params = dict(request.query_params)
    query = ogc.items_query(c, params, supported)
    crs = _output_crs(request, pipeline)
    html = _wants_html(request)
    if html:
        page = ogc.read_page(pipeline, c, query, crs)
        ids = page.features[c.id_column]
        last = ids.iloc[-1] if len(ids) else None
        found = ogc.JsonPage("", len(ids), last, page.number_matched)  # features: the table's
    else:
        found = ogc.read_json_page(pipeline, c, query, crs)
    returned = found.returned
    path = f"/collections/{c.id}/items"
    keep = {k: v for k, v in params.items() if k not in ("offset", "after", "f")}
    here = {"offset": str(query.offset)}
    if query.after is not None:
        here["after"] = str(query.after)
    media = HTML if html else GEOJSON
    fmt = {"f": "html" if html else "json"}
    links = [
        _link(
            _url(request, path, {**keep, **fmt, **here}),
            "self",
            media,
            "this page",
        ),
        _link(
            _url(
                request,
                path,
                {**keep, "f": "json" if html else "html", **here},
            ),
            "alternate",
            GEOJSON if html else HTML,
            "this page in the other format",
        ),
        _link(_url(request, f"/collections/{c.id}"), "collection", JSON, c.title),
    ]
    if returned and query.offset + returned < found.number_matched:
        following = {"offset": str(query.offset + returned)}
        if c.kind in ("incidents", "reports"):
            # Keyset paging: the next page seeks past this page's last id.
            following["after"] = str(found.last_id)
        links.append(
            _link(
                _url(request, path, {**keep, **fmt, **following}),
                "next",
                media,
                "next page",
            )
        )
    if query.offset > 0:
        links.append(
            _link(
                _url(
                    request,
                    path,
                    {**keep, **fmt, "offset": str(max(0, query.offset - query.limit))},
                ),
                "prev",
                media,
                "previous page",
            )
        )
    if html:
        lang = _lang(request)
        w = ogc_html.WORDS[lang]
        summary = (
            f"<p>{returned} {w['features']} {w['of']} {found.number_matched} "
            f"({w['from']} {query.offset + 1 if returned else 0}).</p>"
        )
        table = ogc_html.table(page.features.drop(columns=page.features.geometry.name), lang)
        item_url = _url(request, f"{path}/{{id}}", {"f": "html", "lang": lang})
        drawn = ogc_html.map_data(
            page.features,
            c.id_column,
            item_url.replace("%7Bid%7D", "{id}"),
            c.bbox,
            ogc_html.outlines(pipeline),
            crs.north_first,
        )
        title = f"{ogc_html.collection_title(c.id, c.title, lang)} : {w['features']}"
        return _html(request, pipeline, title, summary + table, links, drawn)
    head = json.dumps(
        {
            "type": "FeatureCollection",
            "numberMatched": found.number_matched,
            "numberReturned": returned,
            "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "links": links,
        },
        ensure_ascii=False,
    )
    body = f'{head[:-1]},"features":[{found.features}]}}'
    return Response(body, media_type=GEOJSON, headers=_content_crs(crs))


@router.get(
    "/collections/{collectionId}/items/{featureId}",
    summary="One feature",
    response_class=Response,
    responses=_GEOJSON_OR_HTML,
    openapi_extra={"parameters": [_CRS, _F]},
)
def item(
    collectionId: str,  # noqa: N803 (the OGC API path names)
    featureId: str,  # noqa: N803
    request: Request,
) -> Response:
    """A single feature by its id (incident_id, report_id, segment_id or zone code)."""
    # The app's pipeline taken here rather than as ``PipelineDep``: FastAPI solves each
    # dependency with a call of its own, and this is the public read asked most often,
    # one feature at a time (issue 19).
    pipeline: Pipeline = request.app.state.pipeline
    c, crs, html = _item_request(request, pipeline, collectionId)
    if html:
        lang = _lang(request)
        links = _item_links(request, c, featureId)
        feature = ogc.one_feature(pipeline, c, featureId, crs)
        row = feature.drop(columns=feature.geometry.name).iloc[0].to_dict()
        drawn = ogc_html.map_data(
            feature, c.id_column, None, c.bbox, ogc_html.outlines(pipeline), crs.north_first
        )
        title = f"{ogc_html.collection_title(c.id, c.title, lang)} {featureId}"
        return _html(request, pipeline, title, ogc_html.definition_list(row, lang), links, drawn)
    return _item_json(request, pipeline, c, featureId, crs)


def _item_request(
    request: Request, pipeline: Pipeline, collection_id: str
) -> tuple[ogc.Collection, ogc.OutputCrs, bool]:
    """The collection, output CRS and format of an item request (refusals in this order)."""
    c = ogc.collection(pipeline, collection_id)
    unknown = sorted(set(request.query_params) - {"crs", "f", "lang"})
    if unknown:
        raise InvalidInput(
            f"{unknown[0]}: unknown query parameter; use crs, f or lang", field=unknown[0]
        )
    return c, _output_crs(request, pipeline), _wants_html(request)


def _item_links(request: Request, c: ogc.Collection, feature_id: str) -> list[dict[str, str]]:
    base = public_base(request)
    return [
        *_self_links(request, f"/collections/{c.id}/items/{feature_id}", GEOJSON, base),
        _link(f"{base}/ogc/collections/{c.id}", "collection", JSON, c.title),
    ]


def _item_json(
    request: Request, pipeline: Pipeline, c: ogc.Collection, feature_id: str, crs: ogc.OutputCrs
) -> Response:
    """One feature as GeoJSON with its links."""
    links = _item_links(request, c, feature_id)
    text = ogc.one_json_feature(pipeline, c, feature_id, crs).features
    body = f'{text[:-1]},"links":{json.dumps(links, ensure_ascii=False)}}}'
    return Response(body, media_type=GEOJSON, headers=_content_crs(crs))


ITEM_ROUTE = next(r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is item)
"""The route of one feature, answered by ``quick_item`` too."""


def item_params(scope: Scope) -> dict[str, str] | None:
    """The path parameters of a request to ``item``'s route, None for any other path."""
    found = ITEM_ROUTE.path_regex.match(get_route_path(scope))
    return found.groupdict() if found is not None else None


def quick_item(scope: Scope, params: dict[str, str]) -> Response | None:
    """``item``'s GeoJSON answer without FastAPI's routing, dependency solving and thread
    limiter (~0.3 ms of a request that takes ~1 ms, issue 19); None when the route must
    answer: HTML asked for, or any refusal or error (the route meets it again and answers
    it as every route does). The app-wide check of parameters (``validation.GUARD``) is
    made here too. A database that is down raises ``StoreError``, which ``edge.Gate``
    answers 503 as the route's handler would: left to the route, the request would wait
    for the pool's timeout a second time."""
    request = Request({**scope, "path_params": params})
    try:
        check_request(request)
        pipeline: Pipeline = request.app.state.pipeline
        c, crs, html = _item_request(request, pipeline, params["collectionId"])
        return None if html else _item_json(request, pipeline, c, params["featureId"], crs)
    except StoreError:
        raise
    except Exception:  # the route meets it again and answers it with the app's handlers
        return None
