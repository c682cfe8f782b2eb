"""Duplicate attachment: rules on real Paris reports, and bulk == one-by-one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from voirie.city import City, DedupeScoring
from voirie.gis import dedupe
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.services.pipeline import Pipeline
from voirie.store.sqlite import SqliteStore

REPORTS = Path(__file__).parents[2] / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"


SCORING = DedupeScoring()


def _frame(
    rows: list[tuple[float, float, str, str]],
    *,
    group: str = "g",
    match: str = "service",
    segments: list[str | None] | None = None,
    streets: list[str | None] | None = None,
) -> pd.DataFrame:
    """Reports at metric x/y (Lambert-93, Paris) with a service and a date."""
    n = len(rows)
    return pd.DataFrame(
        {
            "x": [r[0] for r in rows],
            "y": [r[1] for r in rows],
            "service_code": [r[2] for r in rows],
            "requested_at": pd.to_datetime([r[3] for r in rows], utc=True),
            "group": group,
            "match": match,
            "radius_m": 30.0,
            "window_days": 3.0,
            "segment_id": segments or [None] * n,
            "street_name": streets or [None] * n,
        }
    )


NO_STORED = pd.DataFrame(
    {
        "incident_id": pd.Series([], dtype="int64"),
        "x": [],
        "y": [],
        "service_code": [],
        "group": [],
        "match": [],
        "segment_id": [],
        "street_name": [],
        "last_reported_at": pd.to_datetime([], utc=True),
    }
)
X, Y = 652_271.0, 6_863_519.0  # Boulevard de Bonne-Nouvelle, Paris 2e
BONNE = "Boulevard de Bonne-Nouvelle"


def _attach(reports: pd.DataFrame, stored: pd.DataFrame = NO_STORED) -> pd.DataFrame:
    return dedupe.attach(reports, stored, SCORING)


def test_same_service_within_radius_and_window_attaches() -> None:
    links = _attach(_frame([(X, Y, "a", "2024-01-01"), (X + 12, Y, "a", "2024-01-03")]))
    assert links["leader"].tolist() == [0, 0]
    assert links["distance_m"].iloc[1] == pytest.approx(12)
    assert links["gap_days"].iloc[1] == pytest.approx(2)
    assert dedupe.reasons(links).tolist() == [dedupe.FOUNDER_REASON, "same service, 12 m, 2 days"]
    # proximity 0.6, recency 1/3, same service 1, no street known 0.5; weights .4 .2 .2 .2
    assert links["score"].iloc[1] == pytest.approx(0.4 * 0.6 + 0.2 / 3 + 0.2 + 0.1)


@pytest.mark.parametrize(
    ("second", "why"),
    [
        ((X + 31, Y, "a", "2024-01-02"), "beyond the radius"),
        ((X + 5, Y, "b", "2024-01-02"), "another service"),
        ((X + 5, Y, "a", "2024-01-05"), "beyond the window"),
    ],
)
def test_no_attachment(second: tuple[float, float, str, str], why: str) -> None:
    links = _attach(_frame([(X, Y, "a", "2024-01-01"), second]))
    assert links["leader"].tolist() == [0, 1], why


def test_sibling_services_share_an_incident_only_where_the_group_allows_it() -> None:
    rows = [(X, Y, "a", "2024-01-01"), (X + 5, Y, "b", "2024-01-02")]
    links = _attach(_frame(rows, match="group"))
    assert links["leader"].tolist() == [0, 0]
    assert dedupe.reasons(links)[1] == "same group, 5 m, 1 day"
    assert _attach(_frame(rows, match="service"))["leader"].tolist() == [0, 1]


def test_never_keeps_every_report_apart() -> None:
    rows = [(X, Y, "a", "2024-01-01"), (X, Y, "a", "2024-01-01")]
    assert _attach(_frame(rows, match="never"))["leader"].tolist() == [0, 1]


def test_the_same_street_reaches_further_than_another_street() -> None:
    rows = [(X, Y, "a", "2024-01-01"), (X + 45, Y, "a", "2024-01-02")]
    same = _attach(_frame(rows, segments=["s1", "s2"], streets=[BONNE, BONNE]))
    assert same["leader"].tolist() == [0, 0]
    assert dedupe.reasons(same)[1] == "same service, 45 m, same street, 1 day"
    other = _attach(_frame(rows, segments=["s1", "s2"], streets=[BONNE, "Rue Poissonnière"]))
    assert other["leader"].tolist() == [0, 1]
    unknown = _attach(_frame(rows))
    assert unknown["leader"].tolist() == [0, 1]


def test_a_street_scale_service_reaches_its_street_radius_along_its_street_only() -> None:
    """Snow on a block: 150 m apart on one street join, 150 m apart across streets or
    with no street known do not, nor do reports of a service that is not street-scale."""
    rows = [(X, Y, "a", "2024-01-01 00:00"), (X + 150, Y, "a", "2024-01-01 06:00")]
    streets = {"same": [BONNE, BONNE], "other": [BONNE, "Rue Poissonnière"], "none": None}
    for street_scale, expected in ((True, [0, 0]), (False, [0, 1])):
        for name, names in streets.items():
            frame = _frame(rows, streets=names).assign(street_radius_m=200.0 * street_scale)
            leaders = _attach(frame)["leader"].tolist()
            assert leaders == (expected if name == "same" else [0, 1]), (street_scale, name)
    far = _frame([*rows, (X + 250, Y, "a", "2024-01-01 07:00")], streets=[BONNE] * 3)
    links = _attach(far.assign(street_radius_m=200.0))
    assert links["leader"].tolist() == [0, 0, 2]  # 250 m from the incident's first report
    assert dedupe.reasons(links)[1] == "same service, 150 m, same street, 0 days"


def test_the_best_score_wins_over_the_nearest() -> None:
    """A report between two incidents joins the one on its own segment, though farther."""
    stored = pd.DataFrame(
        {
            "incident_id": [7, 8],
            "x": [X + 10, X - 8],
            "y": [Y, Y],
            "service_code": ["a", "a"],
            "group": "g",
            "match": "service",
            "segment_id": ["s1", "s9"],
            "street_name": [BONNE, "Rue Poissonnière"],
            "last_reported_at": pd.to_datetime(["2024-01-01", "2024-01-01"], utc=True),
        }
    )
    report = _frame([(X, Y, "a", "2024-01-02")], segments=["s1"], streets=[BONNE])
    links = _attach(report, stored)
    assert links["incident_id"].tolist() == [7]
    assert dedupe.reasons(links)[0] == "same service, 10 m, same segment, 1 day"


def test_reports_marked_apart_never_share_an_incident() -> None:
    rows = [(X, Y, "a", "2024-01-01"), (X + 3, Y, "a", "2024-01-01"), (X + 6, Y, "a", "2024-01-02")]
    apart = {0: frozenset({(1, 0)}), 1: frozenset({(1, 1)})}
    links = dedupe.attach(_frame(rows), NO_STORED, SCORING, apart)
    assert links["leader"].tolist() == [0, 1, 1]  # the third joins the nearer one


def test_window_counts_from_the_last_report_of_the_incident() -> None:
    rows = [(X, Y, "a", "2024-01-01"), (X + 3, Y, "a", "2024-01-03"), (X + 6, Y, "a", "2024-01-05")]
    assert _attach(_frame(rows))["leader"].tolist() == [0, 0, 0]


def test_joins_the_nearest_stored_incident_and_input_order_does_not_matter() -> None:
    stored = pd.DataFrame(
        {
            "incident_id": [7, 8],
            "x": [X + 20, X - 5],
            "y": [Y, Y],
            "service_code": ["a", "a"],
            "group": "g",
            "match": "service",
            "segment_id": None,
            "street_name": None,
            "last_reported_at": pd.to_datetime(["2024-01-01", "2024-01-01"], utc=True),
        }
    )
    later_first = _frame([(X, Y, "a", "2024-01-02"), (X - 100, Y, "a", "2024-01-01")])
    links = _attach(later_first, stored)
    assert links["incident_id"].tolist() == [8, dedupe.NO_INCIDENT]
    assert links["leader"].tolist() == [dedupe.NO_INCIDENT, 1]


def _groups(pipeline: Pipeline) -> set[frozenset[str]]:
    layer = pipeline.reads.reports()
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
        summary = pipeline.imports.import_table(table, DANSMARUE, batch_size=batch_size)
        assert summary.imported == len(sample)
        groups.append(_groups(pipeline))
        store.close()
    assert groups[0] == groups[1]
    assert sum(len(g) > 1 for g in groups[0]) >= 20  # the sample really holds duplicates


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_cluster_in_chunks_gives_what_one_attach_gives(
    paris: City, paris_gis: CityGIS, chunk_size: int
) -> None:
    """Real reports with their real segments, group matching and apart marks."""
    source = pd.read_csv(REPORTS, dtype=str, keep_default_na=False).head(600)
    enriched = paris_gis.enrich(
        pd.to_numeric(source["longitude"]).to_numpy(),
        pd.to_numeric(source["latitude"]).to_numpy(),
        source["adresse"].to_numpy(object),
    )
    codes = [paris.services_by_name[s.casefold()].code for s in source["soustype"]]
    rules = [paris.dedupe(c) for c in codes]
    reports = pd.DataFrame(
        {
            "x": enriched["x"],
            "y": enriched["y"],
            "service_code": codes,
            "group": [paris.services[c].group for c in codes],
            "match": [r.match for r in rules],
            "radius_m": [r.radius_m * 3 for r in rules],  # wider: more incidents to get right
            "window_days": [r.window_days for r in rules],
            "segment_id": enriched["segment_id"],
            "street_name": enriched["street_name"],
            "requested_at": pd.to_datetime(source["datedecl"], utc=True),
        }
    )
    apart = {3: frozenset({(0, 0)}), 10: frozenset({(0, 1)})}
    whole = dedupe.attach(reports, NO_STORED, SCORING, apart)
    chunked = dedupe.cluster(reports, SCORING, apart, chunk_size=chunk_size)
    pd.testing.assert_frame_equal(
        chunked.drop(columns="incident_id"), whole.drop(columns="incident_id")
    )
    assert (whole["leader"] != np.arange(len(reports))).sum() > 20  # 35 attach
