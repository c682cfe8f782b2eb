"""CQL2 filters (OGC API Features Part 3) as bound SQL over the reports and incidents layers.

The filter arrives parsed and checked as CQL2-JSON (``voirie.maps.ogc_filter`` parses the
text or JSON encodings with the ``cql2`` library, checks the property names against the
collection's queryables and brings every geometry to WGS84 longitude/latitude). This
module turns it into one SQL condition with ``?`` marks and the values bound to them, the
same on sqlite and PostgreSQL through the backend's ``Dialect``:

- Basic CQL2: ``and``/``or``/``not``, ``= <> < <= > >=``, ``isNull``, boolean literals;
  advanced comparisons ``like`` (case-sensitive on both backends), ``between``, ``in``;
  ``casei`` (lower case on both sides);
- ``s_intersects``/``s_disjoint``/``s_within`` of the layer's point with a BBOX, a
  (multi)polygon or a point: the box goes through the spatial index, then a point in
  polygon test counts the polygon's edges a ray from the point crosses (edges bound as
  rows, so the test is plain SQL on both backends);
- comparisons and ``t_after``/``t_before``/``t_during``/``t_equals``/``t_intersects``/
  ``t_disjoint`` of the layers' instants with a TIMESTAMP, a DATE (its whole UTC day) or
  an INTERVAL (``..`` for an open end).

Anything else is an ``InvalidInput`` on the ``filter`` field that names what is not
supported. Spec: https://docs.ogc.org/is/21-065r2/21-065r2.html (CQL2).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from voirie.errors import InvalidInput
from voirie.store.dialect import Dialect
from voirie.store.public_points import point_columns

Kind = Literal["string", "integer", "number", "datetime", "geometry"]
Fragment = tuple[str, list[object]]
"""SQL text with ``?`` marks, and the values bound to them in order."""


@dataclass(frozen=True)
class ZoneTable:
    """Where a layer's rows keep their zones: the table (alias ``z``), its column holding
    the row's id, and the condition matching its rows to the layer's row (``report_zones``
    for a report, ``incident_zones`` for an incident: where it stands now)."""

    table: str
    key: str
    row: str


@dataclass(frozen=True)
class Queryable:
    """A property a filter may name: its SQL expression over the layer's query and its kind."""

    sql: str
    kind: Kind
    params: tuple[object, ...] = ()
    """Values bound to the ``?`` marks of ``sql``."""


def _point(alias: str) -> Queryable:
    return Queryable(f"{alias}.lon,{alias}.lat", "geometry")


