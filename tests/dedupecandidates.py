"""Stored open incidents as ``dedupe.Candidates``, the arrays ``attach_one`` reads: the
tests of the per-report path build them from the frames they give ``attach``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from voirie.gis import dedupe


def _objects(values: list[object]) -> np.ndarray:
    """A one-dimensional object array of these values (None kept as is)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _instants(column: pd.Series) -> np.ndarray:
    """``datetime64[ns]`` UTC, from naive UTC or zoned times."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        column = column.dt.tz_convert(None)
    return column.to_numpy(dtype="datetime64[ns]")


def candidates_of(stored: pd.DataFrame) -> dedupe.Candidates:
    """``stored`` (the columns ``attach`` reads of incidents, ``first_reported_at``
    optional) as candidates, in its row order."""
    return dedupe.Candidates(
        incident_id=stored["incident_id"].to_numpy(np.int64),
        x=stored["x"].to_numpy(float),
        y=stored["y"].to_numpy(float),
        service_code=_objects(list(stored["service_code"])),
        group=_objects(list(stored["group"])),
        match=_objects(list(stored["match"])),
        segment_id=_objects(list(stored["segment_id"])),
        street_name=_objects(list(stored["street_name"])),
        last_reported_at=_instants(stored["last_reported_at"]),
        status=_objects(list(stored["status"])),
        first_reported_at=(
            _instants(stored["first_reported_at"]) if "first_reported_at" in stored else None
        ),
    )
