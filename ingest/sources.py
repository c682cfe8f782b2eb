"""Reading source files into raw tables of text, one row per submission.

A row that cannot be decoded or parsed is kept with its problem so that it is quarantined
with a reason; only a file that cannot be read at all raises ``SourceError``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from voirie.errors import SourceError

ROW = "_row"
PROBLEM = "_problem"
_DELIMITERS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class RawTable:
    """Source rows as text (``_row``: 1-based row number; ``_problem``: why unreadable)."""

    rows: pd.DataFrame
    columns: list[str]


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise SourceError(f"{path}: cannot read the file ({exc})") from exc
    if not data.strip():
        raise SourceError(f"{path}: the file is empty")
    # Undecodable bytes become U+FFFD so the row can be quarantined rather than the file lost.
    return data.decode("utf-8-sig", errors="replace")


def read_csv(path: Path) -> RawTable:
    """A delimited text file with a header line (delimiter detected from the header)."""
    text = _read_text(path)
    header_line = text.split("\n", 1)[0]
    delimiter = max(_DELIMITERS, key=header_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [name.strip() for name in next(reader)]
    records: list[list[str]] = []
    problems: list[str | None] = []
    for fields in reader:
        if not any(f.strip() for f in fields):
            continue
        problem = None
        if len(fields) != len(header):
            problem = f"row has {len(fields)} fields, the header has {len(header)}"
        elif bad := [name for name, f in zip(header, fields, strict=True) if "\ufffd" in f]:
            problem = f"row is not valid UTF-8 text (in {', '.join(bad)})"
        records.append((fields + [""] * len(header))[: len(header)])
        problems.append(problem)
    frame = pd.DataFrame(records, columns=header, dtype=object)
    frame[ROW] = range(1, len(frame) + 1)
    frame[PROBLEM] = pd.Series(problems, dtype=object)
    return RawTable(frame, header)


def _records_table(path: Path, records: list[dict[str, Any]]) -> RawTable:
    columns: list[str] = sorted({key for rec in records for key in rec})
    frame = pd.DataFrame.from_records(records, columns=columns).astype(object)
    frame = frame.where(frame.notna(), "")
    frame = frame.map(lambda v: v if isinstance(v, str) else json.dumps(v) if v != "" else "")
    frame[ROW] = range(1, len(frame) + 1)
    frame[PROBLEM] = pd.Series([None] * len(frame), dtype=object)
    return RawTable(frame, columns)


def _load_json(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}: not valid JSON ({exc})") from exc


def read_open311_json(path: Path) -> RawTable:
    """A JSON array of Open311 GeoReport v2 service request objects."""
    data = _load_json(path)
    if not isinstance(data, list):
        raise SourceError(f"{path}: expected a JSON array of service requests")
    records = [r if isinstance(r, dict) else {"_not_object": json.dumps(r)} for r in data]
    table = _records_table(path, records)
    if "_not_object" in table.rows:
        bad = table.rows["_not_object"] != ""
        table.rows.loc[bad, PROBLEM] = "array item is not a JSON object"
    return table


def read_geojson(path: Path) -> RawTable:
    """A GeoJSON FeatureCollection of points; coordinates become ``lon``/``lat`` columns."""
    data = _load_json(path)
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise SourceError(f"{path}: expected a GeoJSON FeatureCollection")
    records: list[dict[str, Any]] = []
    problems: list[str | None] = []
    for feature in data.get("features") or []:
        props = dict(feature.get("properties") or {}) if isinstance(feature, dict) else {}
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
        problem = None
        if not isinstance(geometry, dict) or geometry.get("type") != "Point":
            problem = "geometry: not a GeoJSON Point"
        elif not isinstance(coords, list) or len(coords) < 2:
            problem = "geometry: Point without two coordinates"
        else:
            props["lon"], props["lat"] = coords[0], coords[1]
        records.append(props)
        problems.append(problem)
    table = _records_table(path, records)
    table.rows[PROBLEM] = pd.Series(problems, dtype=object)
    return table