QUERYABLES: dict[str, dict[str, Queryable]] = {
    "incidents": {
        "geometry": _point("i"),
        "incident_id": Queryable("i.id", "integer"),
        "service_code": Queryable("i.service_code", "string"),
        "status": Queryable("i.status", "string"),
        "team": Queryable("i.team", "string"),
        "priority": Queryable("i.priority", "integer"),
        "segment_id": Queryable("i.segment_id", "string"),
        "street_name": Queryable("i.street_name", "string"),
        "report_count": Queryable("i.report_count", "integer"),
        "supporters": Queryable("i.supporters", "integer"),
        "first_reported_at": Queryable("i.first_reported_at", "datetime"),
        "last_reported_at": Queryable("i.last_reported_at", "datetime"),
        "updated_at": Queryable("i.updated_at", "datetime"),
        "due_at": Queryable("i.due_at", "datetime"),
    },
    "reports": {
        "geometry": _point("r"),
        "report_id": Queryable("r.id", "integer"),
        "incident_id": Queryable("l.incident_id", "integer"),
        "service_code": Queryable("r.service_code", "string"),
        "source": Queryable("r.source", "string"),
        "channel": Queryable("r.channel", "string"),
        "segment_id": Queryable("e.segment_id", "string"),
        "street_name": Queryable("e.street_name", "string"),
        "snap_distance_m": Queryable("e.snap_distance_m", "number"),
        "status": Queryable("i.status", "string"),
        "team": Queryable("i.team", "string"),
        "requested_at": Queryable("r.requested_at", "datetime"),
        "received_at": Queryable("r.received_at", "datetime"),
    },
}
"""The queryables of each layer (besides one ``zone_<layer>`` string per zone layer)."""
ZONE_PREFIX = "zone_"
_ZONE_NAME = re.compile(r"zone_[A-Za-z0-9_]+")
_COMPARISONS = {"=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_SPATIAL = ("s_intersects", "s_disjoint", "s_within")
_TEMPORAL = ("t_after", "t_before", "t_during", "t_equals", "t_intersects", "t_disjoint")
_NEVER = "1 = 0"
_ALWAYS = "1 = 1"


def _bad(message: str) -> InvalidInput:
    return InvalidInput(f"filter: {message}", field="filter")


def queryable(layer: str, name: str, zones: ZoneTable) -> Queryable:
    """The queryable ``name`` of a layer; ``zone_<layer>`` is the code of the zone of that
    layer the row is in, read from ``zones`` (a report's own, an incident's where it stands
    now)."""
    found = QUERYABLES[layer].get(name)
    if found is not None:
        return found
    if _ZONE_NAME.fullmatch(name):
        sql = f"(SELECT z.code FROM {zones.table} z WHERE {zones.row} AND z.layer = ?)"
        return Queryable(sql, "string", (name.removeprefix(ZONE_PREFIX),))
    raise _bad(f"unknown property {name!r}; see the collection's queryables")


@dataclass(frozen=True)
class _Value:
    """An operand: SQL text and its bound values, of one kind (None for a NULL literal)."""

    sql: str
    params: list[object]
    kind: Kind | None


@dataclass(frozen=True)
class _Span:
    """A temporal literal as a closed UTC span (a TIMESTAMP is a span of one instant; a DATE
    is its day, end excluded); ``None`` is an open end."""

    start: datetime | None
    end: datetime | None
    end_excluded: bool = False


class Translator:
    """Turns one CQL2-JSON filter into a condition over one layer (see the module doc)."""

    def __init__(
        self,
        layer: str,
        table: str,
        alias: str,
        zones: ZoneTable,
        dialect: Dialect,
        *,
        public_points: bool = False,
    ) -> None:
        self.layer = layer
        self.table = table
        self.alias = alias
        self.zones = zones
        self.dialect = dialect
        # Spatial operators on the public points (``voirie.store.public_points``).
        self.public_points = public_points
        self.lon, self.lat = point_columns(alias, public=public_points)
        self._ops: dict[str, Callable[[list[Any]], Fragment]] = {
            "and": lambda args: self._combine(" AND ", args),
            "or": lambda args: self._combine(" OR ", args),
            "not": self._not,
            "isNull": self._is_null,
            "like": self._like,
            "between": self._between,
            "in": self._in,
            **{op: functools.partial(self._compare, op) for op in _COMPARISONS},
            **{op: functools.partial(self._spatial, op) for op in _SPATIAL},
            **{op: functools.partial(self._temporal, op) for op in _TEMPORAL},
        }

    def condition(self, node: object) -> Fragment:
        """A boolean expression of the filter as SQL."""
        if isinstance(node, bool):
            return (_ALWAYS if node else _NEVER), []
        if not isinstance(node, Mapping) or "op" not in node:
            raise _bad(f"expected a condition, got {_show(node)}")
        op = str(node["op"])
        args = list(node.get("args") or [])
        handler = self._ops.get(op)
        if handler is None:
            raise _bad(f"operator {op!r} is not supported here; supported: {', '.join(self._ops)}")
        text, params = handler(args)
        return f"({text})", params

    def _combine(self, joiner: str, args: list[Any]) -> Fragment:
        parts = [self.condition(a) for a in args]
        if not parts:
            raise _bad("and/or need at least one argument")
        return joiner.join(p[0] for p in parts), [v for p in parts for v in p[1]]

    def _not(self, args: list[Any]) -> Fragment:
        text, params = self.condition(_one(args, "not"))
        return f"NOT {text}", params

    def _is_null(self, args: list[Any]) -> Fragment:
        value = self._value(_one(args, "isNull"))
        return f"{value.sql} IS NULL", value.params

    def _operand(self, node: object) -> _Value:
        """A scalar operand: a property, a literal or ``casei`` of one."""
        if isinstance(node, Mapping) and node.get("op") == "casei":
            inner = self._operand(_one(list(node.get("args") or []), "casei"))
            if inner.kind != "string":
                raise _bad("casei applies to text only")
            return _Value(f"lower({inner.sql})", inner.params, "string")
        return self._value(node)

    def _value(self, node: object) -> _Value:
        if isinstance(node, Mapping) and "property" in node:
            found = queryable(self.layer, str(node["property"]), self.zones)
            if found.kind == "geometry":
                raise _bad(f"{node['property']} is a geometry: use s_intersects")
            return _Value(found.sql, list(found.params), found.kind)
        if node is None:
            return _Value("NULL", [], None)
        if isinstance(node, bool):
            raise _bad("no queryable is a boolean")
        if isinstance(node, int | float):
            return _Value("?", [float(node)], "number")
        if isinstance(node, str):
            return _Value("?", [node], "string")
        if isinstance(node, Mapping) and ("timestamp" in node or "date" in node):
            raise _bad("compare a time with t_after, t_before... or <, >, =")
        raise _bad(f"unexpected operand {_show(node)}")

    def _same_kind(self, op: str, values: Sequence[_Value]) -> None:
        kinds = {_family(v.kind) for v in values if v.kind is not None}
        if len(kinds) > 1:
            raise _bad(f"{op} compares {' and '.join(sorted(kinds))}: use values of one kind")

    def _compare(self, op: str, args: list[Any]) -> Fragment:
        left, right = _two(args, op)
        if _is_time(left) or _is_time(right):
            return self._time_compare(op, left, right)
        a, b = self._operand(left), self._operand(right)
        self._same_kind(op, (a, b))
        if a.kind is None or b.kind is None:
            raise _bad(f"{op} with NULL is never true: use isNull")
        return f"{a.sql} {_COMPARISONS[op]} {b.sql}", [*a.params, *b.params]

    def _like(self, args: list[Any]) -> Fragment:
        left, right = _two(args, "like")
        a, pattern = self._operand(left), self._operand(right)
        if a.kind != "string" or pattern.kind != "string" or not pattern.params:
            raise _bad("like compares a text property with a text pattern")
        raw = str(pattern.params[0])
        if self.dialect.placeholder == "?":
            # sqlite's LIKE ignores case: GLOB is the case-sensitive match CQL2 asks for.
            return f"{a.sql} GLOB ?", [*a.params, _glob(raw)]
        return f"{a.sql} LIKE ? ESCAPE '\\'", [*a.params, raw]

    def _between(self, args: list[Any]) -> Fragment:
        if len(args) != 3:
            raise _bad("between takes a property, a low and a high value")
        a, low, high = (self._operand(v) for v in args)
        self._same_kind("between", (a, low, high))
        return f"{a.sql} BETWEEN {low.sql} AND {high.sql}", [*a.params, *low.params, *high.params]

    def _in(self, args: list[Any]) -> Fragment:
        left, right = _two(args, "in")
        if not isinstance(right, list) or not right:
            raise _bad("in takes a property and a non-empty list")
        a = self._operand(left)
        values = [self._operand(v) for v in right]
        self._same_kind("in", (a, *values))
        marks = ", ".join(v.sql for v in values)
        return f"{a.sql} IN ({marks})", [*a.params, *(p for v in values for p in v.params)]

    def _spatial(self, op: str, args: list[Any]) -> Fragment:
        left, right = _two(args, op)
        if _is_geometry_property(right):
            left, right = right, left
        if not _is_geometry_property(left):
            raise _bad(f"{op} needs the geometry property and a geometry literal")
        queryable(self.layer, str(left["property"]), self.zones)
        if not isinstance(right, Mapping):
            raise _bad(f"{op}: {_show(right)} is not a geometry")
        text, params = self._intersects(right)
        if op == "s_disjoint":
            return f"NOT ({text})", params
        return text, params

    def _intersects(self, shape: Mapping[str, Any]) -> Fragment:
        """The layer's point (its public one with ``public_points``) intersects a BBOX,
        point(s) or (multi)polygon in WGS84."""
        if "bbox" in shape:
            box = _numbers(shape["bbox"], "BBOX")
            if len(box) == 6:
                box = [box[0], box[1], box[3], box[4]]
            if len(box) != 4:
                raise _bad("BBOX takes 4 numbers (or 6 with heights)")
            return self._box(box)
        kind = shape.get("type")
        coordinates: list[Any] = list(shape.get("coordinates") or [])
        if kind == "Point":
            point = _numbers(coordinates, "POINT")
            if len(point) < 2:
                raise _bad("a POINT takes two coordinates")
            return f"{self.lon} = ? AND {self.lat} = ?", [point[0], point[1]]
        if kind == "MultiPoint":
            parts = [self._intersects({"type": "Point", "coordinates": p}) for p in coordinates]
            return " OR ".join(f"({p[0]})" for p in parts), [v for p in parts for v in p[1]]
        if kind in ("Polygon", "MultiPolygon"):
            polygons = [coordinates] if kind == "Polygon" else coordinates
            return self._in_polygons([ring for polygon in polygons for ring in polygon])
        raise _bad(
            f"spatial operators take a BBOX, a POINT, a POLYGON or their MULTI forms, not {kind}"
        )

    def _box(self, box: Sequence[float]) -> Fragment:
        x0, y0, x1, y1 = box
        if x0 > x1 or y0 > y1:
            raise _bad("BBOX: the lower corner comes first")
        if self.public_points:
            box = [x0, y0, x1, y1]
            return self.dialect.public_bbox(self.table, self.alias), [*box, *box]
        return self.dialect.bbox(self.table, self.alias), [x0, y0, x1, y1]

    def _in_polygons(self, rings: list[Any]) -> Fragment:
        """Inside by the even-odd rule over every ring (holes and several parts included),
        after the box of the rings through the spatial index."""
        edges: list[tuple[float, float, float, float]] = []
        for ring in rings:
            coordinates = [_numbers(p, "POLYGON") for p in ring]
            if any(len(p) < 2 for p in coordinates):
                raise _bad("each POLYGON vertex takes two coordinates")
            points = [(p[0], p[1]) for p in coordinates]
            edges.extend(
                (x1, y1, x2, y2)
                for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True)
                if y1 != y2
            )
        xs = [p for e in edges for p in (e[0], e[2])]
        ys = [p for e in edges for p in (e[1], e[3])]
        if not edges:
            return _NEVER, []
        box, box_params = self._box((min(xs), min(ys), max(xs), max(ys)))
        d = self.dialect
        rows = d.rows([("x1", "float8"), ("y1", "float8"), ("x2", "float8"), ("y2", "float8")])
        columns = [list(column) for column in zip(*edges, strict=True)]
        lon, lat = self.lon, self.lat
        crossings = (
            f"(SELECT count(*) FROM {rows} WHERE (u.y1 > {lat}) <> (u.y2 > {lat}) AND "
            f"{lon} < (u.x2 - u.x1) * ({lat} - u.y1) / nullif(u.y2 - u.y1, 0) + u.x1)"
        )
        return f"{box} AND ({crossings} & 1) = 1", [*box_params, *d.rows_params(columns)]

    def _time_compare(self, op: str, left: object, right: object) -> Fragment:
        """``<``, ``=``... between an instant property and a TIMESTAMP or a DATE."""
        flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "<>": "<>"}
        if _is_time(left):
            left, right, op = right, left, flipped[op]
        column = self._instant_property(left, op)
        span = _span(right)
        return self._span_condition(column, op, span)

    def _span_condition(self, column: str, op: str, span: _Span) -> Fragment:
        start, end, excluded = span.start, span.end, span.end_excluded
        last = "<" if excluded else "<="
        after_end = ">=" if excluded else ">"
        cases: dict[str, list[tuple[str, datetime | None]]] = {
            "=": [(">=", start), (last, end)],
            "<": [("<", start)],
            "<=": [(last, end)],
            ">": [(after_end, end)],
            ">=": [(">=", start)],
        }
        if op == "<>":
            inside, params = self._span_condition(column, "=", span)
            return f"NOT ({inside})", params
        parts = [(sign, moment) for sign, moment in cases[op] if moment is not None]
        if not parts:
            return f"{column} IS NOT NULL", []
        text = " AND ".join(f"{column} {sign} ?" for sign, _ in parts)
        return text, [self.dialect.instant(moment) for _, moment in parts if moment is not None]

    def _temporal(self, op: str, args: list[Any]) -> Fragment:
        left, right = _two(args, op)
        if _is_time(left) and not _is_time(right):
            left, right = right, left
            op = {"t_after": "t_before", "t_before": "t_after"}.get(op, op)
            if op == "t_during":
                raise _bad("t_during: an instant property cannot contain a time literal")
        column = self._instant_property(left, op)
        span = _span(right)
        if op == "t_after":
            return self._span_condition(column, ">", span)
        if op == "t_before":
            return self._span_condition(column, "<", span)
        if op in ("t_intersects", "t_equals"):
            if op == "t_equals" and span.start != span.end:
                return _NEVER, []
            return self._span_condition(column, "=", span)
        if op == "t_disjoint":
            inside, params = self._span_condition(column, "=", span)
            return f"{column} IS NOT NULL AND NOT ({inside})", params
        # t_during: strictly inside the interval.
        parts = [(">", span.start), ("<", span.end)]
        kept = [(sign, moment) for sign, moment in parts if moment is not None]
        if not kept:
            return f"{column} IS NOT NULL", []
        text = " AND ".join(f"{column} {sign} ?" for sign, _ in kept)
        return text, [self.dialect.instant(moment) for _, moment in kept if moment is not None]

    def _instant_property(self, node: object, op: str) -> str:
        """The SQL of a time property (no queryable time has bound values)."""
        if not (isinstance(node, Mapping) and "property" in node):
            raise _bad(f"{op} compares a time property with a time literal")
        found = queryable(self.layer, str(node["property"]), self.zones)
        if found.kind != "datetime":
            raise _bad(f"{op}: {node['property']} is not a time")
        return found.sql


