"""OGC API Features (Part 1 Core, Part 2 CRS) without the web framework: collections,
CRS and parameter parsing, and the pages of features each request reads.

The web layer (``voirie.api.ogc``) only turns requests into the calls below and their
results into responses. Collections are the incidents and reports layers of the store
(read through ``Selection``) and the city's reference layers already loaded by
``CityGIS`` (streets and every zone layer), served from memory.

Specs: https://docs.ogc.org/is/17-069r4/17-069r4.html (Part 1),
https://docs.ogc.org/is/18-058r1/18-058r1.html (Part 2).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, cast

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from voirie.codecs import features
from voirie.errors import InvalidInput, NotFound
from voirie.maps import ogc_filter, ogc_tiles
from voirie.maps.export import geojson_features
from voirie.services.pipeline import Pipeline
from voirie.store.selection import Selection
from voirie.values import aware_utc

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{code}"
DEFAULT_LIMIT = 1_000
"""Features per page when a request names no ``limit``: pages that clients walking a layer
(QGIS, GDAL from 3.8, which read it from the API definition) fetch in few requests."""
MAX_LIMIT = 10_000
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    *ogc_filter.CONFORMANCE,
    *ogc_tiles.CONFORMANCE,
)
Kind = Literal["incidents", "reports", "streets", "zones"]
# Query parameters every items request may carry (besides the collection's properties).
ITEMS_PARAMETERS = frozenset(
    {
        "limit",
        "offset",
        "after",
        "bbox",
        "bbox-crs",
        "crs",
        "datetime",
        "f",
        "lang",
        *ogc_filter.PARAMETERS,
    }
)
_BBOX_DENSIFY_DEG = 0.001
_INTEGER = re.compile(r"-?[0-9]{1,19}")
_WGS84 = CRS.from_epsg(4326)


def _is_wgs84(crs: CRS | None) -> bool:
    """EPSG:4326 or CRS84: the same coordinates, whatever the axis order."""
    return crs is not None and crs.equals(_WGS84, ignore_axis_order=True)


@dataclass(frozen=True)
class OutputCrs:
    """A CRS the API serves: its URI, pyproj CRS and whether its first axis is northing."""

    uri: str
    crs: CRS
    north_first: bool
    wgs84: bool = field(init=False)
    """Whether it has WGS84's coordinates (``_is_wgs84``): decided once, not for each
    request (pyproj's comparison costs ~6 µs)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "wgs84", _is_wgs84(self.crs))


def crs_uri(crs: CRS) -> str:
    """The OGC URI of a CRS (CRS84 for OGC:CRS84, the EPSG register otherwise)."""
    authority = crs.to_authority()
    if authority is None:
        raise ValueError(f"CRS without an authority code: {crs.name}")
    name, code = authority
    if name == "OGC":
        return CRS84
    return EPSG_URI.format(code=code)


@functools.lru_cache(maxsize=8)
def supported_crs(pipeline: Pipeline) -> dict[str, OutputCrs]:
    """CRS84, EPSG:4326 (latitude first), the city's metric CRS, EPSG:2154 and EPSG:3857.

    Built once per pipeline: every items request looks its CRS up here.
    """
    crs_list = [
        CRS.from_user_input("OGC:CRS84"),
        CRS.from_epsg(4326),
        CRS.from_user_input(pipeline.city.metric_crs),
        CRS.from_epsg(2154),
        CRS.from_epsg(3857),
    ]
    out: dict[str, OutputCrs] = {}
    for crs in crs_list:
        north = crs.axis_info[0].direction.lower() == "north"
        out.setdefault(crs_uri(crs), OutputCrs(crs_uri(crs), crs, north))
    return out


def parse_crs(value: str, supported: dict[str, OutputCrs], name: str) -> OutputCrs:
    """A CRS named as a URI, a safe CURIE ``[EPSG:2154]`` or ``EPSG:2154``/``CRS84``."""
    text = value.strip().removeprefix("[").removesuffix("]")
    if text in supported:
        return supported[text]
    try:
        crs = CRS.from_user_input("OGC:CRS84" if text in ("CRS84", "OGC:CRS84") else text)
        uri = crs_uri(crs)
    except (CRSError, ValueError) as exc:
        raise InvalidInput(f"{name}: unknown CRS {value!r}", field=name) from exc
    if uri not in supported:
        raise InvalidInput(
            f"{name}: CRS {value!r} is not served; use one of {', '.join(supported)}",
            field=name,
        )
    return supported[uri]


@dataclass(frozen=True)
class Collection:
    """One feature collection: where its features come from and what may filter them."""

    id: str
    title: str
    description: str
    kind: Kind
    id_column: str
    storage_crs: str
    bbox: tuple[float, float, float, float]
    filters: tuple[str, ...]
    temporal: bool = False
    zone_layer: str | None = None


def _wgs84_bounds(frame: gpd.GeoDataFrame) -> tuple[float, float, float, float]:
    minx, miny, maxx, maxy = frame.to_crs(4326).total_bounds
    return float(minx), float(miny), float(maxx), float(maxy)


@functools.lru_cache(maxsize=8)
def collections(pipeline: Pipeline) -> dict[str, Collection]:
    """Every collection of a city: incidents, reports, streets (if any) and each zone layer.

    Computed once per pipeline (extents of the reference layers take a moment).
    """
    gis = pipeline.gis
    territory = gis.zones[pipeline.city.config.territory.layer].zones
    extent = _wgs84_bounds(territory)
    metric = crs_uri(CRS.from_user_input(pipeline.city.metric_crs))
    zone_filters = tuple(f"zone_{name}" for name in gis.zones)
    out = {
        "incidents": Collection(
            "incidents",
            "Incidents",
            "Problems to fix: reports of the same problem grouped, routed to a team "
            "(public fields only).",
            "incidents",
            "incident_id",
            CRS84,
            extent,
            ("status", "team", "service_code", *zone_filters),
            temporal=True,
        ),
        "reports": Collection(
            "reports",
            "Reports",
            "Citizen reports with their street, zones and incident (public fields only; "
            "no reporter contact data).",
            "reports",
            "report_id",
            CRS84,
            extent,
            ("status", "team", "service_code", "incident_id", *zone_filters),
            temporal=True,
        ),
    }
    if gis.streets is not None:
        attributes = tuple(c for c in gis.streets.columns if c != gis.streets.geometry.name)
        out["streets"] = Collection(
            "streets",
            "Streets",
            "Street centre-line segments reports are snapped to.",
            "streets",
            "segment_id",
            metric,
            _wgs84_bounds(gis.streets),
            attributes,
        )
    for name, index in gis.zones.items():
        out[name] = Collection(
            name,
            index.layer.label or name,
            f"Zone layer {name!r} (code and name).",
            "zones",
            "code",
            metric,
            _wgs84_bounds(index.zones),
            ("code", "name"),
            zone_layer=name,
        )
    return out


def collection(pipeline: Pipeline, collection_id: str) -> Collection:
    """One collection, or ``NotFound`` naming the ones that exist."""
    found = collections(pipeline)
    if collection_id not in found:
        raise NotFound(
            f"collectionId: no collection {collection_id!r}; collections: {', '.join(found)}",
            field="collectionId",
        )
    return found[collection_id]


def parse_bbox(value: str, name: str = "bbox") -> tuple[float, float, float, float]:
    """Four comma-separated numbers, lower corner then upper corner."""
    parts = value.split(",")
    if len(parts) == 6:  # 3-D bbox: heights are ignored
        parts = [parts[0], parts[1], parts[3], parts[4]]
    try:
        x0, y0, x1, y1 = (float(p) for p in parts)
    except ValueError as exc:
        raise InvalidInput(
            f"{name}: expected 4 numbers separated by commas, got {value!r}", field=name
        ) from exc
    if not all(np.isfinite([x0, y0, x1, y1])) or y0 > y1:
        raise InvalidInput(f"{name}: the lower corner must come first, got {value!r}", field=name)
    return x0, y0, x1, y1


def bbox_to_wgs84(
    bbox: tuple[float, float, float, float], crs: OutputCrs
) -> tuple[float, float, float, float]:
    """A bbox given in ``crs`` (axis order of that CRS) as WGS84 lon/lat bounds."""
    x0, y0, x1, y1 = bbox
    if crs.north_first:
        x0, y0, x1, y1 = y0, x0, y1, x1
    if crs.uri == CRS84 or crs.crs == CRS.from_epsg(4326):
        return x0, y0, x1, y1
    to_wgs84 = Transformer.from_crs(crs.crs, 4326, always_xy=True)
    lon0, lat0, lon1, lat1 = to_wgs84.transform_bounds(x0, y0, x1, y1, densify_pts=21)
    return float(lon0), float(lat0), float(lon1), float(lat1)


def parse_datetime(value: str) -> tuple[datetime | None, datetime | None]:
    """An instant or an interval ``start/end`` (``..`` or empty for open ends), RFC 3339."""

    def instant(text: str) -> datetime | None:
        if text in ("", ".."):
            return None
        try:
            moment = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError as exc:
            raise InvalidInput(
                f"datetime: {text!r} is not an RFC 3339 date-time", field="datetime"
            ) from exc
        return aware_utc(moment)

    if "/" in value:
        start_text, _, end_text = value.partition("/")
        start, end = instant(start_text), instant(end_text)
        if start and end and start > end:
            raise InvalidInput("datetime: the interval ends before it starts", field="datetime")
        return start, end
    moment = instant(value)
    if moment is None:
        raise InvalidInput("datetime: an instant cannot be open", field="datetime")
    return moment, moment


def _is_id(text: str) -> bool:
    """A stored row's id: ASCII digits that fit a 64-bit integer (nothing else can be one)."""
    return text.isascii() and text.isdigit() and len(text) <= 18


def parse_count(value: str | None, name: str, default: int, low: int, high: int) -> int:
    """An integer parameter within [low, high]."""
    if value is None:
        return default
    # ASCII digits only: int() would also read "٣" or "²"-like digits of other scripts.
    if not _INTEGER.fullmatch(value):
        raise InvalidInput(f"{name}: {value[:40]!r} is not an integer", field=name)
    number = int(value)
    if not low <= number <= high:
        raise InvalidInput(f"{name}: {number} is outside {low}..{high}", field=name)
    return number


@dataclass(frozen=True)
class ItemsQuery:
    """What one items request asks for, parsed and checked."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0
    """Position of the page's first feature among all those matched."""
    after: int | None = None
    """Id of the feature before the page (the ``next`` link sets it): the store seeks to
    it by index (keyset paging) instead of counting ``offset`` rows from the start."""
    bbox: tuple[float, float, float, float] | None = None
    """WGS84 lon/lat, whatever ``bbox-crs`` it was given in"""
    start: datetime | None = None
    end: datetime | None = None
    filters: dict[str, str] = field(default_factory=dict)
    ids: tuple[str, ...] | None = None
    cql2_filter: str | None = None
    """The ``filter`` parameter as checked CQL2-JSON (``voirie.maps.ogc_filter``)."""


@dataclass(frozen=True)
class Page:
    """Features of one page, in the output CRS with its axis order, and the match count."""

    features: gpd.GeoDataFrame
    number_matched: int


def _selection(query: ItemsQuery) -> Selection:
    """An items query on the incidents or reports layer as a store selection."""
    f = query.filters
    zone = next(((k.removeprefix("zone_"), v) for k, v in f.items() if k.startswith("zone_")), None)
    incident_ids = None
    if "incident_id" in f:
        incident_ids = (parse_count(f["incident_id"], "incident_id", 0, 0, 2**62),)
    ids = None
    if query.ids is not None:
        ids = tuple(parse_count(i, "featureId", 0, 0, 2**62) for i in query.ids)
    return Selection(
        ids=ids,
        incident_ids=incident_ids,
        statuses=(f["status"],) if "status" in f else None,
        teams=(f["team"],) if "team" in f else None,
        service_codes=(f["service_code"],) if "service_code" in f else None,
        zone=zone,
        bbox=query.bbox,
        start=query.start,
        end=query.end,
        limit=query.limit,
        offset=0 if query.after is not None else query.offset,
        after_id=query.after,
        cql2_filter=query.cql2_filter,
    )


def _reference_frame(pipeline: Pipeline, source: Collection) -> gpd.GeoDataFrame:
    gis = pipeline.gis
    if source.kind == "streets":
        assert gis.streets is not None
        return gis.streets
    assert source.zone_layer is not None
    return gis.zones[source.zone_layer].zones


def _metric_area(bbox: tuple[float, float, float, float], frame: gpd.GeoDataFrame) -> Any | None:
    """A lon/lat bbox as an area of a layer's CRS (edges densified so that they follow the
    projection), clipped to the layer's extent (a box of the whole world has no image in
    a national projection); ``None`` when it covers none of the layer."""
    own = shapely.box(*frame.total_bounds)
    own = shapely.segmentize(own, max(own.length / 400, 1e-9))  # edges bend in lon/lat
    extent = gpd.GeoSeries([own], crs=frame.crs).to_crs(4326)
    ex0, ey0, ex1, ey1 = extent.total_bounds
    x0, x1 = (min(max(x, ex0), ex1) for x in (bbox[0], bbox[2]))
    y0, y1 = (min(max(y, ey0), ey1) for y in (bbox[1], bbox[3]))
    if bbox[0] > ex1 or bbox[2] < ex0 or bbox[1] > ey1 or bbox[3] < ey0:
        return None
    if x0 > x1 or y0 > y1:
        return None
    step = max(_BBOX_DENSIFY_DEG, (x1 - x0 + y1 - y0) / 2000)
    # A point or a line where the box has no width or height (still a valid query).
    box = shapely.envelope(shapely.multipoints([(x0, y0), (x1, y1)]))
    if box.area > 0:
        box = shapely.segmentize(box, step)
    area = gpd.GeoSeries([box], crs=4326).to_crs(frame.crs).iloc[0]
    if area is None or area.is_empty or not area.is_valid or not np.isfinite(area.bounds).all():
        return None
    return area


def _filter_reference(
    frame: gpd.GeoDataFrame, query: ItemsQuery, id_column: str
) -> gpd.GeoDataFrame:
    """Reference features matching the query, in their order, all pages."""
    keep = np.ones(len(frame), dtype=bool)
    if query.bbox is not None:
        hits = np.zeros(len(frame), dtype=bool)
        area = _metric_area(query.bbox, frame)
        if area is not None:
            hits[frame.sindex.query(area, predicate="intersects")] = True
        keep &= hits
    for name, value in query.filters.items():
        keep &= (frame[name].astype(str) == value).to_numpy()
    if query.ids is not None:
        keep &= frame[id_column].astype(str).isin(query.ids).to_numpy()
    return frame[keep]


def read_page(pipeline: Pipeline, source: Collection, query: ItemsQuery, crs: OutputCrs) -> Page:
    """The features of one items request and how many match in all."""
    if source.kind in ("incidents", "reports"):
        selection = _selection(query)
        layer: Literal["incidents", "reports"] = (
            "incidents" if source.kind == "incidents" else "reports"
        )
        frame = pipeline.reads.publish(  # sensitive services blurred (privacy.blur)
            pipeline.reads.incidents(selection)
            if layer == "incidents"
            else pipeline.reads.reports(selection)
        )
        everything = replace(selection, limit=None, offset=0, after_id=None)
        matched = pipeline.reads.count(layer, everything)
    else:
        everything = _filter_reference(_reference_frame(pipeline, source), query, source.id_column)
        matched = len(everything)
        frame = everything.iloc[query.offset : query.offset + query.limit]
    return Page(to_output(frame, crs), matched)


@dataclass(frozen=True)
class JsonPage:
    """One page of features already encoded: the ``features`` members (GeoJSON Feature
    objects joined by commas), how many, the last one's id (for the ``next`` link) and
    how many match in all."""

    features: str
    returned: int
    last_id: object
    number_matched: int


def read_json_page(
    pipeline: Pipeline, source: Collection, query: ItemsQuery, crs: OutputCrs
) -> JsonPage:
    """``read_page`` encoded as GeoJSON: for incidents and reports the lean read path
    (rows as tuples, one orjson encoding, reprojection only for another CRS, no count
    when the first page holds every match); the reference layers are in memory already."""
    if source.kind not in ("incidents", "reports"):
        page = read_page(pipeline, source, query, crs)
        ids = page.features[source.id_column]
        return JsonPage(
            geojson_features(page.features, source.id_column),
            len(ids),
            ids.iloc[-1] if len(ids) else None,
            page.number_matched,
        )
    selection = _selection(query)
    layer: Literal["incidents", "reports"] = (
        "incidents" if source.kind == "incidents" else "reports"
    )
    records = pipeline.reads.records(layer, selection)
    first_page = query.offset == 0 and query.after is None
    asked = query.ids is not None and len(query.ids) <= query.limit
    if first_page and (len(records) < query.limit or asked):
        matched = len(records)  # every match is on this page: no need to count them
    else:
        everything = replace(selection, limit=None, offset=0, after_id=None)
        matched = pipeline.reads.count(layer, everything)
    xs, ys = records_xy(records, crs)
    encoded = features.point_features(records, source.id_column, xs, ys).decode()
    last = records[-1][source.id_column] if records else None
    return JsonPage(encoded, len(records), last, matched)


_FROM_WGS84: dict[str, Transformer] = {}


def _from_wgs84(crs: OutputCrs) -> Transformer:
    """The transformation of WGS84 lon/lat to a served CRS (x/y order), built once."""
    if crs.uri not in _FROM_WGS84:
        _FROM_WGS84[crs.uri] = Transformer.from_crs(_WGS84, crs.crs, always_xy=True)
    return _FROM_WGS84[crs.uri]


def output_xy(lon: np.ndarray, lat: np.ndarray, crs: OutputCrs) -> tuple[list[float], list[float]]:
    """WGS84 points as coordinates in ``crs``, in its axis order (as ``to_output``)."""
    if crs.wgs84:
        x, y = lon, lat
    else:
        x, y = _from_wgs84(crs).transform(lon, lat)
    if crs.north_first:
        x, y = y, x
    return np.asarray(x, dtype=float).tolist(), np.asarray(y, dtype=float).tolist()


def _coordinate(value: object) -> float:
    """A stored coordinate as a float, a missing one as NaN (as ``numpy`` reads it)."""
    return math.nan if value is None else float(cast(float, value))


def records_xy(
    records: Sequence[Mapping[str, object]], crs: OutputCrs
) -> tuple[list[float], list[float]]:
    """The points of records (``lon``/``lat``, WGS84) as ``output_xy`` gives them.

    Served in WGS84 (the default, and what most requests ask), the values are the
    records' own, taken without numpy: for a page of one or a few features, making the
    arrays and their lists again cost more than the features' encoding."""
    if not crs.wgs84:
        return output_xy(
            np.array([r["lon"] for r in records], dtype=float),
            np.array([r["lat"] for r in records], dtype=float),
            crs,
        )
    xs = [_coordinate(r["lon"]) for r in records]
    ys = [_coordinate(r["lat"]) for r in records]
    return (ys, xs) if crs.north_first else (xs, ys)


def one_json_feature(
    pipeline: Pipeline, source: Collection, feature_id: str, crs: OutputCrs
) -> JsonPage:
    """``one_feature`` encoded as GeoJSON (the lean read path), or ``NotFound``."""
    if source.kind in ("incidents", "reports") and not _is_id(feature_id):
        raise NotFound(f"featureId: no feature {feature_id!r} in {source.id}", field="featureId")
    page = read_json_page(pipeline, source, ItemsQuery(limit=1, ids=(feature_id,)), crs)
    if not page.returned:
        raise NotFound(f"featureId: no feature {feature_id!r} in {source.id}", field="featureId")
    return page


def to_output(frame: gpd.GeoDataFrame, crs: OutputCrs) -> gpd.GeoDataFrame:
    """Features reprojected to ``crs``, coordinates swapped where its first axis is north.

    WGS84 to CRS84 or EPSG:4326 is no transformation: the frame is returned as it is (its
    geometries are x = longitude whatever the CRS's axis order; no copy for each page).
    """
    out = frame if _is_wgs84(frame.crs) and crs.wgs84 else frame.to_crs(crs.crs)
    if crs.north_first and len(out):
        out = out.set_geometry(
            shapely.transform(out.geometry.to_numpy(), lambda xy: xy[:, ::-1]), crs=out.crs
        )
    return out


def items_query(
    source: Collection, params: dict[str, str], supported: dict[str, OutputCrs]
) -> ItemsQuery:
    """Check an items request's query parameters against what the collection accepts."""
    allowed = ITEMS_PARAMETERS | set(source.filters)
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InvalidInput(
            f"{unknown[0]}: unknown query parameter; this collection accepts "
            f"{', '.join(sorted(allowed))}",
            field=unknown[0],
        )
    bbox = None
    if "bbox" in params:
        bbox_crs = parse_crs(params.get("bbox-crs", CRS84), supported, "bbox-crs")
        bbox = bbox_to_wgs84(parse_bbox(params["bbox"]), bbox_crs)
    elif "bbox-crs" in params:
        raise InvalidInput("bbox-crs: given without bbox", field="bbox-crs")
    start = end = None
    if "datetime" in params and source.temporal:
        start, end = parse_datetime(params["datetime"])
    after = None
    if "after" in params:
        if source.kind not in ("incidents", "reports"):
            raise InvalidInput(f"after: {source.id} pages by offset only", field="after")
        after = parse_count(params["after"], "after", 0, 0, 2**62)
    return ItemsQuery(
        cql2_filter=_cql2_filter(source, params, supported),
        limit=parse_count(params.get("limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=parse_count(params.get("offset"), "offset", 0, 0, 2**62),
        after=after,
        bbox=bbox,
        start=start,
        end=end,
        filters={k: v for k, v in params.items() if k in source.filters},
    )


def _cql2_filter(
    source: Collection, params: dict[str, str], supported: dict[str, OutputCrs]
) -> str | None:
    """The ``filter`` of an items request as checked CQL2-JSON, or None without one."""
    if "filter" not in params:
        for name in ("filter-lang", "filter-crs"):
            if name in params:
                raise InvalidInput(f"{name}: given without filter", field=name)
        return None
    if source.kind not in ("incidents", "reports"):
        raise InvalidInput(
            f"filter: the {source.id} collection takes no CQL2 filter; filter it with its "
            "attributes as query parameters",
            field="filter",
        )
    crs = parse_crs(params.get("filter-crs", CRS84), supported, "filter-crs")
    zones = (f.removeprefix("zone_") for f in source.filters if f.startswith("zone_"))
    names = ogc_filter.queryable_names(source.kind, zones)
    return ogc_filter.parse(
        params["filter"], params.get("filter-lang", "cql2-text"), crs.crs, names
    )


def one_feature(
    pipeline: Pipeline, source: Collection, feature_id: str, crs: OutputCrs
) -> gpd.GeoDataFrame:
    """The single feature ``feature_id`` of a collection, or ``NotFound``."""
    if source.kind in ("incidents", "reports") and not _is_id(feature_id):
        raise NotFound(f"featureId: no feature {feature_id!r} in {source.id}", field="featureId")
    page = read_page(pipeline, source, ItemsQuery(limit=1, ids=(feature_id,)), crs)
    if not len(page.features):
        raise NotFound(f"featureId: no feature {feature_id!r} in {source.id}", field="featureId")
    return page.features
