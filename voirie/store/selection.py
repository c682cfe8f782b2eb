"""Which reports or incidents to read: one filter object, turned into SQL for both backends.

Every read that the API, the exports, the tiles and the maps make goes through a
``Selection``: the filters of Open311 ``GET requests``, OGC API Features ``items``, the staff
incident list and the download filters are all the same few conditions. The SQL is built
here once, with bound values only; a backend supplies its ``Dialect`` (placeholder, how a
bbox uses its spatial index, how an instant is compared: ``voirie.store.dialect``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal, get_args

from voirie.model import OPEN_STATUSES
from voirie.store.cql2 import Translator, ZoneTable
from voirie.store.dialect import Dialect
from voirie.store.public_points import point_columns
from voirie.store.schema import MAX_ID

Layer = Literal["reports", "incidents"]
LAYERS: tuple[Layer, ...] = ("reports", "incidents")
SortKey = Literal["first_reported_at", "due_at", "priority", "report_count"]
"""The incident columns a selection may be ordered by (the staff queue's sorts)."""
SORT_KEYS: tuple[SortKey, ...] = get_args(SortKey)
_OPEN = tuple(sorted(status.value for status in OPEN_STATUSES))


@dataclass(frozen=True)
class Selection:
    """Which rows of the reports or incidents layer to read; ``None`` means no filter.

    Times compare with the layer's own columns: ``start`` keeps reports requested at or
    after it and incidents last reported at or after it; ``end`` keeps reports requested at
    or before it and incidents first reported at or before it (an incident overlaps the
    interval). ``statuses``, ``teams`` and ``updated_after`` apply to a report through the
    incident it belongs to.
    """

    ids: tuple[int, ...] | None = None
    incident_ids: tuple[int, ...] | None = None
    service_codes: tuple[str, ...] | None = None
    statuses: tuple[str, ...] | None = None
    teams: tuple[str, ...] | None = None
    zone: tuple[str, str] | None = None
    bbox: tuple[float, float, float, float] | None = None
    start: datetime | None = None
    end: datetime | None = None
    updated_after: datetime | None = None
    overdue_at: datetime | None = None
    text: str | None = None
    cql2_filter: str | None = None
    """A CQL2-JSON filter, checked (``voirie.store.cql2``): bound SQL on either backend."""
    limit: int | None = None
    offset: int = 0
    after_id: int | None = None
    """Keyset paging (rows with a greater id): how streamed exports walk a layer."""
    sort: SortKey | None = None
    """Order incidents by this column (missing values last, then by id) instead of by id;
    the database finds the page (``ORDER BY`` ... ``LIMIT``), not the caller."""
    descending: bool = False
    """With ``sort``: greatest first (ties and missing values stay in id order, last)."""
    public_points: bool = False
    """Spatial conditions (``bbox``, CQL2's, a search's circle) on the rows' public points
    (``voirie.store.public_points``): what a public read of a city that blurs does."""

    def page(self, limit: int | None, offset: int = 0) -> Selection:
        """The same filters, another page."""
        return replace(self, limit=limit, offset=offset)


EVERYTHING = Selection()
"""The selection that keeps every row."""


@dataclass(frozen=True)
class _Shape:
    """How one layer is read: its columns, its joins, its key and its column names."""

    table: str
    alias: str
    columns: str
    joins: str
    time_start: str
    time_end: str
    text: str
    zones: ZoneTable


_SHAPES: dict[Layer, _Shape] = {
    # Public fields only: no query here ever joins report_contacts.
    "reports": _Shape(
        table="reports",
        alias="r",
        columns="""r.id AS report_id, r.external_id, r.source, r.service_code, r.description,
               r.address, r.channel, r.media_url, r.lon, r.lat, r.requested_at, r.received_at,
               e.segment_id, e.street_name, e.snap_distance_m, e.position_m, e.side,
               e.snap_method, e.boundary_distance_m, e.off_network, e.outside_territory,
               e.near_boundary, l.incident_id, l.score AS dedupe_score,
               l.reason AS dedupe_reason, i.team, i.status""",
        joins="""JOIN enrichments e ON e.report_id = r.id
        JOIN incident_reports l ON l.report_id = r.id
        JOIN incidents i ON i.id = l.incident_id""",
        time_start="r.requested_at",
        time_end="r.requested_at",
        text="coalesce(r.description, '') || ' ' || coalesce(r.address, '') || ' ' || "
        "coalesce(e.street_name, '')",
        zones=ZoneTable("report_zones", "report_id", "z.report_id = r.id"),
    ),
    "incidents": _Shape(
        table="incidents",
        alias="i",
        columns="""i.id AS incident_id, i.service_code, i.origin_report_id, i.lon, i.lat,
               i.segment_id, i.street_name, i.status, i.team, i.priority, i.due_at,
               i.report_count, i.supporters, i.first_reported_at, i.last_reported_at,
               i.updated_at, a.rule_id, a.rule_version, a.reason AS routing_reason""",
        joins="""LEFT JOIN assignments a ON a.id = (
            SELECT max(a2.id) FROM assignments a2 WHERE a2.incident_id = i.id)
        LEFT JOIN reports o ON o.id = i.origin_report_id""",
        time_start="i.last_reported_at",
        time_end="i.first_reported_at",
        text="coalesce(i.street_name, '') || ' ' || coalesce(o.description, '') || ' ' || "
        "coalesce(o.address, '')",
        # Where the incident stands now (migration 0018), not its first report: a pin
        # moved by staff takes its new zones into every filter and column.
        zones=ZoneTable(
            "incident_zones",
            "incident_id",
            "z.jurisdiction_id = i.jurisdiction_id AND z.incident_id = i.id",
        ),
    ),
}


@functools.cache
def layer_columns(layer: Layer) -> tuple[str, ...]:
    """The names of the columns ``select_sql`` reads of a layer, in order (worked out
    once: every page of the lean read path asks)."""
    columns = _SHAPES[layer].columns.split(",")
    return tuple(c.split(" AS ")[-1].split(".")[-1].strip() for c in columns)


def _storable(ids: Sequence[int]) -> list[int]:
    """The ids that can exist (a client may ask for any integer; none beyond 64 bits is)."""
    return [int(v) for v in ids if 0 < int(v) <= MAX_ID]


def _escape_like(text: str) -> str:
    """A user's text as a literal LIKE pattern (``%`` and ``_`` mean themselves)."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class _Where:
    """Conditions and their bound values, in order."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.conditions: list[str] = []
        self.params: list[object] = []

    def add(self, condition: str, *params: object) -> None:
        self.conditions.append(condition.replace("?", self.dialect.placeholder))
        self.params.extend(params)

    def any_of(self, column: str, values: Sequence[object]) -> None:
        if not values:
            self.conditions.append("1 = 0")
            return
        self.add(f"{column} IN ({', '.join('?' * len(values))})", *values)


def _where(layer: Layer, jurisdiction_id: str, selection: Selection, dialect: Dialect) -> _Where:
    shape = _SHAPES[layer]
    a = shape.alias
    where = _Where(dialect)
    s = selection
    city = f"{a}.jurisdiction_id"
    where.add(f"{city if s.ids is None else dialect.unindexed(city)} = ?", jurisdiction_id)
    if s.ids is not None:
        where.any_of(f"{a}.id", _storable(s.ids))
    if s.incident_ids is not None:
        where.any_of("i.id", _storable(s.incident_ids))
    if s.service_codes is not None:
        where.any_of(f"{a}.service_code", list(s.service_codes))
    if s.statuses is not None:
        where.any_of("i.status", list(s.statuses))
    if s.teams is not None:
        where.any_of("i.team", list(s.teams))
    if s.zone is not None:
        zones = shape.zones
        where.add(
            f"EXISTS (SELECT 1 FROM {zones.table} z WHERE {zones.row} "
            "AND z.layer = ? AND z.code = ?)",
            *s.zone,
        )
    if s.bbox is not None:
        box = [float(v) for v in s.bbox]
        if s.public_points:
            where.add(dialect.public_bbox(shape.table, a), *box, *box)
        else:
            where.add(dialect.bbox(shape.table, a), *box)
    if s.start is not None:
        where.add(f"{shape.time_start} >= ?", dialect.instant(s.start))
    if s.end is not None:
        where.add(f"{shape.time_end} <= ?", dialect.instant(s.end))
    if s.updated_after is not None:
        where.add("i.updated_at > ?", dialect.instant(s.updated_after))
    if s.overdue_at is not None:
        where.any_of("i.status", _OPEN)
        where.add("i.due_at < ?", dialect.instant(s.overdue_at))
    if s.text:
        where.add(f"lower({shape.text}) LIKE ? ESCAPE '\\'", _escape_like(s.text))
    if s.cql2_filter is not None:
        translator = Translator(
            layer, shape.table, a, shape.zones, dialect, public_points=s.public_points
        )
        condition, params = translator.condition(json.loads(s.cql2_filter))
        where.add(condition, *params)
    if s.after_id is not None:
        where.add(f"{a}.id > ?", int(s.after_id))
    return where


def _paging(selection: Selection, dialect: Dialect) -> tuple[str, list[object]]:
    """``LIMIT``/``OFFSET`` with bound values (sqlite needs a LIMIT before an OFFSET)."""
    if selection.limit is None and not selection.offset:
        return "", []
    limit = -1 if selection.limit is None else int(selection.limit)
    if limit < 0 and dialect.placeholder == "%s":
        return f" OFFSET {dialect.placeholder}", [int(selection.offset)]
    mark = dialect.placeholder
    return f" LIMIT {mark} OFFSET {mark}", [limit, int(selection.offset)]


def _order_by(layer: Layer, selection: Selection) -> str:
    """The ``ORDER BY`` terms of a selection: its sort column, then the id.

    Only ``due_at`` may be missing; it is put last either way (``NULLS LAST``, which
    both backends read). Ties stay in id order in both directions.
    """
    a = _SHAPES[layer].alias
    if selection.sort is None:
        return f"{a}.id"
    if layer != "incidents" or selection.sort not in SORT_KEYS:
        raise ValueError(f"sort: {selection.sort!r} is not a sort of the {layer} layer")
    if selection.after_id is not None:
        raise ValueError("sort: keyset paging by id (after_id) walks the id order only")
    direction = " DESC" if selection.descending else ""
    nulls = " NULLS LAST" if selection.sort == "due_at" else ""
    return f"{a}.{selection.sort}{direction}{nulls}, {a}.id"


def select_sql(
    layer: Layer,
    jurisdiction_id: str,
    selection: Selection,
    dialect: Dialect,
    zone_layers: Sequence[str] = (),
) -> tuple[str, list[object]]:
    """The rows of a layer that a selection keeps, ordered by id (or its sort), one page,
    and after ``layer_columns`` the row's zone code in each of ``zone_layers`` (NULL where
    it has none).

    A sorted selection finds its page's ids first, in a subquery with only the joins that
    decide which rows there are (as ``count_sql``), so the database walks the sort's
    index and stops at the page; the to-one joins are then made for the page's rows only.
    Each zone code is one look-up of its table's key: the page and its zones in one
    statement, where ``zones_sql`` is a second one (in PostgreSQL's pipeline mode that
    second statement cost a one-feature read a third of its client CPU, issue 19).
    """
    shape = _SHAPES[layer]
    a = shape.alias
    paging, paging_params = _paging(selection, dialect)
    columns = shape.columns + "".join(
        f", (SELECT z.code FROM {shape.zones.table} z WHERE z.jurisdiction_id = "
        f"{a}.jurisdiction_id AND z.{shape.zones.key} = {a}.id AND z.layer = "
        f"{dialect.placeholder}) AS zone_{n}"
        for n in range(len(zone_layers))
    )
    if selection.sort is not None:
        order = _order_by(layer, selection)
        rows, params = _unpaged_from(layer, jurisdiction_id, selection, dialect)
        mark = dialect.placeholder
        text = (
            f"SELECT {columns}\n        FROM {shape.table} {a}\n        "
            f"{shape.joins}\n        WHERE {a}.jurisdiction_id = {mark} AND {a}.id IN "
            f"(SELECT {a}.id {rows} ORDER BY {order}{paging})\n        ORDER BY {order}"
        )
        return text, [*zone_layers, jurisdiction_id, *params, *paging_params]
    where = _where(layer, jurisdiction_id, selection, dialect)
    text = (
        f"SELECT {columns}\n        FROM {shape.table} {a}\n        "
        f"{shape.joins}\n        WHERE {' AND '.join(where.conditions)}\n        "
        f"ORDER BY {a}.id{paging}"
    )
    return text, [*zone_layers, *where.params, *paging_params]


REQUEST_COLUMNS = (
    "report_id",
    "service_code",
    "description",
    "address",
    "street_name",
    "media_url",
    "lon",
    "lat",
    "requested_at",
    "incident_id",
    "status",
    "team",
    "updated_at",
    "due_at",
)
"""What ``requests_sql`` reads of each report: what a GeoReport v2 request shows, with
its incident's status, team and times (``street_name``: what a blurred report's address
becomes, ``voirie.services.reads``)."""

_REQUEST_SELECT = (
    "SELECT r.id AS report_id, r.service_code, r.description, r.address, e.street_name, "
    "r.media_url, r.lon, r.lat, r.requested_at, l.incident_id, i.status, i.team, "
    "i.updated_at, i.due_at"
)


def requests_sql(
    jurisdiction_id: str, selection: Selection, dialect: Dialect
) -> tuple[str, list[object]]:
    """The reports a selection keeps, in id order, one page (as ``select_sql`` reads the
    reports layer), as ``REQUEST_COLUMNS``: Open311's GET requests in one statement
    instead of the page, then its incidents, each with every column of its layer."""
    shape = _SHAPES["reports"]
    where = _where("reports", jurisdiction_id, selection, dialect)
    paging, paging_params = _paging(selection, dialect)
    text = (
        f"{_REQUEST_SELECT} FROM reports r {shape.joins} "
        f"WHERE {' AND '.join(where.conditions)} ORDER BY r.id{paging}"
    )
    return text, where.params + paging_params


def request_changes_sql(
    jurisdiction_id: str, selection: Selection, dialect: Dialect, kind: str
) -> tuple[str, list[object]]:
    """``(incident_id, reason)`` of the events of one ``kind`` of the incidents of
    ``requests_sql``'s page, oldest first: sent with the page, in the same round trip
    (the page's incidents found again in a materialized CTE, as ``zones_sql`` does)."""
    page, params = requests_sql(jurisdiction_id, selection, dialect)
    ids = page.replace(_REQUEST_SELECT, "SELECT l.incident_id", 1)
    mark = dialect.placeholder
    # The page's few incidents drive the read (``events (entity, entity_id)``): on sqlite,
    # which plans without statistics, the city and kind are kept off their index, which
    # would otherwise walk every change of the city in time order.
    city, kind_column = dialect.unindexed("v.jurisdiction_id"), dialect.unindexed("v.kind")
    text = (
        f"WITH page AS MATERIALIZED ({ids}) SELECT v.entity_id, v.reason FROM events v "
        f"WHERE {city} = {mark} AND v.entity = 'incident' AND {kind_column} = {mark} "
        "AND v.entity_id IN (SELECT incident_id FROM page) ORDER BY v.at, v.id"
    )
    return text, [*params, jurisdiction_id, kind]


def count_sql(
    layer: Layer, jurisdiction_id: str, selection: Selection, dialect: Dialect
) -> tuple[str, list[object]]:
    """How many rows a selection keeps, whatever its page.

    The incidents layer's joins are LEFT joins to at most one row each (latest assignment,
    origin report): they never change how many rows there are, so the count leaves them
    out (they cost a scan of every assignment) unless the text condition reads the origin
    report. The reports layer's are inner joins, which decide which rows exist: kept.
    """
    shape = _SHAPES[layer]
    where = _where(layer, jurisdiction_id, replace(selection, limit=None, offset=0), dialect)
    joins = shape.joins if layer == "reports" or selection.text else ""
    text = (
        f"SELECT count(*) FROM {shape.table} {shape.alias} {joins} "
        f"WHERE {' AND '.join(where.conditions)}"
    )
    return text, where.params


def status_counts_sql(
    layer: Layer, jurisdiction_id: str, selection: Selection, dialect: Dialect
) -> tuple[str, list[object]]:
    """``(status, count)`` of the rows a selection keeps, whatever its page: the counts
    per status a filtered list shows beside it, in one grouped statement."""
    rows, params = _unpaged_from(layer, jurisdiction_id, selection, dialect)
    return f"SELECT i.status, count(*) {rows} GROUP BY i.status", params


def zones_sql(
    layer: Layer, jurisdiction_id: str, selection: Selection, dialect: Dialect
) -> tuple[str, list[object]]:
    """The zone codes of the rows of one page: ``row_id`` (the layer's id), layer, code, name.

    A report's zones are its own; an incident's are where it stands now (``incident_zones``).
    The page's ids are found once (a materialized CTE): a planner without statistics (a
    database just loaded) would otherwise run the page's query again for every row.
    """
    shape = _SHAPES[layer]
    page, params = select_sql(layer, jurisdiction_id, selection, dialect)
    ids = page.replace(f"SELECT {shape.columns}", f"SELECT {shape.alias}.id", 1)
    zones = shape.zones
    text = (
        f"WITH page AS MATERIALIZED ({ids}) "
        "SELECT page.id AS row_id, z.layer, z.code, z.name "
        f"FROM page JOIN {zones.table} z ON z.{zones.key} = page.id "
        f"WHERE z.jurisdiction_id = {dialect.placeholder} ORDER BY page.id, z.layer"
    )
    return text, [*params, jurisdiction_id]


def _unpaged_from(
    layer: Layer, jurisdiction_id: str, selection: Selection, dialect: Dialect
) -> tuple[str, list[object]]:
    """``FROM ... WHERE ...`` of the rows a selection keeps, whatever its page, with only
    the joins that decide which rows there are (as ``count_sql``)."""
    shape = _SHAPES[layer]
    where = _where(layer, jurisdiction_id, replace(selection, limit=None, offset=0), dialect)
    joins = shape.joins if layer == "reports" or selection.text else ""
    text = f"FROM {shape.table} {shape.alias} {joins} WHERE {' AND '.join(where.conditions)}"
    return text, where.params


def points_sql(
    layer: Layer, jurisdiction_id: str, selection: Selection, dialect: Dialect
) -> tuple[str, list[object]]:
    """Id, lon and lat of every row a selection keeps (its page ignored), by id: what a
    search in metres measures before it reads the few rows it keeps (public points with
    ``public_points``)."""
    shape = _SHAPES[layer]
    rows, params = _unpaged_from(layer, jurisdiction_id, selection, dialect)
    a = shape.alias
    lon, lat = point_columns(a, public=selection.public_points)
    return f"SELECT {a}.id AS row_id, {lon}, {lat} {rows} ORDER BY {a}.id", params


def nearest_sql(
    layer: Layer,
    jurisdiction_id: str,
    selection: Selection,
    dialect: Dialect,
    point: tuple[float, float],
    radius_m: float,
    srid: int,
) -> tuple[str, list[object]]:
    """The page of the rows a selection keeps within ``radius_m`` metres of a WGS84 point
    (lon, lat), nearest first then by id: ``row_id`` and ``distance_m``, measured in the
    metric CRS ``srid``. The selection's bbox goes through the spatial index and the
    database stops at the page (a top-N sort), so only the kept rows are read further.
    Only for a dialect with ``metric_distance``."""
    if dialect.metric_distance is None:
        raise ValueError("this backend cannot measure metres: use points_sql")
    shape = _SHAPES[layer]
    rows, params = _unpaged_from(layer, jurisdiction_id, selection, dialect)
    paging, paging_params = _paging(selection, dialect)
    mark = dialect.placeholder
    text = (
        f"SELECT row_id, distance_m FROM (SELECT {shape.alias}.id AS row_id, "
        f"{dialect.metric_distance(shape.alias)} AS distance_m {rows}) AS near "
        f"WHERE distance_m <= {mark} ORDER BY distance_m, row_id{paging}"
    )
    lon, lat = (float(v) for v in point)
    return text, [int(srid), lon, lat, int(srid), *params, float(radius_m), *paging_params]