def _numbers(values: Any, what: str) -> list[float]:
    """Finite coordinates, or ``InvalidInput`` naming the geometry."""
    try:
        found = [float(v) for v in values]
    except (TypeError, ValueError) as exc:
        raise _bad(f"{what}: expected numbers") from exc
    if not all(math.isfinite(v) for v in found):
        raise _bad(f"{what}: coordinates must be finite (is the filter-crs right?)")
    return found


def _family(kind: Kind | None) -> str:
    return "number" if kind in ("integer", "number") else str(kind)


def _one(args: list[Any], op: str) -> Any:
    if len(args) != 1:
        raise _bad(f"{op} takes one argument")
    return args[0]


def _two(args: list[Any], op: str) -> tuple[Any, Any]:
    if len(args) != 2:
        raise _bad(f"{op} takes two arguments")
    return args[0], args[1]


def _show(node: object) -> str:
    text = repr(node)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_time(node: object) -> bool:
    return isinstance(node, Mapping) and any(k in node for k in ("timestamp", "date", "interval"))


def _is_geometry_property(node: object) -> bool:
    return isinstance(node, Mapping) and node.get("property") == "geometry"


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError as exc:
        raise _bad(f"{text!r} is not an RFC 3339 time") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _day(text: str) -> tuple[datetime, datetime]:
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise _bad(f"{text!r} is not a date (YYYY-MM-DD)") from exc
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _bound(value: object) -> tuple[datetime | None, datetime | None]:
    """One end of an interval: ``..`` is open; a date covers its day."""
    if isinstance(value, Mapping):
        value = value.get("timestamp") or value.get("date")
    text = str(value)
    if text == "..":
        return None, None
    if len(text) == 10:
        return _day(text)
    moment = _instant(text)
    return moment, moment


