"""Text columns of the binary COPY stream encoded in one call (``binary_copy._text``):
each value's bytes and length as its own UTF-8 encoding gives them, NULLs and empty
texts kept apart, and None (the COPY then goes as text) for a value that is not a str or
holds a NUL, which no PostgreSQL text can."""

from __future__ import annotations

import pandas as pd

from voirie.store import binary_copy

TEXTS = ["rue de l'Église", None, "", "½ — ok", "a\tb\nc\\d", "", "€" * 3, None, "x"]


def test_each_value_has_its_own_bytes_and_length() -> None:
    got = binary_copy.field("text", pd.Series(TEXTS, dtype=object))
    assert got is not None
    assert got.null.tolist() == [t is None for t in TEXTS]
    assert got.lengths is not None
    assert got.lengths.tolist() == [0 if t is None else len(t.encode()) for t in TEXTS]
    assert got.data.tobytes() == b"".join(t.encode() for t in TEXTS if t is not None)


def test_all_null_and_single_empty_columns() -> None:
    none = binary_copy.field("text", pd.Series([None, None], dtype=object))
    assert none is not None
    assert none.lengths is not None
    assert none.lengths.tolist() == [0, 0]
    assert len(none.data) == 0
    empty = binary_copy.field("text", pd.Series([""], dtype=object))
    assert empty is not None
    assert empty.lengths is not None
    assert empty.lengths.tolist() == [0]
    assert not empty.null.any()


def test_a_nul_or_a_value_not_a_str_is_not_encoded() -> None:
    assert binary_copy.field("text", pd.Series(["a", "b\x00c"], dtype=object)) is None
    assert binary_copy.field("text", pd.Series(["a", 3], dtype=object)) is None
    assert binary_copy.field("text", pd.Series([b"bytes"], dtype=object)) is None


def test_the_stream_of_a_text_column_matches_one_value_at_a_time() -> None:
    series = pd.Series(TEXTS, dtype=object)
    got = binary_copy.field("text", series)
    assert got is not None
    stream = binary_copy.encode([got], len(series))
    body = b"".join(
        (1).to_bytes(2, "big")
        + (
            (-1).to_bytes(4, "big", signed=True)
            if t is None
            else len(t.encode()).to_bytes(4, "big") + t.encode()
        )
        for t in TEXTS
    )
    assert stream == binary_copy.SIGNATURE + body + binary_copy.TRAILER
