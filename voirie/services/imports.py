"""The bulk import: every row of a source through the whole pipeline, batch by batch.

Validate, enrich (vectorized), check the territory, then per batch and in one transaction
under the deduplication lock: skip what is already stored, attach each report to an open
incident or open one (``Attacher``), and write everything (``IncidentWriter``). Reports are
processed in time order so that a bulk import gives the incidents the per-report path
would have given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from voirie.ingest.mapping import ColumnMapping
from voirie.ingest.sources import RawTable
from voirie.ingest.validate import CHANGED_CONTENT, QUARANTINE_COLUMNS, validate
from voirie.services.roles import Roles
from voirie.services.territory import outside_quarantine
from voirie.services.writer import Written
from voirie.store.base import UnitOfWork

DEFAULT_BATCH_SIZE = 5_000


@dataclass
class ImportSummary:
    """What an import did, for the person who ran it."""

    read: int = 0
    imported: int = 0
    new_incidents: int = 0
    attached_existing: int = 0
    attached_in_batch: int = 0
    already_imported: int = 0
    quarantine: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=QUARANTINE_COLUMNS)
    )
    opened_ids: set[int] = field(default_factory=set, repr=False)
    stored: list[pd.DataFrame] = field(default_factory=list, repr=False)

    @property
    def quarantined(self) -> int:
        """Number of rows set aside with a reason."""
        return len(self.quarantine)

    def reasons(self) -> pd.Series:
        """Quarantined rows counted by field and kind of problem (values stripped)."""
        kinds = self.quarantine["field"] + ": " + self.quarantine["reason"].str.split(":").str[0]
        return kinds.value_counts()


class Importer(Roles):
    """One city's bulk import into one store."""

    def import_table(
        self,
        table: RawTable,
        mapping: ColumnMapping,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: Callable[[int], None] | None = None,
        attributes: pd.DataFrame | None = None,
    ) -> ImportSummary:
        """Run every row of a source through the whole pipeline.

        ``attributes`` (external_id, code, value) are the answers to a service's questions;
        each is written in the transaction that stores its report.
        """
        summary = ImportSummary(read=len(table.rows))
        valid = validate(table, mapping, self.city)
        reports = valid.reports
        enriched = self.gis.enrich(
            reports["lon"].to_numpy(), reports["lat"].to_numpy(), reports["address"].to_numpy()
        )
        reports = pd.concat([reports, enriched], axis=1)
        outside = outside_quarantine(self.city, self.gis, reports, mapping)
        quarantine = [valid.quarantine, outside]
        reports = reports[~reports["row"].isin(outside["row"])]
        reports = reports.sort_values(["requested_at", "row"], kind="stable")
        if progress:
            progress(summary.read - len(reports))
        for start in range(0, len(reports), batch_size):
            batch = reports.iloc[start : start + batch_size].reset_index(drop=True)
            quarantine.append(self._store_batch(batch, summary, attributes))
            if progress:
                progress(len(batch))
        summary.quarantine = pd.concat(
            [q for q in quarantine if len(q)] or [summary.quarantine], ignore_index=True
        ).sort_values("row", kind="stable", ignore_index=True)
        if summary.imported >= batch_size:
            # A bulk load changes the tables' sizes by orders of magnitude: without fresh
            # statistics the next queries may plan as if the tables were empty.
            self.store.analyze()
        return summary

    def _store_batch(
        self, batch: pd.DataFrame, summary: ImportSummary, attributes: pd.DataFrame | None
    ) -> pd.DataFrame:
        """Write one batch in one transaction; return the rows it had to quarantine."""
        with self.store.transaction(self.city.jurisdiction_id) as uow:
            uow.lock(self.policy.lock_keys(batch["service_code"]))
            batch, rejected = _skip_known(uow, batch, summary)
            if len(batch):
                links = self.attacher.attach(uow, batch)
                _count(summary, batch, self.writer.write_batch(uow, batch, links, attributes))
        return rejected


def _count(summary: ImportSummary, batch: pd.DataFrame, written: Written) -> None:
    """Add a written batch's reports and incidents to the summary."""
    summary.imported += len(batch)
    summary.new_incidents += len(written.new_ids)
    summary.stored.append(
        pd.DataFrame(
            {
                "external_id": batch["external_id"],
                "report_id": batch["id"],
                "incident_id": written.incident_id,
                "opened": written.opened,
            }
        )
    )
    # "Existing" means stored before this import, not merely by an earlier batch of it.
    before = written.attached_stored & ~np.isin(written.incident_id, list(summary.opened_ids))
    summary.attached_existing += int(before.sum())
    summary.attached_in_batch += int((~before & ~written.opened).sum())
    summary.opened_ids.update(written.new_ids.tolist())


def _skip_known(
    uow: UnitOfWork, batch: pd.DataFrame, summary: ImportSummary
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop reports already stored; quarantine those stored with other content."""
    source = str(batch["source"].iloc[0])
    known = uow.reports.known(source, batch["external_id"].tolist())
    stored_hash = batch["external_id"].map(known.set_index("external_id")["content_hash"])
    same = stored_hash.notna() & (stored_hash == batch["content_hash"])
    changed = stored_hash.notna() & ~same
    summary.already_imported += int(same.sum())
    rejected = pd.DataFrame(
        {
            "row": batch.loc[changed, "row"],
            "external_id": batch.loc[changed, "external_id"],
            "field": "external_id",
            "reason": CHANGED_CONTENT,
        }
    )
    return batch[stored_hash.isna()].reset_index(drop=True), rejected
