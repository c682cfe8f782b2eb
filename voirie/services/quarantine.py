"""The rows a bulk import sets aside, counted as they come and spilled to disk.

An import quarantines rows in both of its passes (``services.imports``): while preparing,
a chunk at a time in the order of the file (row numbers go on across chunks), and while
storing, in time order, the rare row another writer stored with other content between the
two passes. The quarantine file lists them all in row order, each followed by its source
row (empty for the second kind, whose source row is gone by then), and the summary counts
them by kind. Holding them until the end cost about 1.3 KB a row: a 5M-row file whose
copies fell before ``EARLIEST_REPORT`` quarantined 4M rows and went past 2.5 GB. So the
first pass's rows are spilled with their source rows as they come, one pickled piece per
chunk (the folder is the import's own temporary one: pickle is safe there, and exact), and
only the counts by kind and the second pass's few rows stay in memory; the file is
written at the end, one piece at a time, with the second pass's rows put in their place.

Without a folder (``Importer.import_table``: a table already in memory) the rows are kept
in memory instead, as a table (``Quarantine.table``).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from voirie.codecs.csvsafe import safe_table
from voirie.ingest.sources import PROBLEM, ROW
from voirie.ingest.validate import QUARANTINE_COLUMNS

SOURCE_SUFFIX = "_source"
"""Added to a source column named like a quarantine column (``external_id``, ...)."""


def kinds(rows: pd.DataFrame) -> pd.Series:
    """Each quarantined row's kind of problem: its field and its reason up to the first
    colon, so that values are left out (``latitude: not a number``)."""
    kind: pd.Series = rows["field"] + ": " + rows["reason"].str.split(":").str[0]
    return kind


class Quarantine:
    """The rows an import set aside with their reason: counted by kind, and spilled to
    ``folder`` with their source rows for ``write_csv`` (or kept in memory, without a
    folder, for ``table``)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.count = 0
        self._first_and_count: dict[str, tuple[int, int]] = {}
        """Each kind's first row and number of rows."""
        self._pieces: list[Path] = []
        self._columns: list[str] = []
        """The quarantine file's columns: those of every piece, in order of appearance."""
        self._kept: list[pd.DataFrame] = []

    def add(self, rows: pd.DataFrame, source: pd.DataFrame | None = None) -> None:
        """Set aside ``rows`` (``QUARANTINE_COLUMNS``): with ``source``, the raw chunk
        they come from, whose rows come after those of every earlier call with a source;
        without, rows of the store pass, few and in any order (kept in memory)."""
        if rows.empty:
            return
        self._count(rows)
        if self.folder is None or source is None:
            self._kept.append(rows)
            return
        own = source[source[ROW].isin(rows["row"])].drop(columns=[PROBLEM])
        piece = rows.sort_values("row", kind="stable").merge(
            own.rename(columns={ROW: "row"}), on="row", how="left", suffixes=("", SOURCE_SUFFIX)
        )
        path = self.folder / f"quarantine-{len(self._pieces):05d}.pickle"
        with path.open("wb") as out:
            pickle.dump(piece, out, protocol=pickle.HIGHEST_PROTOCOL)
        self._pieces.append(path)
        self._columns += [name for name in piece.columns if name not in self._columns]

    def _count(self, rows: pd.DataFrame) -> None:
        self.count += len(rows)
        counted = rows.groupby(kinds(rows), sort=False)["row"].agg(["min", "size"])
        for kind, first, size in counted.itertuples():
            old_first, old_size = self._first_and_count.get(str(kind), (int(first), 0))
            self._first_and_count[str(kind)] = (min(old_first, int(first)), old_size + int(size))

    def reasons(self) -> pd.Series:
        """Rows counted by kind, most frequent first, ties in the order of their first row:
        what ``kinds(table).value_counts()`` gives, without the table."""
        if not self._first_and_count:
            return pd.Series([], index=pd.Index([], dtype=object), name="count", dtype=np.int64)
        ordered = sorted(self._first_and_count.items(), key=lambda item: item[1][0])
        counts = pd.Series(
            [size for _, (_, size) in ordered],
            index=pd.Index([kind for kind, _ in ordered], dtype=object),
            name="count",
            dtype=np.int64,
        )
        return counts.sort_values(ascending=False, kind="stable")

    def table(self) -> pd.DataFrame:
        """The rows kept in memory (an import without a folder), in row order."""
        if self.folder is not None:
            raise RuntimeError("the quarantined rows were spilled: see write_csv")
        return pd.concat(
            self._kept or [pd.DataFrame(columns=QUARANTINE_COLUMNS)], ignore_index=True
        ).sort_values("row", kind="stable", ignore_index=True)

    def write_csv(self, path: Path) -> None:
        """Write every row set aside to ``path``, in row order, each with its source row
        (cells a spreadsheet would run as formulas made text), one piece at a time. The
        file starts with a byte-order mark: Excel then reads it as UTF-8 (accents intact),
        as pandas, GDAL and ``voirie import`` do either way."""
        late = pd.concat(
            self._kept or [pd.DataFrame(columns=QUARANTINE_COLUMNS)], ignore_index=True
        ).sort_values("row", kind="stable", ignore_index=True)
        late_rows = late["row"].to_numpy(np.int64)
        columns = self._columns or list(late.columns)
        with path.open("w", encoding="utf-8-sig", newline="") as out:
            taken = 0
            for i, piece_path in enumerate(self._pieces):
                with piece_path.open("rb") as spilled:
                    piece: pd.DataFrame = pickle.load(spilled)  # our own file: see the module
                upto = int(np.searchsorted(late_rows, piece["row"].iloc[-1], side="right"))
                if upto > taken:
                    piece = pd.concat([piece, late.iloc[taken:upto]], ignore_index=True)
                    piece = piece.sort_values("row", kind="stable", ignore_index=True)
                    taken = upto
                safe_table(piece.reindex(columns=columns)).to_csv(out, index=False, header=i == 0)
            if taken < len(late) or not self._pieces:
                safe_table(late.iloc[taken:].reindex(columns=columns)).to_csv(
                    out, index=False, header=not self._pieces
                )
