"""The time order of a streamed import: an external merge sort of prepared reports.

Deduplication must see reports in the order they were made (``requested_at``, then the
source row), whatever the order of the file, and a file larger than memory cannot be
sorted at once. So each prepared chunk is sorted in memory and spilled to a temporary
file as a *run* of small pickled blocks (``add``); ``merged`` then reads every run at
once, one block per run in memory, and yields batches in the global order (a k-way merge:
the rows of every buffered block up to the smallest "last key" among the blocks cannot be
preceded by a row still on disk, so they are sorted and emitted, and the emptied blocks
refilled). Memory: one chunk while spilling, then about runs × ``block_rows`` rows while
merging; disk: about the pickled size of the prepared rows. The batches are exactly the
consecutive slices of the whole sorted table, so the import stores what one in-memory
sort would have stored. The files are private to the process (a temporary directory
removed on exit), which is why pickle, exact for every column type, is safe here.

The merge also runs while runs are still being added (``Merge.upto``): given a bound
below which no run still to come holds a row (``ChunkStarts``: each chunk's earliest
report, from a scan of the source's dates), the batches below it are already final
(``services.overlap`` stores them while the next chunk is prepared).
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np
import pandas as pd

from voirie.errors import SourceError

ORDER = ["requested_at", "row"]
"""The order deduplication needs: time, then the source row (unique, so a total order)."""
DEFAULT_BLOCK_ROWS = 1_000

Key = tuple[int, int]


class SortedRuns:
    """Sorted runs of prepared reports on disk, merged back in ``ORDER``."""

    def __init__(self, directory: Path | None = None, block_rows: int = DEFAULT_BLOCK_ROWS):
        self._dir = tempfile.TemporaryDirectory(prefix="voirie-import-", dir=directory)
        self._runs: list[Path] = []
        self.block_rows = block_rows
        self.rows = 0

    def __enter__(self) -> SortedRuns:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._dir.cleanup()

    @property
    def folder(self) -> Path:
        """The temporary folder of the runs (removed with them), for the import's other
        spilled files."""
        return Path(self._dir.name)

    def add(self, reports: pd.DataFrame) -> None:
        """Sort a chunk of prepared reports and spill it as one run."""
        if reports.empty:
            return
        ordered = reports.sort_values(ORDER, kind="stable", ignore_index=True)
        path = self.folder / f"run-{len(self._runs):05d}.pickle"
        with path.open("wb") as out:
            for start in range(0, len(ordered), self.block_rows):
                block = ordered.iloc[start : start + self.block_rows]
                pickle.dump(block, out, protocol=pickle.HIGHEST_PROTOCOL)
        self._runs.append(path)
        self.rows += len(ordered)

    def merged(self, batch_rows: int) -> Iterator[pd.DataFrame]:
        """Every spilled report in ``ORDER``, as batches of ``batch_rows`` (the last one
        shorter), each with a RangeIndex."""
        with closing(self.merge(batch_rows)) as merge:
            yield from merge.upto(None)

    def merge(self, batch_rows: int) -> Merge:
        """A merge of the runs that takes the runs added while it goes on (close it)."""
        return Merge(self._runs, batch_rows)


class Merge:
    """The k-way merge of sorted runs, batch by batch, up to a bound that may rise as runs
    are added: ``upto(limit)`` yields the full batches of the rows below ``limit`` (a key)
    in every run added so far, ``upto(None)`` every row left. The caller promises that
    no run added later holds a row below a limit it gave (``services.overlap``'s
    frontier), so the batches are those of one merge of all the runs."""

    def __init__(self, runs: list[Path], batch_rows: int) -> None:
        self._runs = runs
        """``SortedRuns``' list of runs, which grows as runs are added."""
        self._files: list[BinaryIO] = []
        self._heads: dict[int, pd.DataFrame] = {}
        # Each head's first and last keys, kept as the heads change: a step reads only
        # the heads that reach the bound, not every run's (a 5M-row file has 100 runs,
        # most of them with nothing to give at a given step).
        self._ends: dict[int, tuple[Key, Key]] = {}
        self._pending = _Pending(batch_rows)

    def upto(self, limit: Key | None) -> Iterator[pd.DataFrame]:
        """The full batches of every row below ``limit`` (of every row, the last batch
        shorter, when None) not given yet, each with a RangeIndex."""
        self._open_added()
        heads, ends = self._heads, self._ends
        while heads:
            bound = min(last for _, last in ends.values())
            if limit is not None:
                bound = min(bound, (limit[0], limit[1] - 1))  # rows are whole numbers
            ready = [i for i, (first, _) in ends.items() if first <= bound]
            if not ready:
                break
            taken = []
            for i in ready:
                block = heads[i]
                n = _count_upto(block, bound)
                taken.append(block.iloc[:n])
                if n < len(block):
                    heads[i] = block.iloc[n:]
                    ends[i] = (_first_key(heads[i]), ends[i][1])
                elif (refill := _next(self._files[i])) is not None:
                    heads[i] = refill
                    ends[i] = (_first_key(refill), _last_key(refill))
                else:
                    del heads[i], ends[i]
            step = pd.concat(taken) if len(taken) > 1 else taken[0]
            yield from self._pending.add(step.sort_values(ORDER, kind="stable"))
        if limit is None:
            yield from self._pending.rest()

    def _open_added(self) -> None:
        for path in self._runs[len(self._files) :]:
            self._files.append(path.open("rb"))
            i = len(self._files) - 1
            if (block := _next(self._files[i])) is not None:
                self._heads[i] = block
                self._ends[i] = (_first_key(block), _last_key(block))

    def close(self) -> None:
        """Close the runs' files."""
        for f in self._files:
            f.close()


