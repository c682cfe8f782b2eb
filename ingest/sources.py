"""Reading source files into raw tables of text, one row per submission.

A row that cannot be decoded or parsed is kept with its problem so that it is quarantined
with a reason; only a file that cannot be read at all raises ``SourceError``.
"""

from __future__ import annotations

import codecs
import csv
import gc
import gzip
import io
import itertools
import json
import operator
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO, cast

import numpy as np
import pandas as pd

from voirie.errors import SourceError
from voirie.ingest.encoding import AUTO, SAMPLE_BYTES, TextEncoding, named, sniff
from voirie.ingest.reproject import is_wgs84, to_wgs84

ROW = "_row"
PROBLEM = "_problem"
MAX_CSV_FIELD = 16 * 1024 * 1024
_DELIMITERS = (",", ";", "\t", "|")
_BATCH = 2_000
"""Rows parsed at once (the lines read back for them are held until they are checked)."""


@dataclass(frozen=True)
class RawTable:
    """Source rows as text (``_row``: 1-based row number; ``_problem``: why unreadable)."""

    rows: pd.DataFrame
    columns: list[str]
    repeated: frozenset[str] = frozenset()
    """Names the header gave more than one column: the first keeps the name, the others
    are ``name.1``, ``name.2``... (pandas' convention); a mapping may not read them."""


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


def csv_encoding(path: Path, requested: str = AUTO) -> TextEncoding:
    """The encoding a delimited file is read in: ``requested`` by name, or told from the
    file's first bytes (``AUTO``, see ``voirie.ingest.encoding``). ``SourceError`` when the
    file cannot be read or is no text (a workbook, a PDF: ``_binary``), ``ValueError`` for
    an unknown name."""
    try:
        with _open_bytes(path) as data:
            sample = data.read(SAMPLE_BYTES)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise SourceError(f"{path}: cannot read the file ({exc})") from exc
    encoding = sniff(sample) if requested == AUTO else named(requested)
    if what := _binary(sample, encoding):
        raise SourceError(
            f"{path}: {what}, not a delimited text file: save it as CSV (UTF-8) and import that"
        )
    return encoding


_BINARY_NULS = 16
"""NUL bytes in a text's first 4 KiB beyond which it is taken for binary data."""
_SIGNATURES = (
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx or OpenDocument .ods workbook?)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook (.xls)"),
    (b"%PDF", "a PDF document"),
)


def _binary(sample: bytes, encoding: TextEncoding) -> str | None:
    """What a file that is no text is (a workbook, a PDF, other binary data), from its
    first bytes; None for text. NUL bytes are text only in UTF-16 and UTF-32; a few of them
    in a text are its rows' problem (quarantined), many of them make binary data."""
    for signature, what in _SIGNATURES:
        if sample.startswith(signature):
            return what
    if encoding.ascii_compatible and sample[:4096].count(b"\x00") > _BINARY_NULS:
        return "binary data"
    return None


def _open_text(path: Path, encoding: TextEncoding) -> io.TextIOWrapper:
    """The file as text, decompressed and decoded as it is read (undecodable bytes become
    U+FFFD, as in ``_read_text``), over a ``_Watched`` stream (its ``buffer``)."""
    watched = _Watched(_open_bytes(path), encoding)
    return io.TextIOWrapper(
        cast(BinaryIO, watched), encoding=encoding.codec, errors="replace", newline=""
    )


