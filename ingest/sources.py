"""Reading source files into raw tables of text, one row per submission.

A row that cannot be decoded or parsed is kept with its problem so that it is quarantined
with a reason; only a file that cannot be read at all raises ``SourceError``.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO, cast

import pandas as pd

from voirie.errors import SourceError

ROW = "_row"
PROBLEM = "_problem"
MAX_CSV_FIELD = 16 * 1024 * 1024
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


def _open_text(path: Path) -> TextIO:
    """The file as text, decompressed and decoded as it is read (undecodable bytes become
    U+FFFD, as in ``_read_text``)."""
    return io.TextIOWrapper(_open_bytes(path), encoding="utf-8-sig", errors="replace", newline="")


def _open_bytes(path: Path) -> BinaryIO:
    return cast(BinaryIO, gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb"))


def _csv_table(
    records: list[list[str]], problems: list[str | None], header: list[str], first_row: int
) -> RawTable:
    frame = pd.DataFrame(records, columns=header, dtype=object)
    frame[ROW] = range(first_row, first_row + len(frame))
    frame[PROBLEM] = pd.Series(problems, dtype=object)
    return RawTable(frame, header)


def stream_csv(path: Path, chunk_rows: int | None = None) -> Iterator[RawTable]:
    """``read_csv`` in chunks of ``chunk_rows`` rows (all at once when None), read as they
    are needed: row numbers go on across chunks, and every chunk has the file's header
    (at least one chunk, empty when the file has only its header)."""
    # Python's csv reader refuses fields over 128 KiB and stops the whole file; read them
    # (up to MAX_CSV_FIELD) so the validator quarantines the row naming its column.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_CSV_FIELD))
    try:
        with _open_text(path) as text:
            yield from _csv_chunks(path, text, chunk_rows)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise SourceError(f"{path}: cannot read the file ({exc})") from exc
    except csv.Error as exc:
        raise SourceError(f"{path}: not a readable delimited text file ({exc})") from exc


def _csv_chunks(path: Path, text: TextIO, chunk_rows: int | None) -> Iterator[RawTable]:
    header_line = text.readline()
    if not header_line.strip():
        if any(line.strip() for line in text):
            raise SourceError(f"{path}: the first line (the header) is blank")
        raise SourceError(f"{path}: the file is empty")
    delimiter = max(_DELIMITERS, key=header_line.rstrip("\r\n").count)
    reader = csv.reader(itertools.chain([header_line], text), delimiter=delimiter)
    header = [name.strip() for name in next(reader)]
    records: list[list[str]] = []
    problems: list[str | None] = []
    first_row, chunks = 1, 0
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
        if chunk_rows is not None and len(records) == chunk_rows:
            yield _csv_table(records, problems, header, first_row)
            first_row, chunks = first_row + len(records), chunks + 1
            records, problems = [], []
    if records or not chunks:
        yield _csv_table(records, problems, header, first_row)


def read_csv(path: Path) -> RawTable:
    """A delimited text file with a header line (delimiter detected from the header)."""
    (table,) = stream_csv(path)
    return table


def count_lines(path: Path) -> int:
    """The number of lines after the header (decompressed): a quick estimate of a CSV's
    rows for a progress bar (a quoted field may hold line breaks; blank lines count)."""
    lines, last = 0, b"\n"
    try:
        with _open_bytes(path) as data:
            while block := data.read(1 << 20):
                lines += block.count(b"\n")
                last = block[-1:]
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise SourceError(f"{path}: cannot read the file ({exc})") from exc
    return max(0, lines + (last != b"\n") - 1)


def _records_table(
    records: list[dict[str, Any]], columns: list[str] | None = None, first_row: int = 1
) -> RawTable:
    """Records as a raw table of ``columns`` (all the records' keys, sorted, when None)."""
    if columns is None:
        columns = _keys(records)
    frame = pd.DataFrame.from_records(records, columns=columns).astype(object)
    frame = frame.where(frame.notna(), "")
    frame = frame.map(lambda v: v if isinstance(v, str) else json.dumps(v) if v != "" else "")
    frame[ROW] = range(first_row, first_row + len(frame))
    frame[PROBLEM] = pd.Series([None] * len(frame), dtype=object)
    return RawTable(frame, columns)


def _keys(records: list[dict[str, Any]]) -> list[str]:
    return sorted({key for rec in records for key in rec})


def _record_chunks(
    records: list[dict[str, Any]], problems: list[str | None], chunk_rows: int | None
) -> Iterator[RawTable]:
    """Records as raw tables of ``chunk_rows`` rows, each with the columns of them all."""
    columns, step = _keys(records), chunk_rows or max(1, len(records))
    for start in range(0, max(1, len(records)), step):
        table = _records_table(records[start : start + step], columns, start + 1)
        table.rows[PROBLEM] = pd.Series(problems[start : start + step], dtype=object)
        yield table


def _load_json(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}: not valid JSON ({exc})") from exc


def stream_open311_json(path: Path, chunk_rows: int | None = None) -> Iterator[RawTable]:
    """``read_open311_json`` in chunks of ``chunk_rows`` requests (all when None). The
    array is parsed at once (JSON has no row boundaries to stop at); the tables, which
    weigh more than the parsed objects, are built one chunk at a time."""
    data = _load_json(path)
    if not isinstance(data, list):
        raise SourceError(f"{path}: expected a JSON array of service requests")
    records = [r if isinstance(r, dict) else {"_not_object": json.dumps(r)} for r in data]
    problems = [None if isinstance(r, dict) else "array item is not a JSON object" for r in data]
    del data
    return _record_chunks(records, problems, chunk_rows)


def read_open311_json(path: Path) -> RawTable:
    """A JSON array of Open311 GeoReport v2 service request objects."""
    (table,) = stream_open311_json(path)
    return table


def stream_geojson(path: Path, chunk_rows: int | None = None) -> Iterator[RawTable]:
    """``read_geojson`` in chunks of ``chunk_rows`` features (all when None), parsed at once
    as ``stream_open311_json`` says."""
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
    del data
    return _record_chunks(records, problems, chunk_rows)


def read_geojson(path: Path) -> RawTable:
    """A GeoJSON FeatureCollection of points; coordinates become ``lon``/``lat`` columns."""
    (table,) = stream_geojson(path)
    return table
