"""PostgreSQL's binary COPY format built a column at a time with numpy (the bulk import's
inserts, ``PostgisSession``).

psycopg's ``Copy.write_row`` formats one row at a time in Python: 1.2M rows for a 100k
import, the largest client cost of the import after the city. Here every column is
converted once (numbers to big-endian arrays, instants to microseconds since 2000, texts
encoded once each) and the rows are laid out in one buffer by index arithmetic, so the
cost per row is numpy's, not the interpreter's. The format
(https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4): a signature, then
per row the number of fields (int16) and each field as its length (int32, -1 for NULL)
followed by its bytes in the type's binary send format; -1 (int16) ends the data.

A column whose values do not all fit their type (a number in a text column, an integer
out of its column's range) makes ``encode`` answer None: the caller sends that COPY as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import pandas as pd

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
_EPOCH_2000_US = np.datetime64("2000-01-01T00:00:00", "us").astype(np.int64)
_FIXED = {"int8": ">i8", "int4": ">i4", "int2": ">i2", "float8": ">f8", "bool": "u1"}
_RANGE = {"int4": (-(2**31), 2**31 - 1), "int2": (-(2**15), 2**15 - 1)}


class _Field:
    """One column ready to lay out: its bytes per row (``data``: a 2-D uint8 array of a
    fixed width, or the concatenated bytes of variable-length values with ``lengths``)
    and which rows are NULL."""

    def __init__(self, null: np.ndarray, data: np.ndarray, lengths: np.ndarray | None) -> None:
        self.null = null
        self.data = data
        self.lengths = lengths

    def sizes(self) -> np.ndarray:
        """Bytes of each row's value (0 for NULL)."""
        if self.lengths is not None:
            return self.lengths
        return np.where(self.null, 0, self.data.shape[1])


def _fixed(kind: str, values: np.ndarray, null: np.ndarray) -> _Field:
    """A fixed-width column: one row of ``width`` bytes per value (NULL rows ignored)."""
    data = np.ascontiguousarray(values.astype(_FIXED[kind]))
    return _Field(null, data.view(np.uint8).reshape(len(values), -1), None)


def _variable(values: Sequence[bytes], null: np.ndarray) -> _Field:
    """A variable-length column from the bytes of its non-NULL values (in row order)."""
    lengths = np.zeros(len(null), dtype=np.int64)
    lengths[~null] = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    return _Field(null, np.frombuffer(b"".join(values), dtype=np.uint8), lengths)


def _text(values: list[object], null: np.ndarray) -> _Field | None:
    """A text column from its non-NULL values (None unless all are ``str``), encoded in
    one call: joined by NUL, which no PostgreSQL text holds, each value's length in bytes
    read from where the separators fell (a third of a batch's conversion was encoding and
    checking texts one by one in Python)."""
    try:
        joined = "\x00".join(cast(list[str], values)).encode()
    except TypeError:  # a value that is not a str
        return None
    data = np.frombuffer(joined, dtype=np.uint8)
    separators = np.flatnonzero(data == 0)
    if len(separators) != max(len(values) - 1, 0):
        return None  # a value holds a NUL: sent as text, the server refuses it
    lengths = np.zeros(len(null), dtype=np.int64)
    if values:
        bounds = np.concatenate([[-1], separators, [len(data)]])
        lengths[~null] = np.diff(bounds) - 1
    return _Field(null, data[data != 0], lengths)


def field(kind: str, series: pd.Series) -> _Field | None:
    """A DataFrame column as a COPY field of a binary type (``kind``: int8, int4, int2,
    float8, bool, timestamptz, text, bytea), or None when a value does not fit it."""
    null = pd.isna(series).to_numpy(bool)
    if kind == "timestamptz":
        utc = pd.to_datetime(series, utc=True).dt.tz_convert(None)
        instants = utc.to_numpy(dtype="datetime64[us]")
        micros = instants.astype(np.int64) - _EPOCH_2000_US
        return _fixed("int8", np.where(null, 0, micros), null)
    if kind == "bool":
        # As ``astype(bool)``: a flag is never NULL (a missing one is truthiness's answer).
        return _fixed(kind, series.astype(bool).to_numpy(), np.zeros(len(series), dtype=bool))
    if kind in _FIXED:
        if not pd.api.types.is_numeric_dtype(series) and not null.all():
            kinds = pd.api.types.infer_dtype(series, skipna=True)
            if kinds not in ("integer", "floating", "mixed-integer-float", "decimal"):
                return None
        numbers = pd.to_numeric(series[~null])
        if kind == "float8":
            values = np.zeros(len(series))
            values[~null] = numbers.to_numpy(float)
            return _fixed(kind, values, null)
        whole = numbers.to_numpy(float) if numbers.dtype.kind == "f" else None
        if whole is not None and (whole != np.round(whole)).any():
            return None
        ints = np.zeros(len(series), dtype=np.int64)
        ints[~null] = numbers.to_numpy(np.int64)
        low, high = _RANGE.get(kind, (-(2**63), 2**63 - 1))
        if len(ints) and (ints.min() < low or ints.max() > high):
            return None
        return _fixed(kind, ints, null)
    present = series.to_numpy(dtype=object)[~null].tolist()
    if kind == "text":
        return _text(present, null)
    if kind == "bytea":
        if not all(isinstance(value, bytes) for value in present):
            return None
        return _variable(present, null)
    return None


def encode(fields: Sequence[_Field], rows: int) -> bytes:
    """The whole binary COPY stream (signature, rows, trailer) of these fields, in order."""
    sizes = np.column_stack([f.sizes() for f in fields]) if fields else np.zeros((rows, 0))
    row_bytes = 2 + 4 * len(fields) + sizes.sum(axis=1, dtype=np.int64)
    starts = len(SIGNATURE) + np.cumsum(row_bytes) - row_bytes
    total = len(SIGNATURE) + int(row_bytes.sum()) + len(TRAILER)
    out = np.zeros(total, dtype=np.uint8)
    out[: len(SIGNATURE)] = np.frombuffer(SIGNATURE, dtype=np.uint8)
    out[total - len(TRAILER) :] = np.frombuffer(TRAILER, dtype=np.uint8)
    _put(out, starts, np.full(rows, len(fields), dtype=">i2").view(np.uint8).reshape(rows, 2))
    at = starts + 2
    for f in fields:
        length = np.where(f.null, -1, f.sizes()).astype(">i4")
        _put(out, at, length.view(np.uint8).reshape(rows, 4))
        at = at + 4
        keep = ~f.null
        if f.lengths is None:
            _put(out, at[keep], f.data[keep])
        else:
            lengths = f.lengths[keep]
            firsts = np.cumsum(lengths) - lengths
            where = np.repeat(at[keep] - firsts, lengths) + np.arange(len(f.data))
            out[where] = f.data
        at = at + f.sizes()
    return out.tobytes()


def _put(out: np.ndarray, at: np.ndarray, rows: np.ndarray) -> None:
    """Write each row of the 2-D uint8 ``rows`` at its offset ``at``."""
    if len(at):
        out[at[:, None] + np.arange(rows.shape[1])] = rows
