"""Duplicate attachment: rules on real Paris reports, and bulk == one-by-one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from voirie.city import City
from voirie.gis import dedupe
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.pipeline import Pipeline
from voirie.store.sqlite import SqliteStore

REPORTS = Path(__file__).parents[2] / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"


def _frame(rows: list[tuple[float, float, str, str]]) -> pd.DataFrame:
    """Reports at metric x/y (Lambert-93, Paris) with a service and a date."""
    return pd.DataFrame(
        {
            "x": [r[0] for r in rows],
            "y": [r[1] for r in rows],
            "service_code": [r[2] for r in rows],
            "requested_at": pd.to_datetime([r[3] for r in rows], utc=True),
            "radius_m": 30.0,
            "window_days": 3.0,
        }
    )


NO_STORED = pd.DataFrame(
    {"incident_id": pd.Series([], dtype="int64"), "x": [], "y": [], "service_code": [],
     "last_reported_at": pd.to_datetime([], utc=True)}
)
X, Y = 652_271.0, 6_863_519.0  # Boulevard de Bonne-Nouvelle, Paris 2e


def test_same_service_within_radius_and_window_attaches() -> None:
    links = dedupe.attach(
        _frame([(X, Y, "a", "2024-01-01"), (X + 12, Y, "a", "2024-01-03")]), NO_STORED
    )
    assert links["leader"].tolist() == [0, 0]
    assert links["distance_m"].iloc[1] == pytest.approx(12)
    assert links["gap_days"].iloc[1] == pytest.approx(2)


@pytest.mark.parametrize(
    ("second", "why"),
    [
        ((X + 31, Y, "a", "2024-01-02"), "beyond the radius"),
        ((X + 5, Y, "b", "2024-01-02"), "another service"),
        ((X + 5, Y, "a", "2024-01-05"), "beyond the window"),
    ],
)
def test_no_attachment(second: tuple[float, float, str, str], why: str) -> None:
    links = dedupe.attach(_frame([(X, Y, "a", "2024-01-01"), second]), NO_STORED)
    assert links["leader"].tolist() == [0, 1], why


def test_window_counts_from_the_last_report_of_the_incident() -> None:
    rows = [(X, Y, "a", "2024-01-01"), (X + 3, Y, "a", "2024-01-03"),
            (X + 6, Y, "a", "2024-01-05")]
    assert dedupe.attach(_frame(rows), NO_STORED)["leader"].tolist() == [0, 0, 0]


def test_joins_the_nearest_stored_incident_and_input_order_does_not_matter() -> None:
    stored = pd.DataFrame(
        {"incident_id": [7, 8], "x": [X + 20, X - 5], "y": [Y, Y], "service_code": ["a", "a"],
         "last_reported_at": pd.to_datetime(["2024-01-01", "2024-01-01"], utc=True)}
    )
    later_first = _frame([(X, Y, "a", "2024-01-02"), (X - 100, Y, "a", "2024-01-01")])
    links = dedupe.attach(later_first, stored)
    assert links["incident_id"].tolist() == [8, dedupe.NO_INCIDENT]
    assert links["leader"].tolist() == [dedupe.NO_INCIDENT, 1]


def _groups(pipeline: Pipeline) -> set[frozenset[str]]:
    layer = pipeline.report_layer()
    return {frozenset(g) for _, g in layer.groupby("incident_id")["external_id"]}


def test_bulk_import_gives_the_incidents_of_one_by_one_arrival(
    tmp_path: Path, paris: City, paris_gis: CityGIS
) -> None:
    """Real reports with natural repeats (same sub-category and address), bulk vs online."""
    source = pd.read_csv(REPORTS, dtype=str, keep_default_na=False)
    repeated = source[source.duplicated(["soustype", "adresse"], keep=False)]
    sample = pd.concat([repeated.head(300), source.head(100)]).drop_duplicates("id_dmr")
    path = tmp_path / "sample.csv"
    sample.to_csv(path, index=False)
    table = read_csv(path)
    groups = []
    for name, batch_size in (("bulk", 5000), ("online", 1)):
        store = SqliteStore(tmp_path / f"{name}.gpkg")
        store.upgrade()
        pipeline = Pipeline(paris, store, paris_gis)
        summary = pipeline.import_table(table, DANSMARUE, batch_size=batch_size)
        assert summary.imported == len(sample)
        groups.append(_groups(pipeline))
        store.close()
    assert groups[0] == groups[1]
    assert sum(len(g) > 1 for g in groups[0]) >= 20  # the sample really holds duplicates