class _Watched(io.BufferedIOBase):
    """A binary stream that tells whether the bytes read from it so far hold a U+FFFD once
    decoded (``suspect``): an undecodable byte, which the text's decoder replaces with
    it, or a U+FFFD written as such. Text is decoded from bytes already read, so a row
    parsed while ``suspect`` is False holds no U+FFFD: its fields need no search. Each
    block is decoded a second time only while none was found and only when it is not
    ASCII (in an encoding where ASCII bytes are ASCII characters), a fraction of what
    reading back the parser's lines to search them cost."""

    def __init__(self, raw: BinaryIO, encoding: TextEncoding) -> None:
        super().__init__()
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder(encoding.codec)()
        self._skip_ascii = encoding.ascii_compatible
        self.label = encoding.label
        self.suspect = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._watch(self._raw.read(-1 if size is None else size))

    def read1(self, size: int = -1) -> bytes:
        return self._watch(self._raw.read1(size))  # type: ignore[attr-defined]

    def close(self) -> None:
        self._raw.close()
        super().close()

    def _watch(self, block: bytes) -> bytes:
        if self.suspect or (self._skip_ascii and block and block.isascii()):
            return block
        try:
            # An empty block is the end: a character cut short there is undecodable too.
            self.suspect = "\ufffd" in self._decoder.decode(block, final=not block)
        except UnicodeDecodeError:
            self.suspect = True
        return block


