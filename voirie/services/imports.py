"""The bulk import: every row of a source through the whole pipeline, streamed in chunks.

Two passes, so that memory does not grow with the file (beyond the city's indexes):

1. **Prepare**, one chunk of the source at a time: ask the store about the chunk's ids (one
   keyed probe) and count the rows it holds with the same raw digest (``ingest.digest``)
   as already imported, unvalidated (so a re-import of the same file only reads and
   digests it); validate the others; set aside ids repeated from an earlier chunk
   (``_Repeats``: what ``validate`` does inside one chunk, across chunks); skip what the
   store already holds with the same content (before the costly enrichment); enrich
   (vectorized); check the territory; spill the chunk, sorted by time, to a temporary
   run (``SortedRuns``), and its quarantined rows with their source rows to the same
   folder (``Quarantine``).
2. **Store**, batch by batch in time order (a k-way merge of the runs: deduplication needs
   every report after those made before it, whatever the order of the file), each batch
   in one transaction under the deduplication lock: skip what is already stored (again:
   another writer may have stored it since), attach each report to an open incident or
   open one (``Attacher``), and write everything (``IncidentWriter``). Statistics are
   refreshed as the tables grow (``_Statistics``) so that plans fit the loaded tables.
   On PostGIS the next batch is read and attached while the last one commits
   (``Importer._store_overlapped``), with the same outcome; on sqlite the next batch is
   merged while the last one commits (``Importer._store_serially``).

The batches are the consecutive slices of the whole file sorted by time, however it was
chunked, so a streamed import stores exactly what a one-chunk import stores, and what the
per-report path would have stored. A file that cannot be read fails in the first pass,
before anything is written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from voirie.city import City
from voirie.gis import dedupe
from voirie.ingest.digest import ChunkIds, raw_digests, stored_values, unchanged
from voirie.ingest.mapping import ColumnMapping
from voirie.ingest.sources import ROW, RawTable
from voirie.ingest.validate import CHANGED_CONTENT, validate
from voirie.model import Flag
from voirie.notify.versions import record_rules
from voirie.services.attach import Attacher
from voirie.services.inflight import InFlight, overlay
from voirie.services.quarantine import Quarantine
from voirie.services.roles import Roles
from voirie.services.territory import outside_quarantine
from voirie.services.timeorder import SortedRuns
from voirie.services.writer import BatchPlan, Written
from voirie.store.base import Store, UnitOfWork

DEFAULT_BATCH_SIZE = 5_000
DEFAULT_CHUNK_ROWS = 50_000
"""Rows of the source prepared at once by ``voirie import`` (the memory of the first pass)."""
REPEATED = "repeated in this file with different content"
"""``validate``'s reason for a repeated id, given across chunks by ``_Repeats``."""
FIRST_ANALYZE_BATCHES = 4
"""Statistics are first refreshed after this many batches, then each time the count doubles."""
PROBED_TABLES = ("reports", "incident_reports", "incidents")
"""The tables the import's own statements read while it loads (the "already imported?"
probe, the open incidents near a batch, the counts of those it joins): their statistics
are refreshed during the load, every table's once at its end."""


class ImportProgress(Protocol):
    """Who is told how far an import has gone (``voirie import``'s progress bar)."""

    def prepared(self, rows: int) -> None:
        """``rows`` more rows of the source were read, checked, enriched and spilled."""

    def storing(self, total: int) -> None:
        """The second pass starts: ``total`` prepared rows are to be stored."""

    def stored(self, rows: int) -> None:
        """``rows`` more prepared rows went through the store (written or skipped)."""


@dataclass
class ImportSummary:
    """What an import did, for the person who ran it."""

    read: int = 0
    imported: int = 0
    new_incidents: int = 0
    attached_existing: int = 0
    attached_in_batch: int = 0
    already_imported: int = 0
    new_categories: Counter[str] = field(default_factory=Counter)
    """Rows taken in the first pass under a category city.yaml does not list (routed to
    triage), by the service code they were given."""
    category_names: dict[str, str] = field(default_factory=dict)
    """The source's name of each of those codes."""
    set_aside: Quarantine = field(default_factory=Quarantine, repr=False)
    """The quarantined rows: counted, and kept in memory or written to a file."""
    opened: _IdRanges = field(default_factory=lambda: _IdRanges(), repr=False)

    @property
    def quarantined(self) -> int:
        """Number of rows set aside with a reason."""
        return self.set_aside.count

    @property
    def quarantine(self) -> pd.DataFrame:
        """The quarantined rows (``QUARANTINE_COLUMNS``) in row order, when the import kept
        them in memory (not when it wrote them to a quarantine file)."""
        return self.set_aside.table()

    def reasons(self) -> pd.Series:
        """Quarantined rows counted by field and kind of problem (values stripped)."""
        return self.set_aside.reasons()