def _span(node: object) -> _Span:
    """A TIMESTAMP, DATE or INTERVAL literal as a span."""
    if not isinstance(node, Mapping):
        raise _bad(f"expected a time literal, got {_show(node)}")
    if "timestamp" in node:
        moment = _instant(str(node["timestamp"]))
        return _Span(moment, moment)
    if "date" in node:
        start, end = _day(str(node["date"]))
        return _Span(start, end, end_excluded=True)
    if "interval" in node and len(node["interval"]) == 2:
        first, _ = _bound(node["interval"][0])
        first_end, last_end = _bound(node["interval"][1])
        is_day = last_end is not None and first_end != last_end
        if first is not None and last_end is not None and first > last_end:
            raise _bad("the interval ends before it starts")
        return _Span(first, last_end, end_excluded=is_day)
    raise _bad(f"expected a TIMESTAMP, DATE or INTERVAL, got {_show(node)}")


def _glob(pattern: str) -> str:
    """A CQL2 LIKE pattern (``%``, ``_``, ``\\`` escapes) as an sqlite GLOB pattern."""
    out: list[str] = []
    escaped = False
    for char in pattern:
        if escaped:
            out.append(f"[{char}]" if char in "*?[" else char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            out.append("*")
        elif char == "_":
            out.append("?")
        else:
            out.append(f"[{char}]" if char in "*?[" else char)
    return "".join(out)
