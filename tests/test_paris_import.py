"""The foundation's acceptance test: the full 23,508-report DansMaRue file, both backends."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from voirie.city import TRIAGE_TEAM, City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.services.pipeline import Pipeline
from voirie.settings import StoreSettings
from voirie.store import open_store

REPORTS = Path(__file__).parents[1] / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
COMPARED = [
    "external_id",
    "service_code",
    "segment_id",
    "street_name",
    "zone_arrondissement",
    "zone_quartier",
    "zone_espace_vert",
    "team",
    "off_network",
]


def _import_twice(url: str, paris: City, paris_gis: CityGIS) -> pd.DataFrame:
    store = open_store(StoreSettings(database_url=url))
    store.upgrade()
    try:
        pipeline = Pipeline(paris, store, paris_gis)
        table = read_csv(REPORTS)
        first = pipeline.imports.import_table(table, DANSMARUE)
        assert first.read == 23_508
        assert first.imported + first.quarantined == first.read
        again = pipeline.imports.import_table(table, DANSMARUE)
        assert (again.imported, again.quarantined, again.already_imported) == (
            0,
            0,
            first.imported,
        )
        layer = pipeline.reads.reports()
        assert store.count("reports", paris.jurisdiction_id) == first.imported
        return pd.DataFrame(layer.drop(columns="geometry"))
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.postgis
def test_full_paris_import_on_both_backends(
    tmp_path: Path, postgis_url: str, paris: City, paris_gis: CityGIS
) -> None:
    source = pd.read_csv(REPORTS, dtype={"id_dmr": str})
    truth = source.set_index("id_dmr")
    layers = {
        "sqlite": _import_twice(f"sqlite:///{tmp_path / 'paris.gpkg'}", paris, paris_gis),
        "postgis": _import_twice(postgis_url, paris, paris_gis),
    }
    for name, layer in layers.items():
        assert layer["segment_id"].notna().sum() + layer["off_network"].sum() == len(layer), name
        assert layer["zone_arrondissement"].notna().all(), name
        assert layer["zone_quartier"].notna().all(), name
        assert layer["incident_id"].notna().all(), name
        teams = set(layer["team"])
        assert teams <= set(paris.teams), name
        assert TRIAGE_TEAM not in teams  # every category of this file has a rule
        expected = truth.loc[layer["external_id"], "arrondissement"].astype(str).to_numpy()
        agreement = (layer["zone_arrondissement"].to_numpy() == expected).mean()
        assert agreement >= 0.995, (name, agreement)

    sqlite, postgis = (
        layers[n].sort_values("external_id", ignore_index=True) for n in ("sqlite", "postgis")
    )
    pd.testing.assert_frame_equal(
        sqlite[COMPARED].astype(object), postgis[COMPARED].astype(object), check_dtype=False
    )
    for column in ("snap_distance_m", "position_m"):
        assert (sqlite[column] - postgis[column]).abs().max() < 1e-6

    def grouping(layer: pd.DataFrame) -> set[frozenset[str]]:
        return {frozenset(g) for _, g in layer.groupby("incident_id")["external_id"]}

    assert grouping(sqlite) == grouping(postgis)
