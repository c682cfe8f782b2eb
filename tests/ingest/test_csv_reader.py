"""Reading delimited files (``sources.stream_csv``): the tables a file gives, fixed here
cell by cell for files made of every case the reader must tell apart (blank rows, quoted
line breaks, wrong field counts, undecodable bytes, a literal U+FFFD, delimiters, gzip, a
byte order mark), in chunks of every size and with batches smaller than a chunk.

The reader parses a batch of rows at once and checks fields for U+FFFD only once the
bytes read hold one; these tables are what the row-by-row reader it replaced gave
(its output was the oracle they were written from), so they also pin that nothing changed.
"""

from __future__ import annotations

import csv
import gc
import gzip
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from voirie.errors import SourceError
from voirie.ingest import sources
from voirie.ingest.encoding import UTF8
from voirie.ingest.sources import MAX_CSV_FIELD, PROBLEM, ROW, read_csv, stream_csv

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"

TRICKY = (
    b"id,name , note\r\n"
    b'1,a,"x, y"\r\n'
    b"\r\n"
    b'2,"multi\r\nline",z\r\n'
    b" , ,\r\n"
    b"3,b\r\n"
    b"4,c,d,e\r\n"
    b"5,caf\xe9,\xff\r\n"
    b"6,\xef\xbf\xbd,ok\r\n"
    b"  ,e,f\r\n"
    b"7,\xff\r\n"
    b",,\r\n"
)
"""Every case at once: blank rows (empty, spaces and delimiters, delimiters only), a quoted
delimiter and a quoted line break, too few and too many fields, undecodable bytes in two
columns, a literal U+FFFD, a row whose first field is blank but not the row, and an
undecodable byte in a row that also has a wrong field count."""

TRICKY_ROWS = [
    ("1", "a", "x, y", 1, None),
    ("2", "multi\r\nline", "z", 2, None),
    ("3", "b", "", 3, "row has 2 fields, the header has 3"),
    ("4", "c", "d", 4, "row has 4 fields, the header has 3"),
    ("5", "caf\ufffd", "\ufffd", 5, "row is not valid UTF-8 text (in name, note)"),
    ("6", "\ufffd", "ok", 6, "row is not valid UTF-8 text (in name)"),
    ("  ", "e", "f", 7, None),
    ("7", "\ufffd", "", 8, "row has 2 fields, the header has 3"),
]
COLUMNS = ["id", "name", "note"]


def _plain(table: sources.RawTable) -> tuple[list[str], list[tuple[object, ...]], list[str]]:
    """A raw table as plain values: its columns, its rows (cells, row number, problem)
    and the dtypes of its frame's columns."""
    frame = table.rows
    rows = [tuple(None if pd.isna(v) else v for v in row) for row in frame.itertuples(False)]
    return table.columns, rows, [str(t) for t in frame.dtypes]


def _chunks(path: Path, chunk_rows: int | None) -> list[list[tuple[object, ...]]]:
    """The rows of each chunk of a file (every chunk checked for the file's columns and
    the frame's dtypes: text as objects, the row number as int64)."""
    found = []
    for table in stream_csv(path, chunk_rows):
        columns, rows, dtypes = _plain(table)
        assert columns == COLUMNS
        assert list(table.rows.columns) == [*COLUMNS, ROW, PROBLEM]
        assert dtypes == ["object"] * len(COLUMNS) + ["int64", "object"]
        found.append(rows)
    return found


@pytest.fixture
def tricky(tmp_path: Path) -> Path:
    path = tmp_path / "tricky.csv"
    path.write_bytes(TRICKY)
    return path


@pytest.mark.parametrize("chunk_rows", [None, 0, 1, 2, 3, 5, 8, 9, 50])
def test_every_case_in_chunks_of_any_size(tricky: Path, chunk_rows: int | None) -> None:
    size = chunk_rows or len(TRICKY_ROWS)
    expected = [TRICKY_ROWS[i : i + size] for i in range(0, len(TRICKY_ROWS), size)]
    assert _chunks(tricky, chunk_rows) == expected


@pytest.mark.parametrize("batch", [1, 2, 3])
@pytest.mark.parametrize("chunk_rows", [None, 1, 3, 4])
def test_batches_smaller_than_a_chunk_read_the_same_rows(
    tricky: Path, monkeypatch: pytest.MonkeyPatch, batch: int, chunk_rows: int | None
) -> None:
    """Blank rows and U+FFFD at every place in a batch: each batch's lines are the ones
    checked for it, whatever the batches before held."""
    expected = _chunks(tricky, chunk_rows)
    monkeypatch.setattr(sources, "_BATCH", batch)
    assert _chunks(tricky, chunk_rows) == expected


def test_a_u_fffd_after_a_blank_row_in_a_later_batch_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lines read back for a batch are all of its lines: after a batch whose first
    lines already held a U+FFFD, the next batch's own lines are the ones checked."""
    path = tmp_path / "later.csv"
    path.write_bytes(b"a,b\n1,\xff\n\n2,x\n3,\xff\n4,y\n")
    monkeypatch.setattr(sources, "_BATCH", 2)
    # Read as UTF-8 (its only non-ASCII bytes are not UTF-8: told apart, it is Windows-1252).
    assert _plain(read_csv(path, UTF8))[1] == [
        ("1", "\ufffd", 1, "row is not valid UTF-8 text (in b)"),
        ("2", "x", 2, None),
        ("3", "\ufffd", 3, "row is not valid UTF-8 text (in b)"),
        ("4", "y", 4, None),
    ]