def _open_bytes(path: Path) -> BinaryIO:
    return cast(BinaryIO, gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb"))


def _csv_table(
    records: list[list[str]],
    problems: list[str | None],
    header: list[str],
    first_row: int,
    repeated: frozenset[str],
) -> RawTable:
    frame = pd.DataFrame(records, columns=header, dtype=object)
    frame[ROW] = range(first_row, first_row + len(frame))
    frame[PROBLEM] = pd.Series(problems, dtype=object)
    return RawTable(frame, header, repeated)


def _unique(names: list[str]) -> tuple[list[str], frozenset[str]]:
    """Header names made unique as pandas does (a repeat of ``a`` becomes ``a.1``, never a
    name the header holds itself), and the names that were repeated."""
    taken, counts, unique = set(names), dict[str, int](), []
    for name in names:
        count = counts[name] = counts.get(name, 0) + 1
        renamed = name
        if count > 1:
            while (renamed := f"{name}.{count - 1}") in taken:
                count += 1
            taken.add(renamed)
        unique.append(renamed)
    return unique, frozenset(name for name, count in counts.items() if count > 1)


def stream_csv(
    path: Path, chunk_rows: int | None = None, encoding: TextEncoding | None = None
) -> Iterator[RawTable]:
    """``read_csv`` in chunks of ``chunk_rows`` rows (all at once when None), read as they
    are needed: row numbers go on across chunks, and every chunk has the file's header
    (at least one chunk, empty when the file has only its header). ``encoding``: told
    from the file when None (``csv_encoding``)."""
    encoding = encoding or csv_encoding(path)
    # Python's csv reader refuses fields over 128 KiB and stops the whole file; read them
    # (up to MAX_CSV_FIELD) so the validator quarantines the row naming its column.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_CSV_FIELD))
    try:
        with _open_text(path, encoding) as text:
            yield from _csv_chunks(path, text, chunk_rows)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise SourceError(f"{path}: cannot read the file ({exc})") from exc
    except csv.Error as exc:
        raise SourceError(f"{path}: not a readable delimited text file ({exc})") from exc


_SEP_LINE = re.compile(r"sep=(.)\r?\n?")
"""Excel's first line naming the delimiter (``sep=;``), before the header."""
_JSON_START = re.compile(r'\s*(?:\[\s*(?:[{\]]|$)|\{\s*(?:"|$))')
"""The start of a JSON array of objects or of an object: no header (a header "[id],[name]"
of bracketed names is not one)."""


def _csv_chunks(path: Path, text: io.TextIOWrapper, chunk_rows: int | None) -> Iterator[RawTable]:
    header_line = text.readline()
    delimiter = None
    if named_delimiter := _SEP_LINE.fullmatch(header_line):
        delimiter, header_line = named_delimiter.group(1), text.readline()
    if not header_line.strip():
        if any(line.strip() for line in text):
            raise SourceError(f"{path}: the first line (the header) is blank")
        raise SourceError(f"{path}: the file is empty")
    if _JSON_START.match(header_line):
        raise SourceError(
            f"{path}: JSON, not a delimited text file: give --format open311-json (an array "
            "of requests) or geojson (a FeatureCollection)"
        )
    reader = _Reader(header_line, text, cast(_Watched, text.buffer), delimiter)
    size = chunk_rows if chunk_rows is not None and chunk_rows > 0 else None
    first_row = 1
    while True:
        # The collector stays paused until the chunk's row lists, copied into its frame,
        # are freed: resumed while they lived, it went over them at every collection.
        with _collector_paused():
            read = reader.chunk(size)
            if read is None:
                break
            table = _csv_table(*read, reader.header, first_row, reader.repeated)
            del read
        yield table
        first_row += len(table.rows)
    if first_row == 1:
        yield _csv_table([], [], reader.header, first_row, reader.repeated)


class _Reader:
    """The rows of a delimited text after its header line (the delimiter: the one given
    by a ``sep=`` line, else the one the header holds most), read a batch of ``_BATCH`` at
    a time and checked a batch or a column at once: checking them field by field cost as
    much as parsing them. Fields are searched for U+FFFD only once the stream they come
    from (``watched``) has shown one: nearly every file has none."""

    def __init__(
        self, header_line: str, text: TextIO, watched: _Watched, delimiter: str | None = None
    ) -> None:
        delimiter = delimiter or max(_DELIMITERS, key=header_line.rstrip("\r\n").count)
        self._parser = csv.reader(itertools.chain([header_line], text), delimiter=delimiter)
        self._watched = watched
        self.header, self.repeated = _unique([name.strip() for name in next(self._parser)])

    def chunk(self, size: int | None) -> tuple[list[list[str]], list[str | None]] | None:
        """The next ``size`` rows that are not blank (all the rest when None), each as long
        as the header, with their problems (None: no problem); None at the end. Returned,
        not yielded: no suspended frame keeps the rows alive once the caller drops them."""
        found: list[list[str]] = []
        problems: list[str | None] = []
        while size is None or len(found) < size:
            want = _BATCH if size is None else min(_BATCH, size - len(found))
            batch = list(itertools.islice(self._parser, want))
            if not batch:
                break
            suspect = self._watched.suspect
            batch = _not_blank(batch)
            problems += _problems(batch, self.header, suspect, self._watched.label)
            found += batch
        return (found, problems) if found else None


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector paused: parsing makes a list per row and no cycle, and
    the collections those lists set off went over them again and again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _not_blank(batch: list[list[str]]) -> list[list[str]]:
    """The rows of a batch that are not blank (a blank row has no field, or only fields
    of blanks). Only the rows whose first field is blank are looked at field by field."""
    firsts = map(next, map(iter, batch), itertools.repeat(""))
    suspects = itertools.compress(itertools.count(), map(operator.not_, map(str.strip, firsts)))
    blank = {i for i in suspects if not any(f.strip() for f in batch[i])}
    return [fields for i, fields in enumerate(batch) if i not in blank] if blank else batch


def _problems(
    batch: list[list[str]], header: list[str], suspect: bool, encoding: str
) -> list[str | None]:
    """Each row's problem (None when it has none), made as long as the header in place:
    a row with another number of fields than the header, or, once the file has shown a
    U+FFFD (``suspect``), a field that holds one (a byte not valid in ``encoding``)."""
    width = len(header)
    problems: list[str | None] = [None] * len(batch)
    for i in itertools.compress(itertools.count(), map(width.__ne__, map(len, batch))):
        problems[i] = f"row has {len(batch[i])} fields, the header has {width}"
        batch[i] = (batch[i] + [""] * width)[:width]
    if suspect:
        for i, fields in enumerate(batch):
            bad = [name for name, f in zip(header, fields, strict=True) if "\ufffd" in f]
            if bad and problems[i] is None:
                problems[i] = f"row is not valid {encoding} text (in {', '.join(bad)})"
    return problems


def read_csv(path: Path, encoding: TextEncoding | None = None) -> RawTable:
    """A delimited text file with a header line (delimiter detected from the header,
    encoding from its first bytes unless given)."""
    (table,) = stream_csv(path, encoding=encoding)
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
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        starts = text.lstrip("\ufeff \t\r\n")[:1]
        hint = "" if starts in ("[", "{") else "; a CSV file? give --format csv or dansmarue"
        raise SourceError(f"{path}: not valid JSON ({exc}){hint}") from exc


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
    as ``stream_open311_json`` says. Points of a file whose ``crs`` member names another
    system than WGS 84 (GeoJSON 2008, as QGIS and GDAL write a Lambert-93 layer) are
    converted to longitude and latitude (``ingest.reproject``)."""
    data = _load_json(path)
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise SourceError(f"{path}: expected a GeoJSON FeatureCollection")
    crs = _crs_member(path, data.get("crs"))
    records: list[dict[str, Any]] = []
    problems: list[str | None] = []
    for feature in data.get("features") or []:
        props = dict(feature.get("properties") or {}) if isinstance(feature, dict) else {}
        if isinstance(feature, dict) and feature.get("id") is not None:
            # RFC 7946's own place for an identifier: a column "id" a mapping may name,
            # unless the properties hold one of that name.
            props.setdefault("id", feature["id"])
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        kind = geometry.get("type") if isinstance(geometry, dict) else None
        coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
        if kind == "MultiPoint" and isinstance(coords, list) and len(coords) == 1:
            # A point layer GDAL wrote as multi-points (from a Shapefile, say): one point.
            kind, coords = "Point", coords[0]
        problem = None
        if kind != "Point":
            problem = "geometry: not a GeoJSON Point (nor a MultiPoint of one point)"
        elif not isinstance(coords, list) or len(coords) < 2:
            problem = "geometry: Point without two coordinates"
        else:
            props["lon"], props["lat"] = coords[0], coords[1]
        records.append(props)
        problems.append(problem)
    del data
    if crs is not None:
        _points_to_wgs84(records, crs)
    return _record_chunks(records, problems, chunk_rows)


def _crs_member(path: Path, member: object) -> str | None:
    """The system a GeoJSON's ``crs`` member names, None when absent or WGS 84;
    ``SourceError`` when it names none pyproj knows (or is not a named one)."""
    if member is None:
        return None
    props = member.get("properties") if isinstance(member, dict) else None
    name = props.get("name") if isinstance(props, dict) else None
    if not isinstance(member, dict) or member.get("type") != "name" or not isinstance(name, str):
        raise SourceError(
            f"{path}: crs: expected a named system ({{'type': 'name', 'properties': "
            f"{{'name': 'urn:ogc:def:crs:EPSG::2154'}}}}), not {json.dumps(member)[:120]}"
        )
    try:
        return None if is_wgs84(name) else name
    except ValueError as exc:
        raise SourceError(f"{path}: crs: {exc}") from None


def _points_to_wgs84(records: list[dict[str, Any]], crs: str) -> None:
    """The ``lon``/``lat`` of every record holding two numbers, converted from ``crs``
    in place (others are left for validation to refuse)."""
    numeric = [
        i
        for i, rec in enumerate(records)
        if all(type(rec.get(key)) in (int, float) for key in ("lon", "lat"))
    ]
    x = np.array([records[i]["lon"] for i in numeric], dtype=float)
    y = np.array([records[i]["lat"] for i in numeric], dtype=float)
    lon, lat = to_wgs84(x, y, crs)
    for i, lon_i, lat_i in zip(numeric, lon.tolist(), lat.tolist(), strict=True):
        records[i]["lon"], records[i]["lat"] = lon_i, lat_i


def read_geojson(path: Path) -> RawTable:
    """A GeoJSON FeatureCollection of points; coordinates become ``lon``/``lat`` columns."""
    (table,) = stream_geojson(path)
    return table
