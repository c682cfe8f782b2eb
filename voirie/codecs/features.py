"""GeoJSON point features from plain records, encoded once with orjson.

The lean read path's encoder: a page of records (dicts of one row's properties) and the
x/y of their points become the ``features`` members of a FeatureCollection in one pass,
with the same text conventions as the DataFrame writer of ``maps/export.py``: instants
as ISO 8601 UTC to the millisecond with ``Z``, NaN and missing values as ``null``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

import orjson

OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME


def iso_ms(moment: datetime) -> str:
    """An instant as ISO 8601 UTC to the millisecond: ``2024-03-01T09:30:00.000Z``."""
    utc = moment.astimezone(UTC) if moment.tzinfo is not None else moment
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def _default(value: object) -> object:
    """What orjson does not encode itself: instants (as ``iso_ms``) and decimals."""
    if isinstance(value, datetime):
        return iso_ms(value)
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(value: object) -> bytes:
    """A JSON document with the conventions above."""
    return orjson.dumps(value, default=_default, option=OPTIONS)


def point_features(
    records: Sequence[Mapping[str, object]],
    id_column: str,
    xs: Sequence[float],
    ys: Sequence[float],
) -> bytes:
    """Features joined by ``,\\n`` (no brackets): ``id`` from ``id_column`` (also kept
    among the properties), a Point at (x, y) or a null geometry where x or y is NaN."""
    parts = []
    for record, x, y in zip(records, xs, ys, strict=True):
        geometry = (
            None if math.isnan(x) or math.isnan(y) else {"type": "Point", "coordinates": [x, y]}
        )
        feature = {
            "type": "Feature",
            "id": record[id_column],
            "geometry": geometry,
            "properties": record,
        }
        parts.append(orjson.dumps(feature, default=_default, option=OPTIONS))
    return b",\n".join(parts)
