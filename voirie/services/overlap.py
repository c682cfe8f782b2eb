"""A bulk import's first pass on a thread of its own, its store pass storing behind it.

The store pass is bound by the server (its time is about the floor's: COPY of the same
rows), and its thread mostly waits on the server; the first pass (read, validate,
enrich, spill) is bound by the client, with the server idle. So the first pass runs on a
thread while the store pass stores what is ready; Python's lock is released while the
store pass waits, so the two share the time the server takes.

What is ready: the store pass stores in time order (``timeorder``), and a chunk not yet
prepared may hold a report earlier than every prepared one. So the source's dates are
read first (``chunk_starts`` over ``sources.scan_csv``: one column, no tables, the same
reader, so a file that cannot be read still fails before anything is written), which
gives each chunk's earliest report (``ChunkStarts``). Once chunks 0..i are prepared,
every prepared report below the earliest of the chunks after i (the *frontier*) is in
its final place: the full batches below it are handed to the store pass while chunk i+1
is prepared. The batches are still the consecutive slices of the whole file sorted by
time, so the rows stored, ids included, are those of the import with one pass after the
other. A chronological file (a city's history export) is stored from its first chunk on;
a file whose later chunks hold earlier reports is stored once its last chunk is
prepared, as without a scan.

If the first pass fails after storing began (a chunk that is not what the scan read: the
file changed; the database gone), the import raises after committing the batch it was
storing: what is stored is whole batches, a prefix of the file in time order, and
importing the file again stores the rest (what it would have stored in one go).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from functools import partial

import numpy as np
import pandas as pd

from voirie.city import City
from voirie.ingest.mapping import ColumnMapping
from voirie.ingest.sources import ROW, RawTable
from voirie.ingest.validate import read_times
from voirie.services.timeorder import NO_REPORT, ChunkStarts, Key, Merge, SortedRuns


def chunk_starts(dates: Iterable[pd.Series], mapping: ColumnMapping, city: City) -> ChunkStarts:
    """``ChunkStarts`` of a source from each chunk's raw values of its date column
    (``scan_csv``), read as ``validate`` reads them."""
    return ChunkStarts.of((len(raw), _earliest(raw, mapping, city)) for raw in dates)


def _earliest(raw: pd.Series, mapping: ColumnMapping, city: City) -> int:
    """The earliest of raw dates as ``validate`` reads them (in ns, UTC; ``NO_REPORT`` if
    none is a date). Each distinct value is read once: an export has many rows a day."""
    times = read_times(pd.Series(raw.unique(), dtype=object), mapping, city)
    ns = times.dropna().to_numpy(dtype="datetime64[ns]").view(np.int64)
    return int(ns.min()) if len(ns) else NO_REPORT


@contextmanager
def prepared_behind(
    chunks: Iterable[RawTable],
    prepare: Callable[[RawTable], pd.DataFrame],
    runs: SortedRuns,
    starts: ChunkStarts,
    batch_rows: int,
    finished: Callable[[], None],
) -> Iterator[Iterator[pd.DataFrame | None]]:
    """Prepare each chunk (``prepare``: its reports) on a thread and spill it to
    ``runs``, then call ``finished``; give the batches of ``batch_rows`` in time order as
    they become final, with a ``None`` each time the next batch waits for a chunk (the
    caller may commit meanwhile). An error of the first pass is raised where the batches
    are taken; leaving the context stops the first pass (after the chunk it prepares)."""
    handoff = _Handoff()
    thread = threading.Thread(
        target=handoff.feed,
        args=(chunks, prepare, runs, starts, finished),
        name="voirie-prepare",
        daemon=True,
    )
    thread.start()
    try:
        with closing(runs.merge(batch_rows)) as merge:
            yield handoff.batches(merge)
    finally:
        handoff.stop()
        thread.join()


class _Handoff:
    """What the first pass has prepared, as the store pass sees it: the frontier (a
    key; None once every chunk is prepared), or the error that stopped the first pass."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._limit: Key | None = (0, 0)  # nothing is final before the first chunk
        self._version = 0
        self._error: BaseException | None = None
        self._stopped = False

    def feed(
        self,
        chunks: Iterable[RawTable],
        prepare: Callable[[RawTable], pd.DataFrame],
        runs: SortedRuns,
        starts: ChunkStarts,
        finished: Callable[[], None],
    ) -> None:
        """The first pass (the thread's work): prepare, check against the scan and spill
        each chunk, then move the frontier."""
        try:
            count = 0
            for count, chunk in enumerate(chunks, 1):
                if self._stopped:
                    return
                reports = prepare(chunk)
                starts.check(count - 1, chunk.rows[ROW], reports)
                runs.add(reports)
                self._publish(starts.limit_after(count - 1))
            starts.ended(count)
            finished()
            self._publish(None)
        except BaseException as error:  # raised again on the store pass's thread
            with self._changed:
                self._error = error
                self._changed.notify_all()

    def _publish(self, limit: Key | None) -> None:
        with self._changed:
            self._limit = limit
            self._version += 1
            self._changed.notify_all()

    def stop(self) -> None:
        """Tell the first pass to stop before its next chunk."""
        self._stopped = True

    def batches(self, merge: Merge) -> Iterator[pd.DataFrame | None]:
        """``merge``'s batches below the frontier as it moves; ``None`` before a wait."""
        seen = 0
        while True:
            with self._changed:
                ready = self._moved(seen)
            if not ready:
                yield None
            with self._changed:
                self._changed.wait_for(partial(self._moved, seen))
                if self._error is not None:
                    raise self._error
                seen, limit = self._version, self._limit
            yield from merge.upto(limit)
            if limit is None:
                return

    def _moved(self, seen: int) -> bool:
        """Whether the frontier moved since version ``seen``, or the first pass failed."""
        return self._version != seen or self._error is not None
