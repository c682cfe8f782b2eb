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
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np
import pandas as pd

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
        files = [path.open("rb") for path in self._runs]
        try:
            heads = {i: block for i, f in enumerate(files) if (block := _next(f)) is not None}
            # Each head's first and last keys, kept as the heads change: a step reads only
            # the heads that reach the bound, not every run's (a 5M-row file has 100 runs,
            # most of them with nothing to give at a given step).
            ends = {i: (_first_key(block), _last_key(block)) for i, block in heads.items()}
            pending = _Pending(batch_rows)
            while heads:
                bound = min(last for _, last in ends.values())
                taken = []
                for i in [i for i, (first, _) in ends.items() if first <= bound]:
                    block = heads[i]
                    n = _count_upto(block, bound)
                    taken.append(block.iloc[:n])
                    if n < len(block):
                        heads[i] = block.iloc[n:]
                        ends[i] = (_first_key(heads[i]), ends[i][1])
                    elif (refill := _next(files[i])) is not None:
                        heads[i] = refill
                        ends[i] = (_first_key(refill), _last_key(refill))
                    else:
                        del heads[i], ends[i]
                step = pd.concat(taken) if len(taken) > 1 else taken[0]
                yield from pending.add(step.sort_values(ORDER, kind="stable"))
            yield from pending.rest()
        finally:
            for f in files:
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
