"""The binary COPY stream built a column at a time (``voirie.store.binary_copy``), which the
bulk import's inserts send on PostGIS: the server stores from it exactly what it stores
from psycopg's own adaptation of the same values (NULLs, NaN, negative and large numbers,
instants before and after 2000, non-ASCII and empty texts, bytes); a value that does not
fit its column's type answers None (the caller then sends text)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import psycopg
import pytest
from psycopg import sql

from voirie.store import binary_copy

COLUMNS = {
    "big": ("int8", "bigint"),
    "small_int": ("int4", "integer"),
    "tiny": ("int2", "smallint"),
    "real_number": ("float8", "double precision"),
    "flag": ("bool", "boolean"),
    "at": ("timestamptz", "timestamptz"),
    "words": ("text", "text"),
    "blob": ("bytea", "bytea"),
}
FRAME = pd.DataFrame(
    {
        "big": pd.array([1, None, -(2**62), 2**40], dtype="Int64"),
        "small_int": [7.0, np.nan, -(2.0**31), 2.0**31 - 1],  # whole floats, a NaN
        "tiny": pd.array([None, -3, 2**15 - 1, 0], dtype="Int64"),
        "real_number": [0.1, np.nan, -1e300, 3],
        "flag": [True, False, True, False],
        "at": [
            datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC),
            None,
            datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=1),
        ],
        "words": ["rue de l'Église — 12 ½", None, "", "a\tb\nc\\d"],
        "blob": [b"\x00\x01\xff", None, b"", bytes(range(256))],
    }
)


def _table(conn: psycopg.Connection[tuple[object, ...]], name: str) -> sql.Composed:
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(kind))
        for c, (_, kind) in COLUMNS.items()
    )
    conn.execute(sql.SQL("CREATE TABLE {} (n integer, {})").format(sql.Identifier(name), columns))
    return sql.SQL(", ").join(map(sql.Identifier, COLUMNS))


def _stored(conn: psycopg.Connection[tuple[object, ...]], name: str) -> list[tuple[object, ...]]:
    query = sql.SQL("SELECT {} FROM {} ORDER BY n").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), sql.Identifier(name)
    )
    return conn.execute(query).fetchall()


@pytest.mark.postgis
def test_the_stream_stores_what_psycopg_stores_from_the_same_values(postgis_url: str) -> None:
    fields = [binary_copy.field(kind, FRAME[c]) for c, (kind, _) in COLUMNS.items()]
    numbered = [binary_copy.field("int4", pd.Series(range(len(FRAME))))]
    assert all(f is not None for f in fields)
    stream = binary_copy.encode([f for f in numbered + fields if f is not None], len(FRAME))
    with psycopg.connect(postgis_url) as conn:
        names = _table(conn, "streamed")
        _table(conn, "adapted")
        with conn.cursor().copy(
            sql.SQL("COPY streamed (n, {}) FROM STDIN (FORMAT binary)").format(names)
        ) as copy:
            copy.write(stream)
        rows = [
            (i, *(None if pd.isna(value) else value for value in row))
            for i, row in enumerate(FRAME.astype(object).itertuples(index=False))
        ]
        with conn.cursor() as cur:
            marks = sql.SQL(", ").join(sql.Placeholder() * (len(COLUMNS) + 1))
            cur.executemany(
                sql.SQL("INSERT INTO adapted (n, {}) VALUES ({})").format(names, marks), rows
            )
        assert _stored(conn, "streamed") == _stored(conn, "adapted")


def test_an_empty_batch_is_a_valid_stream() -> None:
    assert binary_copy.encode([], 0) == binary_copy.SIGNATURE + binary_copy.TRAILER


@pytest.mark.parametrize(
    ("kind", "values"),
    [
        ("text", [1, "x"]),  # a number in a text column
        ("int4", [2**31]),  # out of the column's range
        ("int2", [-(2**15) - 1]),
        ("int8", [1.5]),  # not a whole number
        ("int8", ["7"]),  # a text in a number column
        ("bytea", ["not bytes"]),
    ],
)
def test_a_value_that_does_not_fit_its_type_answers_none(kind: str, values: list[object]) -> None:
    assert binary_copy.field(kind, pd.Series(values, dtype=object)) is None
