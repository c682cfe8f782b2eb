"""The open incidents near one report, as the per-report path reads them: plain arrays.

``Incidents.open_in_bbox`` answers a batch with a DataFrame; one report needs only the
few incidents around its point, and a DataFrame's fixed costs would dominate.
``Incidents.open_near`` answers with this class, with the same rows as ``open_in_bbox``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

BBox = tuple[float, float, float, float]
# The columns of ``Incidents.open_in_bbox`` (a batch's candidates), in query order.
OPEN_INCIDENT_COLUMNS = [
    "incident_id",
    "lon",
    "lat",
    "service_code",
    "last_reported_at",
    "segment_id",
    "street_name",
    "status",
    "first_reported_at",
]


@dataclass(frozen=True)
class OpenIncidents:
    """Open incidents as arrays, one entry per incident, ordered by incident id.

    ``last_reported_at`` and ``first_reported_at`` are ``datetime64[ns]`` in UTC (what
    ``open_in_bbox`` gives once converted to numpy); ``segment_id`` and ``street_name``
    hold None where unknown; ``status`` is the incident's (an open one).
    """

    incident_id: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    service_code: np.ndarray
    last_reported_at: np.ndarray
    segment_id: np.ndarray
    street_name: np.ndarray
    status: np.ndarray
    first_reported_at: np.ndarray

    def __len__(self) -> int:
        return len(self.incident_id)

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[Sequence[object]],
        last_reported_at: Sequence[datetime | str],
        first_reported_at: Sequence[datetime | str],
    ) -> OpenIncidents:
        """From rows (id, lon, lat, service_code, <ignored>, segment_id, street_name,
        status, <ignored>) and their last and first report times (naive UTC datetimes or
        ISO texts without zone)."""
        columns = list(zip(*rows, strict=True)) if rows else [()] * 9
        return cls(
            incident_id=np.array(columns[0], dtype=np.int64),
            lon=np.array(columns[1], dtype=float),
            lat=np.array(columns[2], dtype=float),
            service_code=_objects(columns[3]),
            last_reported_at=np.array(last_reported_at, dtype="datetime64[ns]"),
            segment_id=_objects(columns[5]),
            street_name=_objects(columns[6]),
            status=_objects(columns[7]),
            first_reported_at=np.array(first_reported_at, dtype="datetime64[ns]"),
        )


def _objects(values: Sequence[object]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