def _oracle(data: bytes) -> list[tuple[object, ...]]:
    """The rows of a file decoded at once, each field searched for U+FFFD: what the
    reader must give for a file of rows as long as its header and without blank rows."""
    text = data.decode("utf-8-sig", errors="replace")
    rows = list(csv.reader(io.StringIO(text, newline="")))[1:]
    found = []
    for number, fields in enumerate(rows, start=1):
        bad = [name for name, field in zip(["a", "b"], fields, strict=True) if "\ufffd" in field]
        problem = f"row is not valid UTF-8 text (in {', '.join(bad)})" if bad else None
        found.append((*fields, number, problem))
    return found


@pytest.mark.parametrize("shift", range(-3, 4))
@pytest.mark.parametrize(
    "tail",
    [
        b"9,caf\xc3\xa9\n10,ok\n",  # a valid two-byte character, nothing to find
        b"9,caf\xe9\n10,ok\n",  # an undecodable byte
        b"9,\xef\xbf\xbd\n10,ok\n",  # a U+FFFD written as such
        b"9,ok\n10,caf\xc3",  # a character cut short by the end of the file
        b"9,ok\n10,caf\xe2\x82",
    ],
)
def test_a_u_fffd_is_found_wherever_the_stream_is_cut(
    tmp_path: Path, shift: int, tail: bytes
) -> None:
    """Fields are searched only once the bytes read hold a U+FFFD: found after many
    ASCII blocks, with the character across the boundary of the stream's 8 KiB reads,
    and at the very end of the file (a character cut short there)."""
    head = b"a,b\n" + b"".join(b"%d,x\n" % i for i in range(1, 9))
    pad = 3 * 8192 + shift - len(head) - len(tail.split(b"\n")[0]) - 3
    data = head.replace(b"8,x", b"8," + b"x" * pad) + tail
    path = tmp_path / "cut.csv"
    path.write_bytes(data)
    assert _plain(read_csv(path, UTF8))[1] == _oracle(data)


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_the_delimiter_is_the_one_the_header_holds_most(tmp_path: Path, delimiter: str) -> None:
    others = "".join(d for d in ",;\t|" if d != delimiter)
    text = f"a{delimiter}b{delimiter}c\n1{delimiter}{others}{delimiter}3\n"
    path = tmp_path / "delimited.csv"
    path.write_text(text, encoding="utf-8")
    assert _plain(read_csv(path))[:2] == (["a", "b", "c"], [("1", others, "3", 1, None)])


def test_gzip_with_a_byte_order_mark_reads_as_the_plain_file(tricky: Path) -> None:
    packed = tricky.with_name("tricky.csv.gz")
    packed.write_bytes(gzip.compress(b"\xef\xbb\xbf" + TRICKY))
    assert _chunks(packed, 3) == _chunks(tricky, 3)


@pytest.mark.parametrize("body", [b"", b"\n", b"\n \n;;\n"])
def test_a_file_without_rows_gives_one_empty_chunk(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "header.csv"
    path.write_bytes(b"id;name;note\n" + body)
    assert _chunks(path, 2) == [[]]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "the file is empty"),
        (b"  \n\n", "the file is empty"),
        (b"\n1,2\n", "the first line (the header) is blank"),
    ],
)
def test_a_file_without_a_header_is_refused(tmp_path: Path, data: bytes, error: str) -> None:
    path = tmp_path / "headless.csv"
    path.write_bytes(data)
    with pytest.raises(SourceError, match=error.replace("(", r"\(").replace(")", r"\)")):
        list(stream_csv(path, 2))


def test_the_real_file_reads_as_pandas_reads_it() -> None:
    """The DansMaRue file (well formed, accents, quoted fields) gives pandas' own values,
    in chunks that follow each other."""
    expected = pd.read_csv(REPORTS, dtype=str, keep_default_na=False)
    chunks = list(stream_csv(REPORTS, 10_000))
    assert [len(c.rows) for c in chunks] == [10_000, 10_000, len(expected) - 20_000]
    rows = pd.concat([c.rows for c in chunks], ignore_index=True)
    assert chunks[0].columns == list(expected.columns)
    assert (rows[list(expected.columns)].to_numpy() == expected.to_numpy()).all()
    assert rows[ROW].tolist() == list(range(1, len(expected) + 1))
    assert rows[PROBLEM].isna().all()


@contextmanager
def _collector(enabled: bool) -> Iterator[None]:
    """The collector on or off for a test, as it was afterwards."""
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        yield
    finally:
        (gc.enable if was else gc.disable)()


@pytest.mark.parametrize("enabled", [True, False])
def test_the_garbage_collector_is_left_as_it_was(tricky: Path, enabled: bool) -> None:
    """Paused while rows are parsed, the collector is as the caller had it between
    chunks, at the end and after a file that cannot be parsed."""
    with _collector(enabled):
        for _ in stream_csv(tricky, 2):
            assert gc.isenabled() is enabled
        assert gc.isenabled() is enabled
        oversized = tricky.with_name("oversized.csv")
        oversized.write_bytes(b"a,b\n1," + b"x" * (MAX_CSV_FIELD + 1) + b"\n")
        with pytest.raises(SourceError, match="not a readable delimited text file"):
            list(stream_csv(oversized, 2))
        assert gc.isenabled() is enabled


def test_no_collection_goes_over_a_chunk_being_read() -> None:
    """The row lists of a chunk die (copied into its frame) before the collector resumes:
    reading the real file sets off no collection (14 on 23.5k rows when the collector
    resumed after every batch of 2,000 rows, each going over the rows read so far)."""
    started: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    with _collector(True):
        gc.collect()
        gc.callbacks.append(count)
        try:
            chunks = sum(1 for _ in stream_csv(REPORTS, 5_000))
        finally:
            gc.callbacks.remove(count)
    assert chunks == 5
    assert started == []