class Importer(Roles):
    """One city's bulk import into one store."""

    def import_table(
        self,
        table: RawTable,
        mapping: ColumnMapping,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: ImportProgress | None = None,
        attributes: pd.DataFrame | None = None,
    ) -> ImportSummary:
        """Run every row of a source read at once through the whole pipeline (one chunk).

        ``attributes`` (external_id, code, value) are the answers to a service's questions;
        each is written in the transaction that stores its report.
        """
        return self.import_chunks(
            [table], mapping, batch_size=batch_size, progress=progress, attributes=attributes
        )

    def import_chunks(
        self,
        chunks: Iterable[RawTable],
        mapping: ColumnMapping,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: ImportProgress | None = None,
        attributes: pd.DataFrame | None = None,
        spill_dir: Path | None = None,
        quarantine_file: Path | None = None,
    ) -> ImportSummary:
        """Run every row of a source given in chunks (``sources.stream_*``, row numbers
        going on across chunks) through the whole pipeline, as the module says; the
        sorted runs are spilled under ``spill_dir`` (the system's temporary folder).

        With ``quarantine_file``, the quarantined rows are spilled beside the runs as they
        come and written to that CSV at the end with their source rows (if there are
        any); without, they are kept in memory (``ImportSummary.quarantine``)."""
        summary = ImportSummary()
        repeats = _Repeats(mapping.external_id)
        with SortedRuns(spill_dir) as runs:
            summary.set_aside = Quarantine(runs.folder if quarantine_file else None)
            for chunk in chunks:
                summary.read += len(chunk.rows)
                reports, rejected = self._prepare(chunk, mapping, repeats, summary)
                runs.add(reports)
                summary.set_aside.add(rejected, chunk.rows)
                if progress:
                    progress.prepared(len(chunk.rows))
            if progress:
                progress.storing(runs.rows)
            if runs.rows:
                self._store_rule_versions()
            statistics = _Statistics(self.store, FIRST_ANALYZE_BATCHES * batch_size)
            overlaps = self.store.concurrent_transactions  # see Store.concurrent_transactions
            store = self._store_overlapped if overlaps else self._store_serially
            store(runs.merged(batch_size), summary, attributes, statistics, progress)
            if quarantine_file is not None and summary.quarantined:
                summary.set_aside.write_csv(quarantine_file)
        if summary.imported >= batch_size:
            # A bulk load changes the tables' sizes by orders of magnitude: without fresh
            # statistics the next queries may plan as if the tables were empty.
            statistics.refresh()
        return summary

    def _prepare(
        self, chunk: RawTable, mapping: ColumnMapping, repeats: _Repeats, summary: ImportSummary
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The first pass over one chunk: its new reports, enriched and inside the city,
        and the rows it quarantines.

        The store is asked first about every id of the chunk, and the rows stored with the
        same raw digest (``ingest.digest``) are counted as already imported without being
        validated; the others are validated, then told apart by their content as before.
        Both go through ``_Repeats`` in between, so an id repeated from an earlier chunk is
        treated the same whichever way its rows went."""
        chunk_ids = ChunkIds.of(chunk, mapping)
        with self.store.transaction(self.city.jurisdiction_id) as uow, uow.pipelined():
            asked = uow.reports.digests_later(mapping.source, chunk_ids.probed())
            digests = raw_digests(chunk, mapping)  # while PostgreSQL looks the ids up
            known = asked()
        at = chunk_ids.positions(known["external_id"])
        same = unchanged(chunk, chunk_ids, digests, stored_values(known["raw_digest"], at))
        content = stored_values(known["content_hash"], at[same])
        stored, repeated_stored = repeats.check(
            _stored_rows(chunk, same, chunk_ids, content), _NONE
        )
        summary.already_imported += len(stored)
        valid = validate(replace(chunk, rows=chunk.rows[~same]), mapping, self.city)
        summary.category_names.update(valid.new_categories)
        # An id of a validated row is on no row stored unchanged (those ids are once in the
        # chunk): its first row is among the validated ones, the only ones looked up.
        firsts = _first(chunk_ids.ids[~same], digests[~same])
        valid.reports["raw_digest"] = valid.reports["external_id"].map(firsts)
        reports, repeated = repeats.check(valid.reports, valid.quarantine)
        rejected = [valid.quarantine, repeated_stored, repeated]
        if len(reports):
            # The stored rows of the validated ones only: indexing all the chunk's took
            # longer than validating the few rows a re-import validates.
            rest = at[~same]
            stored_rest = known.iloc[np.unique(rest[rest >= 0])]
            reports, changed, same_content = _split_known(reports, stored_rest)
            summary.already_imported += same_content
            rejected.append(changed)
        if len(reports):
            enriched = self.gis.enrich(
                reports["lon"].to_numpy(),
                reports["lat"].to_numpy(),
                reports["address"].to_numpy(),
            )
            reports = pd.concat([reports, enriched], axis=1)
            field = mapping.position_field(chunk.columns)
            outside = outside_quarantine(self.city, self.gis, reports, field)
            reports = reports[~reports["row"].isin(outside["row"])]
            rejected.append(outside)
            new = reports.loc[reports[Flag.UNKNOWN_SERVICE].to_numpy(bool), "service_code"]
            summary.new_categories.update(new.value_counts().to_dict())
        return reports, pd.concat([q for q in rejected if len(q)] or [repeated], ignore_index=True)

    def _store_rule_versions(self) -> None:
        """The city's rule versions (``record_rules``), in a transaction of their own
        before the first batch: every assignment the batches write cites a stored
        version, and a rule changed under a stored version stops the import before
        anything is written (``CityConfigError``). Once per import, not in every batch,
        whose read of the versions waited for the batch's inserts sent before it."""
        with self.store.transaction(self.city.jurisdiction_id) as uow:
            record_rules(uow, self.city)

    def _store_serially(
        self,
        batches: Iterable[pd.DataFrame],
        summary: ImportSummary,
        attributes: pd.DataFrame | None,
        statistics: _Statistics,
        progress: ImportProgress | None,
    ) -> None:
        """Write each batch in one transaction, one after the other, under the
        deduplication lock (the rows they had to quarantine go to ``summary``).

        Each commit is made on a thread while the next batch is merged from the sorted
        runs (sqlite's COMMIT, which writes the WAL and checkpoints it, lets go of the
        GIL); the next transaction begins once it has committed, so the batches are
        written exactly as one after the other."""
        j = self.city.jurisdiction_id
        with _Behind(summary, statistics, progress) as behind:
            for batch in batches:  # merged while the batch before it commits
                behind.committed()
                with ExitStack() as transaction:
                    uow = transaction.enter_context(self.store.transaction(j))
                    uow.lock(self.policy.lock_keys(batch["service_code"]))
                    fresh, rejected, known = _skip_known(uow, batch)
                    summary.already_imported += known
                    summary.set_aside.add(rejected)
                    if not len(fresh):
                        if progress:
                            progress.stored(len(batch))
                        continue
                    plan = self.writer.plan(uow, fresh, self.attacher.attach(uow, fresh))
                    written = self.writer.write_batch(uow, fresh, plan, attributes)
                    self.writer.count_joined(uow, plan)
                    behind.pending = _Pending(
                        transaction.pop_all(), fresh, written, None, len(batch)
                    )
                    behind.commit()

    def _store_overlapped(
        self,
        batches: Iterable[pd.DataFrame],
        summary: ImportSummary,
        attributes: pd.DataFrame | None,
        statistics: _Statistics,
        progress: ImportProgress | None,
    ) -> None:
        """``_store_serially``, but each batch is read, attached and planned (its ids:
        ``IncidentWriter.plan``) while the one before it commits (a thread commits it), so
        that the client's work on one batch runs while the server stores the other.

        Batch n+1's reads (the change counter, "already imported?", its candidates) are
        made before batch n's commit starts, so they never see batch n's rows: its
        incidents come from memory (``inflight``). Under the lock (taken once batch n has
        committed), the change counter (read before those reads) must have moved by
        batch n's commit alone; if another writer committed since, the batch is read,
        attached and planned again under the lock, as ``_store_serially`` does (the ids
        of the first plan left unused, as a rolled back transaction leaves). So every
        batch is attached to what a read made under the lock would have returned."""
        j = self.city.jurisdiction_id
        with _Behind(summary, statistics, progress) as behind:
            for batch in batches:
                version = self.store.change_mark(j).version
                with ExitStack() as transaction:
                    uow = transaction.enter_context(self.store.transaction(j))
                    read = self._read(uow, batch)
                    if (pending := behind.pending) is not None:
                        behind.commit()
                        version += 1  # that commit
                        read = read.overlaid(self.attacher, pending.flight)
                    plan = self._plan(uow, read)
                    behind.committed()  # before the lock, which it holds on the same keys
                    uow.lock(self.policy.lock_keys(batch["service_code"]))
                    if self.store.change_mark(j).version != version:
                        # Another writer committed since the reads: read again.
                        read = self._read(uow, batch)
                        plan = self._plan(uow, read)
                    summary.already_imported += read.known
                    summary.set_aside.add(read.rejected)
                    if plan is None or read.candidates is None:
                        if progress:
                            progress.stored(len(batch))
                        continue
                    written = self.writer.write_batch(uow, read.fresh, plan, attributes)
                    flight = InFlight.of(self.attacher, read.fresh, read.candidates, written)
                    # Its transaction stays open, to commit once the next batch is read;
                    # the counts of the incidents it joined are written as it commits.
                    open_ = transaction.pop_all()
                    open_.callback(self.writer.count_joined, uow, plan)
                    behind.pending = _Pending(open_, read.fresh, written, flight, len(batch))

    def _plan(self, uow: UnitOfWork, read: _Read) -> BatchPlan | None:
        """The batch's links among its candidates and its ids (``IncidentWriter.plan``);
        None when nothing of it is new."""
        links = read.attach(self.city)
        return None if links is None else self.writer.plan(uow, read.fresh, links)

    def _read(self, uow: UnitOfWork, batch: pd.DataFrame) -> _Read:
        """A batch's reads: what it holds that is not stored yet, and its candidates."""
        fresh, rejected, known = _skip_known(uow, batch)
        candidates = self.attacher.batch_candidates(uow, fresh) if len(fresh) else None
        return _Read(fresh, rejected, known, candidates)


def _count(summary: ImportSummary, batch: pd.DataFrame, written: Written) -> None:
    """Add a written batch's reports and incidents to the summary."""
    summary.imported += len(batch)
    summary.new_incidents += len(written.new_ids)
    # "Existing" means stored before this import, not merely by an earlier batch of it.
    before = written.attached_stored & ~summary.opened.contains(written.incident_id)
    summary.attached_existing += int(before.sum())
    summary.attached_in_batch += int((~before & ~written.opened).sum())
    summary.opened.add(written.new_ids)


def _skip_known(uow: UnitOfWork, batch: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Drop reports already stored; quarantine those stored with other content; count
    those stored with the same content."""
    source = str(batch["source"].iloc[0])
    return _split_known(batch, uow.reports.known(source, batch["external_id"].tolist()))


@dataclass(frozen=True)
class _Read:
    """A batch's reads before it is written (``Importer._read``)."""

    fresh: pd.DataFrame
    rejected: pd.DataFrame
    known: int
    candidates: pd.DataFrame | None
    """The open incidents it may join (None when nothing of it is new)."""

    def overlaid(self, attacher: Attacher, flight: InFlight | None) -> _Read:
        """The same with the incidents of the batch in flight (``inflight.overlay``;
        itself when none is)."""
        if self.candidates is None or flight is None:
            return self
        candidates = overlay(attacher, self.fresh, self.candidates, flight)
        return _Read(self.fresh, self.rejected, self.known, candidates)

    def attach(self, city: City) -> pd.DataFrame | None:
        """``dedupe.attach`` of the new reports among the candidates (None if none)."""
        if self.candidates is None:
            return None
        return dedupe.attach(self.fresh, self.candidates, city.config.dedupe)


class _Behind:
    """The batch whose commit runs on a thread while the import goes on with the next one
    (at most one at a time), added to the summary once committed. Leaving the block waits
    for it: a batch written whole commits whatever stopped the batches after it."""

    def __init__(
        self, summary: ImportSummary, statistics: _Statistics, progress: ImportProgress | None
    ) -> None:
        self.summary, self.statistics, self.progress = summary, statistics, progress
        self.pending: _Pending | None = None
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voirie-commit")

    def __enter__(self) -> _Behind:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.committed()
        finally:
            self._committer.shutdown()

    def commit(self) -> None:
        """Start committing the pending batch on the thread."""
        assert self.pending is not None
        self.pending.commit_behind(self._committer)

    def committed(self) -> None:
        """Wait for the pending batch's commit (if any) and count it."""
        if self.pending is None:
            return
        done, self.pending = self.pending, None
        done.committed()
        _count(self.summary, done.batch, done.written)
        self.statistics.grown(self.summary.imported)
        if self.progress:
            self.progress.stored(done.rows)


@dataclass
class _Pending:
    """A batch written in a transaction not yet committed (``transaction``: closing it
    writes the counts of the stored incidents the batch joined, then commits), and what
    the import counts once it has."""

    transaction: ExitStack
    batch: pd.DataFrame
    written: Written
    flight: InFlight | None
    """Its incidents for the next batch's reads (``_store_overlapped``; None when the
    next batch reads after this one has committed)."""
    rows: int
    commit: Future[None] | None = None

    def commit_behind(self, committer: ThreadPoolExecutor) -> None:
        """Commit on the committer's thread while the caller goes on."""
        self.commit = committer.submit(self.transaction.close)

    def committed(self) -> None:
        """Wait for the commit (made now if not sent behind); raise its error."""
        if self.commit is None:
            self.transaction.close()
        else:
            self.commit.result()


def _hashes(values: pd.Series) -> np.ndarray:
    """64-bit hashes of texts (pandas' fixed-key SipHash: the same in every run). Each
    text is hashed as it comes: pandas would first look for repeats to hash each distinct
    text once (its default; the same hashes for texts, never missing here), which costs
    more than it saves on ids, each once in a chunk."""
    return pd.util.hash_array(values.to_numpy(dtype=object), categorize=False)


class _Repeats:
    """The external ids of earlier chunks of a file, as 64-bit hashes with a hash of their
    first occurrence's content (0 when that row was quarantined), so that a later chunk
    repeating one is treated as ``validate`` treats a repeat inside a chunk: dropped when
    identical, quarantined otherwise. 16 bytes per row; two distinct ids share a hash with
    a probability of about n² / 2⁶⁵ (10⁻⁶ at 5M rows). One difference with a one-chunk
    import remains: a chunk repeating an id with two contents, the first of them new,
    quarantines both (a one-chunk import keeps silent about the one equal to the first)."""

    def __init__(self, id_field: str) -> None:
        self.id_field = id_field
        self.ids = np.zeros(0, dtype=np.uint64)
        self.contents = np.zeros(0, dtype=np.uint64)

    def check(
        self, reports: pd.DataFrame, quarantine: pd.DataFrame
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """A chunk's valid reports without the ids of earlier chunks, and the rows
        quarantined for repeating one with other content; remembers the chunk's ids."""
        ids, contents = _hashes(reports["external_id"]), _hashes(reports["content_hash"])
        seen, same = np.zeros(len(ids), dtype=bool), np.zeros(len(ids), dtype=bool)
        if len(self.ids):
            at = np.searchsorted(self.ids, ids).clip(max=len(self.ids) - 1)
            seen = self.ids[at] == ids
            same = seen & (self.contents[at] == contents)
        differs = seen & ~same
        rejected = pd.DataFrame(
            {
                "row": reports.loc[differs, "row"],
                "external_id": reports.loc[differs, "external_id"],
                "field": self.id_field,
                "reason": REPEATED,
            }
        )
        bad = quarantine["external_id"].dropna()
        self._remember(
            np.concatenate([ids[~seen], _hashes(bad)]),
            np.concatenate([contents[~seen], np.zeros(len(bad), dtype=np.uint64)]),
        )
        return reports[~seen].reset_index(drop=True), rejected

    def _remember(self, ids: np.ndarray, contents: np.ndarray) -> None:
        """Add first occurrences (the earliest wins) of ids not seen before: a binary
        search of the chunk's ids in the sorted ones and an insertion in place, linear in
        the ids held (sorting them again at every chunk made a 5M-row file quadratic)."""
        ids, first = np.unique(ids, return_index=True)
        contents = contents[first]
        at = np.searchsorted(self.ids, ids)
        if len(self.ids):
            new = self.ids[at.clip(max=len(self.ids) - 1)] != ids
            ids, contents, at = ids[new], contents[new], at[new]
        self.ids = np.insert(self.ids, at, ids)
        self.contents = np.insert(self.contents, at, contents)


class _IdRanges:
    """The ids of the incidents an import opened, as ranges of consecutive ids (ids are
    reserved a batch at a time, so a few ranges per batch rather than one set entry per
    incident)."""

    def __init__(self) -> None:
        self.starts = np.zeros(0, dtype=np.int64)
        self.ends = np.zeros(0, dtype=np.int64)

    def add(self, ids: np.ndarray) -> None:
        """Remember new (unique) ids."""
        if not len(ids):
            return
        ids = np.sort(ids.astype(np.int64))
        breaks = np.flatnonzero(np.diff(ids) != 1) + 1
        starts = np.concatenate([self.starts, ids[np.r_[0, breaks]]])
        ends = np.concatenate([self.ends, ids[np.r_[breaks - 1, len(ids) - 1]]])
        order = np.argsort(starts, kind="stable")
        self.starts, self.ends = starts[order], ends[order]

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Whether each id is in one of the ranges."""
        at = np.searchsorted(self.starts, ids, side="right") - 1
        inside = at >= 0
        inside[inside] = ids[inside] <= self.ends[at[inside]]
        return inside


class _Statistics:
    """``ANALYZE`` during a long load: first after ``first`` rows, then each time the
    stored count doubles (a handful of runs even at millions of rows), so that the
    planner never plans for tables much smaller than they have become."""

    def __init__(self, store: Store, first: int) -> None:
        self.store = store
        self.next = first

    def grown(self, imported: int) -> None:
        """Refresh the statistics of ``PROBED_TABLES`` from a small sample (``quick``) if
        the load has grown past the next step (the other tables are not read before the
        load ends, and ``refresh`` then gives every table its full statistics)."""
        if imported >= self.next:
            self.store.analyze(PROBED_TABLES, quick=True)
            self.next = 2 * imported

    def refresh(self) -> None:
        """Refresh every table's statistics (at the end of the load)."""
        self.store.analyze()


_NONE = pd.DataFrame({"row": [], "external_id": []})
"""No quarantined rows (``_Repeats.check`` of rows that were not validated)."""


def _split_known(
    batch: pd.DataFrame, known: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """``_skip_known`` with the stored reports already read (``known``, keyed by
    external_id: every id of the batch that is stored, and maybe others)."""
    stored_hash = batch["external_id"].map(known.set_index("external_id")["content_hash"])
    same = stored_hash.notna() & (stored_hash == batch["content_hash"])
    changed = stored_hash.notna() & ~same
    rejected = pd.DataFrame(
        {
            "row": batch.loc[changed, "row"],
            "external_id": batch.loc[changed, "external_id"],
            "field": "external_id",
            "reason": CHANGED_CONTENT,
        }
    )
    return batch[stored_hash.isna()].reset_index(drop=True), rejected, int(same.sum())


def _stored_rows(
    chunk: RawTable, same: np.ndarray, ids: ChunkIds, content: np.ndarray
) -> pd.DataFrame:
    """The rows of a chunk stored unchanged (``same``) as ``_Repeats`` takes valid
    reports: row, external_id and the stored content_hash (``content``, one per row)."""
    return pd.DataFrame(
        {
            "row": chunk.rows[ROW].to_numpy()[same],
            "external_id": ids.ids.to_numpy()[same],
            "content_hash": content,
        }
    )


def _first(ids: pd.Series, digests: pd.Series) -> pd.Series:
    """The raw digest of each id's first row in a chunk, by id: the row ``validate``
    keeps when the id repeats (a report's row number may repeat in a table built by
    hand, its id never does in ``validate``'s reports)."""
    first = (~ids.duplicated() & ids.notna()).to_numpy()
    return pd.Series(digests.to_numpy()[first], index=ids.to_numpy()[first])