class _Pending:
    """Merged rows waiting to fill a batch."""

    def __init__(self, batch_rows: int) -> None:
        self.batch_rows = batch_rows
        self.parts: list[pd.DataFrame] = []
        self.rows = 0

    def add(self, part: pd.DataFrame) -> Iterator[pd.DataFrame]:
        self.parts.append(part)
        self.rows += len(part)
        if self.rows < self.batch_rows:
            return
        waiting = pd.concat(self.parts, ignore_index=True)
        full = len(waiting) - len(waiting) % self.batch_rows
        for start in range(0, full, self.batch_rows):
            yield waiting.iloc[start : start + self.batch_rows].reset_index(drop=True)
        self.parts = [waiting.iloc[full:]] if full < len(waiting) else []
        self.rows = len(waiting) - full

    def rest(self) -> Iterator[pd.DataFrame]:
        if self.rows:
            yield pd.concat(self.parts, ignore_index=True)


def _next(run: BinaryIO) -> pd.DataFrame | None:
    try:
        block: pd.DataFrame = pickle.load(run)  # our own temporary file: see the module
    except EOFError:
        return None
    return block


def _keys(block: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    times = block["requested_at"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    return times, block["row"].to_numpy(np.int64)


def _first_key(block: pd.DataFrame) -> Key:
    times, rows = _keys(block.iloc[:1])
    return int(times[0]), int(rows[0])


def _last_key(block: pd.DataFrame) -> Key:
    times, rows = _keys(block.iloc[-1:])
    return int(times[0]), int(rows[0])


def _count_upto(block: pd.DataFrame, bound: Key) -> int:
    """How many rows of a sorted block come at or before ``bound`` (a prefix)."""
    times, rows = _keys(block)
    return int(((times < bound[0]) | ((times == bound[0]) & (rows <= bound[1]))).sum())


NO_REPORT = np.iinfo(np.int64).max
"""``ChunkStarts.earliest`` of a chunk without a dated row."""


@dataclass(frozen=True)
class ChunkStarts:
    """Where each chunk of a source stands in ``ORDER``, known before any is prepared (a
    scan of the source's dates): chunk i holds ``sizes[i]`` rows numbered from
    ``first_rows[i]``, and none of its reports comes before ``(earliest[i],
    first_rows[i])``, ``earliest`` in nanoseconds since the epoch, UTC."""

    first_rows: np.ndarray
    sizes: np.ndarray
    earliest: np.ndarray

    @classmethod
    def of(cls, chunks: Iterable[tuple[int, int]]) -> ChunkStarts:
        """From each chunk's number of rows and earliest time (``NO_REPORT`` if none)."""
        sizes, earliest = np.array(list(chunks), dtype=np.int64).reshape(-1, 2).T
        first_rows = 1 + np.concatenate([[0], np.cumsum(sizes)[:-1]])
        return cls(first_rows, sizes, earliest)

    @property
    def rows(self) -> int:
        """The source's rows."""
        return int(self.sizes.sum())

    def limit_after(self, chunk: int) -> Key | None:
        """The smallest key a report of the chunks after ``chunk`` may have (None after
        the last chunk): once chunks up to ``chunk`` are prepared, every prepared report
        below it is in its final place in the time order."""
        if chunk + 1 >= len(self.sizes):
            return None
        return int(self.earliest[chunk + 1 :].min()), int(self.first_rows[chunk + 1])

    def check(self, chunk: int, rows: pd.Series, reports: pd.DataFrame) -> None:
        """Raise ``SourceError`` unless chunk number ``chunk`` (its row numbers ``rows``,
        its prepared ``reports``) is as scanned: the source changed since."""
        scanned = chunk < len(self.sizes) and (
            len(rows) == self.sizes[chunk]
            and (rows.empty or rows.iloc[0] == self.first_rows[chunk])
        )
        if scanned and len(reports):
            times, numbers = _keys(reports)
            first = self.earliest[chunk], self.first_rows[chunk]
            later = (times > first[0]) | ((times == first[0]) & (numbers >= first[1]))
            scanned = bool(later.all())
        if not scanned:
            raise _changed(f"chunk {chunk + 1} of the source")

    def ended(self, chunks: int) -> None:
        """Raise ``SourceError`` unless the source had ``chunks`` chunks, as scanned."""
        if chunks != len(self.sizes):
            raise _changed(f"its number of chunks ({chunks}, {len(self.sizes)} scanned)")


def _changed(what: str) -> SourceError:
    return SourceError(
        f"the source changed while it was imported: {what} is not what was read before "
        "the import began; import it again to store the rest"
    )
