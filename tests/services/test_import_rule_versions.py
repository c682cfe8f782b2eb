"""The bulk import stores the city's rule versions once, before its first batch (issue 14).

Reading them in every batch's transaction made each batch wait, on PostGIS, for the inserts
sent before the read. What must still hold: every assignment an import writes cites a
stored rule version, and a rule changed under a version already stored stops the import
before anything of it is written. On both backends, real Paris reports.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from datafiles import PARIS_REPORTS

from voirie.city import City
from voirie.errors import CityConfigError
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import RawTable, read_csv
from voirie.notify.versions import record_rules
from voirie.services.pipeline import Pipeline
from voirie.store import Store
from voirie.store.statements.delivery import SqlRules

ROWS = 1_200
BATCH = 300


@pytest.fixture
def reports(tmp_path: Path) -> RawTable:
    """The first real Paris reports, as a read source."""
    path = tmp_path / "reports.csv"
    pd.read_csv(PARIS_REPORTS, dtype=str, keep_default_na=False).iloc[:ROWS].to_csv(
        path, index=False
    )
    return read_csv(path)


def test_the_rule_versions_are_read_once_and_cited_stored(
    paris: City,
    paris_gis: CityGIS,
    store: Store,
    reports: RawTable,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[int] = []
    versions = SqlRules.versions

    def counted(rules: SqlRules, rule_ids: list[str]) -> pd.DataFrame:
        reads.append(len(rule_ids))
        return versions(rules, rule_ids)

    monkeypatch.setattr(SqlRules, "versions", counted)
    summary = Pipeline(paris, store, paris_gis).imports.import_table(
        reports, DANSMARUE, batch_size=BATCH
    )
    assert summary.imported > 3 * BATCH  # four batches or more
    assert reads == [len(paris.config.routing.rules)]
    j = paris.jurisdiction_id
    ids = [rule.id for rule in paris.config.routing.rules]
    stored = store.lookup("routing_rules", j, "rule_id", ids)
    assignments = store.lookup("assignments", j, "jurisdiction_id", [j])
    assert len(assignments) == summary.new_incidents
    cited = assignments[["rule_id", "rule_version"]].drop_duplicates()
    assert len(cited) > 1
    found = cited.merge(
        stored, left_on=["rule_id", "rule_version"], right_on=["rule_id", "version"]
    )
    assert len(found) == len(cited)
    assert len(stored) == len(paris.config.routing.rules)


def test_a_rule_changed_under_its_version_stops_the_import_before_any_write(
    paris: City, paris_gis: CityGIS, store: Store, reports: RawTable
) -> None:
    j = paris.jurisdiction_id
    with store.transaction(j) as uow:
        record_rules(uow, paris)
    first = paris.config.routing.rules[0]
    team = next(code for code in paris.teams if code != first.team)
    rules = [first.model_copy(update={"team": team}), *paris.config.routing.rules[1:]]
    routing = paris.config.routing.model_copy(update={"rules": rules})
    changed = City(paris.folder, paris.config.model_copy(update={"routing": routing}))
    with pytest.raises(CityConfigError, match=f"give the changed rule version {first.version + 1}"):
        Pipeline(changed, store, paris_gis).imports.import_table(
            reports, DANSMARUE, batch_size=BATCH
        )
    assert [store.count(table, j) for table in ("reports", "incidents", "events")] == [0, 0, 0]
