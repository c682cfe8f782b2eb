"""A digest of each raw source row, so that a re-import recognises a row it stored before
without validating it again.

A re-import (every row already stored) spent most of its time validating rows only to find
them stored with the same ``content_hash``, a digest of the *validated* values. The import
now also stores ``raw_digest`` with each report (migration 0024): a digest of the source
row as read, before validation. A row whose external id is stored with the same raw digest
is the row imported before, cell for cell, so validation would give the same values and the
same ``content_hash``: it is counted as already imported and never validated. Any other row
(new, changed, re-formatted with the same content, stored before 0024 or by the per-report
path with no raw digest) is validated as before, and its content decides.

The digest is a keyed BLAKE2b of 8 bytes (16 hex digits) of the ``repr`` of the row's cells
in the mapped columns: ``repr`` quotes and escapes every text and tells ``None`` from
``"None"``, so two different rows never give the same input. The key stands for what else
decides what validation makes of those cells: the mapping (which field reads which column,
the date format) and ``DIGEST_VERSION``. Two different rows of one external id share a
digest with a probability of 2⁻⁶⁴. BLAKE2b and ``repr`` of a text are stable across
library upgrades; should one ever change (a newer Unicode database escaping more
characters, say), the rows concerned would no longer match: they are then validated as in
a first import, which is still the right answer, only slower.

The city is not part of the digest: a row stored unchanged stays "already imported" after
the city's catalogue changes, where validating it again could quarantine it (an unknown
category) or find its content changed (a category renamed): the stored report stands
either way, only the count differs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from voirie.ingest.mapping import ColumnMapping
from voirie.ingest.sources import PROBLEM, RawTable
from voirie.ingest.validate import stripped_cells
from voirie.values import text_problem

DIGEST_VERSION = 1
"""Changed whenever what a digest covers changes: every stored row is then validated again."""
_BYTES = 8


def raw_digests(table: RawTable, mapping: ColumnMapping) -> pd.Series:
    """The digest of every row of a raw table under a mapping (hex text, same index)."""
    rows = table.rows
    point = mapping.reads_point(table.columns)
    shape = repr((DIGEST_VERSION, _described(mapping, point))).encode()
    key = hashlib.blake2b(shape, digest_size=32).digest()
    cells = [
        rows[column].tolist() if column in rows else [None] * len(rows)
        for column in mapping.columns()
        if point or column != mapping.point
    ]
    # One hashlib call per row on one text: a few µs a row, a tenth of what validating it costs.
    digests = [
        hashlib.blake2b(repr(cell).encode(), digest_size=_BYTES, key=key).hexdigest()
        for cell in zip(*cells, strict=True)
    ]
    return pd.Series(digests, index=rows.index, dtype=object)


def _described(mapping: ColumnMapping, point: bool) -> dict[str, object]:
    """What of a mapping a digest's key covers. ``crs``, ``point`` and
    ``other_date_formats`` came after digests were first stored: ``crs`` is left out while
    unset, ``point`` (and its column, from the cells) while the source's rows are not read
    from it, ``other_date_formats`` always (they read only dates the main format refuses,
    of rows that were quarantined, never stored): so every digest stored before them still
    matches, as none of them changes what validation makes of a row stored then."""
    described = mapping.model_dump()
    del described["other_date_formats"]
    if described["crs"] is None:
        del described["crs"]
    if not point:
        del described["point"]
    return described


@dataclass(frozen=True)
class ChunkIds:
    """A chunk's external ids as validation reads them (``ids``: stripped; None when
    blank), factorized once (``codes``: each row's index in ``distinct``, -1 for no id),
    so that the ids to probe, the rows whose id is once in the chunk and each row's
    stored values come from one hashing of the ids rather than one each (four hashings
    of 50,000 ids were a fifth of a re-import's CPU)."""

    ids: pd.Series
    codes: np.ndarray
    distinct: np.ndarray

    @classmethod
    def of(cls, table: RawTable, mapping: ColumnMapping) -> ChunkIds:
        """The ids of a raw table's rows under a mapping."""
        ids = stripped_cells(table.rows, mapping.external_id)
        codes, distinct = pd.factorize(ids.to_numpy(dtype=object))
        return cls(ids, np.asarray(codes), np.asarray(distinct, dtype=object))

    def probed(self) -> list[str]:
        """The distinct ids worth asking the store about: those it can hold (validation
        refuses an id with a NUL byte, which PostgreSQL would refuse as a parameter, a
        control character or an unpaired surrogate). One scan of all of them, each checked
        alone only when that scan finds a problem (a bad row of the file)."""
        distinct = [i for i in self.distinct.tolist() if isinstance(i, str)]
        if text_problem("\n".join(distinct)) is None:
            return distinct
        return [i for i in distinct if text_problem(i) is None]

    def once(self) -> np.ndarray:
        """Whether each row has an id that no other row of the chunk has."""
        counts = np.append(
            np.bincount(self.codes[self.codes >= 0], minlength=len(self.distinct)), 0
        )
        once: np.ndarray = counts[self.codes] == 1  # no id: the appended 0
        return once

    def positions(self, stored_ids: pd.Series) -> np.ndarray:
        """Each row's position among ``stored_ids`` (distinct), -1 when its id is not there."""
        at = pd.Index(stored_ids.to_numpy(dtype=object)).get_indexer(self.distinct)
        positions: np.ndarray = np.append(at, -1)[self.codes]  # no id: the appended -1
        return positions


def stored_values(column: pd.Series, at: np.ndarray) -> np.ndarray:
    """A column of stored rows taken at positions (``ChunkIds.positions``; None at -1)."""
    values = np.empty(len(column) + 1, dtype=object)  # the last one None
    values[:-1] = column.to_numpy(dtype=object)
    taken: np.ndarray = values[at]
    return taken


def unchanged(table: RawTable, ids: ChunkIds, digests: pd.Series, stored: np.ndarray) -> np.ndarray:
    """Which rows of a raw table are stored unchanged: read without a problem, their id
    once in the table, and stored with their digest (``stored``: each row's stored raw
    digest, None when its id is not stored).

    A row whose id appears twice in the table is validated even so: validation decides
    which of the two is kept and which is quarantined as a repeat, as it always did."""
    same = np.asarray(stored == digests.to_numpy(dtype=object), dtype=bool)
    readable = table.rows[PROBLEM].isna().to_numpy()
    stored_unchanged: np.ndarray = ids.once() & readable & same
    return stored_unchanged
