"""Staff operations on incidents (merge, split, not duplicates), on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from voirie.city import City
from voirie.errors import Conflict, InvalidInput, NotFound
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import RawTable, read_csv
from voirie.model import Report
from voirie.services import merging
from voirie.services.pipeline import Pipeline
from voirie.store.base import Store
from voirie.store.selection import Selection
from voirie.store.sqlite import SqliteStore

# A real DansMaRue sub-category; its group matches the same service only.
SERVICE = "Trottoirs : Affaissement, trou, bosse, pavé arraché"
T0 = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)
# Boulevard de Bonne-Nouvelle (2e) and, 400 m away, Rue du Faubourg Poissonnière.
REPORTS = Path(__file__).parents[1] / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
HERE = (2.34858, 48.87053)
THERE = (2.34870, 48.87410)


def _report(paris: City, external_id: str, where: tuple[float, float], hours: float) -> Report:
    code = next(s.code for s in paris.config.services if s.name.startswith(SERVICE))
    return Report(
        external_id=external_id,
        source="app",
        lon=where[0],
        lat=where[1],
        service_code=code,
        requested_at=T0 + timedelta(hours=hours),
    )


@pytest.fixture
def pipeline(store: Store, paris: City, paris_gis: CityGIS) -> Pipeline:
    return Pipeline(paris, store, paris_gis)


def _incident(pipeline: Pipeline, incident_id: int) -> dict[str, object]:
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        row = uow.incidents.get(incident_id)
    assert row is not None
    return row


def _events(pipeline: Pipeline, entity: str, entity_id: int) -> list[tuple[str, str, str]]:
    history = pipeline.store.lookup(
        "events", pipeline.city.jurisdiction_id, "entity_id", [entity_id]
    )
    mine = history[(history["entity"] == entity) & (history["entity_id"] == entity_id)]
    return list(zip(mine["kind"], mine["actor"], mine["reason"], strict=True))


def _two_incidents(pipeline: Pipeline, paris: City) -> tuple[int, int, list[int]]:
    """Incident A: two reports here; incident B: one report there. Returns ids and reports."""
    a1 = pipeline.intake.submit(_report(paris, "a1", HERE, 0))
    a2 = pipeline.intake.submit(_report(paris, "a2", HERE, 1))
    b1 = pipeline.intake.submit(_report(paris, "b1", THERE, 2))
    assert a2.incident_id == a1.incident_id != b1.incident_id
    return a1.incident_id, b1.incident_id, [a1.report_id, a2.report_id, b1.report_id]


def test_merge_moves_reports_supporters_followers_and_points_at_the_survivor(
    pipeline: Pipeline, paris: City
) -> None:
    a, b, reports = _two_incidents(pipeline, paris)
    with pipeline.store.transaction(paris.jurisdiction_id) as uow:
        uow.citizens.add_supporter(a, "both@example.org", T0)
        uow.citizens.add_supporter(b, "both@example.org", T0)
        uow.citizens.add_supporter(b, None, T0)
        uow.citizens.add_follower(b, "follower@example.org", T0)
    done = merging.merge(pipeline, a, b, "dispatcher-1", "same hole seen from the corner")
    assert (done.reports_moved, done.report_count, done.supporters) == (1, 3, 2)
    merged, kept = _incident(pipeline, b), _incident(pipeline, a)
    assert (merged["status"], merged["merged_into"], merged["report_count"]) == ("duplicate", a, 0)
    assert kept["report_count"] == 3
    assert kept["last_reported_at"] == T0 + timedelta(hours=2)
    layer = pipeline.reads.reports(Selection(ids=tuple(reports)))
    assert set(layer["incident_id"]) == {a}
    assert "merged from incident" in layer.set_index("report_id").loc[reports[2], "dedupe_reason"]
    assert merging.survivor(pipeline, b) == a
    assert merging.survivor(pipeline, a) == a
    with pipeline.store.transaction(paris.jurisdiction_id) as uow:
        assert not uow.citizens.add_follower(a, "follower@example.org", T0)  # it moved to a
    assert (
        "merged",
        "dispatcher-1",
        f"merged into incident {a}: same hole seen from the corner",
    ) in _events(pipeline, "incident", b)
    assert any(kind == "merged" for kind, _, _ in _events(pipeline, "report", reports[2]))


def test_a_merged_incident_cannot_be_merged_again_or_absorb_another(
    pipeline: Pipeline, paris: City
) -> None:
    a, b, _ = _two_incidents(pipeline, paris)
    merging.merge(pipeline, a, b, "d", "same")
    with pytest.raises(Conflict, match=f"was merged into incident {a}"):
        merging.merge(pipeline, a, b, "d", "again")
    with pytest.raises(Conflict, match=f"was merged into incident {a}") as caught:
        merging.merge(pipeline, b, a, "d", "backwards")
    assert caught.value.field == "into"


def test_incidents_marked_not_duplicates_are_never_merged(pipeline: Pipeline, paris: City) -> None:
    a, b, _ = _two_incidents(pipeline, paris)
    assert merging.not_duplicates(pipeline, a, b, "agent-7", "two different holes")
    assert not merging.not_duplicates(pipeline, b, a, "agent-7", "said twice")
    with pytest.raises(Conflict, match="marked not duplicates"):
        merging.merge(pipeline, a, b, "d", "same?")
    assert (
        "not_duplicate",
        "agent-7",
        f"not a duplicate of incident {b}: two different holes",
    ) in _events(pipeline, "incident", a)
    with pipeline.store.transaction(paris.jurisdiction_id) as uow:
        assert uow.links.not_duplicates([b]).values.tolist() == [[min(a, b), max(a, b)]]


def test_merge_carries_the_merged_incidents_marks_to_the_survivor(
    pipeline: Pipeline, paris: City
) -> None:
    a, b, _ = _two_incidents(pipeline, paris)
    c = pipeline.intake.submit(_report(paris, "c1", (2.35500, 48.87053), 3)).incident_id
    merging.not_duplicates(pipeline, b, c, "agent", "different")
    merging.merge(pipeline, a, b, "d", "same")
    with pytest.raises(Conflict, match="marked not duplicates"):
        merging.merge(pipeline, c, a, "d", "same?")


def test_split_opens_a_routed_incident_and_keeps_the_old_one_consistent(
    pipeline: Pipeline, paris: City
) -> None:
    a, _, reports = _two_incidents(pipeline, paris)
    # Split the report that opened incident a: a gets a new first report and place.
    new = merging.split(pipeline, reports[0], "agent-3", "another hole, other kerb")
    old, opened = _incident(pipeline, a), _incident(pipeline, new)
    assert (old["report_count"], old["origin_report_id"]) == (1, reports[1])
    assert old["first_reported_at"] == T0 + timedelta(hours=1)
    assert (opened["report_count"], opened["status"], opened["origin_report_id"]) == (
        1,
        "new",
        reports[0],
    )
    assert opened["team"] == old["team"]  # routed like any new incident of this service
    layer = pipeline.reads.reports(Selection(ids=(reports[0],)))
    assert layer["incident_id"].tolist() == [new]
    kinds = [kind for kind, _, _ in _events(pipeline, "incident", new)]
    assert "routed" in kinds
    with pipeline.store.transaction(paris.jurisdiction_id) as uow:
        assert uow.links.not_duplicates([new]).values.tolist() == [[a, new]]
    with pytest.raises(Conflict, match="only report of incident"):
        merging.split(pipeline, reports[1], "agent-3", "again")


def test_bad_input_names_the_field(pipeline: Pipeline, paris: City) -> None:
    a, b, reports = _two_incidents(pipeline, paris)
    with pytest.raises(NotFound) as missing:
        merging.merge(pipeline, a, 999_999, "d", "x")
    assert missing.value.field == "incident_id"
    with pytest.raises(InvalidInput) as empty:
        merging.merge(pipeline, a, b, "d", "  ")
    assert empty.value.field == "reason"
    with pytest.raises(InvalidInput, match="into itself"):
        merging.merge(pipeline, a, a, "d", "x")
    with pytest.raises(NotFound) as no_report:
        merging.split(pipeline, 999_999, "d", "x")
    assert no_report.value.field == "report_id"
    with pytest.raises(InvalidInput, match="itself"):
        merging.not_duplicates(pipeline, a, a, "d", "x")
    assert _incident(pipeline, b)["status"] == "new"
    assert len(reports) == 3


def _scaled(city: City, factor: float) -> City:
    """The same city with every group's radius and window scaled (thresholds changed)."""
    groups = [
        g.model_copy(
            update={
                "dedupe": g.dedupe.model_copy(
                    update={
                        "radius_m": min(g.dedupe.radius_m * factor, 1000),
                        "window_days": min(g.dedupe.window_days * factor, 365),
                    }
                )
            }
        )
        for g in city.config.groups
    ]
    return City(city.folder, city.config.model_copy(update={"groups": groups}))


def _grouping(pipeline: Pipeline) -> set[frozenset[str]]:
    layer = pipeline.reads.reports()
    return {frozenset(g) for _, g in layer.groupby("incident_id")["external_id"]}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> RawTable:
    """Real reports with natural repeats (same sub-category and address) and others."""
    source = pd.read_csv(REPORTS, dtype=str, keep_default_na=False)
    repeated = source[source.duplicated(["soustype", "adresse"], keep=False)]
    rows = pd.concat([repeated.head(200), source.head(60)]).drop_duplicates("id_dmr")
    path = tmp_path_factory.mktemp("sample") / "sample.csv"
    rows.to_csv(path, index=False)
    return read_csv(path)


@pytest.mark.parametrize("before", [0.4, 2.5], ids=["tighter-before", "looser-before"])
def test_recluster_gives_the_incidents_of_the_online_path(
    store: Store,
    tmp_path: Path,
    paris: City,
    paris_gis: CityGIS,
    sample: RawTable,
    before: float,
) -> None:
    """Imported with other thresholds, then re-clustered with city.yaml's: the incidents
    of importing with city.yaml's from the start (the online rule, time order)."""
    Pipeline(_scaled(paris, before), store, paris_gis).imports.import_table(sample, DANSMARUE)
    pipeline = Pipeline(paris, store, paris_gis)
    done = merging.recluster(pipeline)
    reference_store = SqliteStore(tmp_path / "reference.gpkg")
    reference_store.upgrade()
    reference = Pipeline(paris, reference_store, paris_gis)
    reference.imports.import_table(
        sample, DANSMARUE
    )  # bulk == one by one (tests/gis/test_dedupe.py)
    assert _grouping(pipeline) == _grouping(reference)
    reference_store.close()
    changed = done.merged if before < 1 else done.opened
    assert changed > 5, done  # the thresholds really changed the incidents
    incidents = pipeline.reads.incidents()
    live = incidents[incidents["status"] != "duplicate"]
    assert len(live) == done.incidents_after
    layer = pipeline.reads.reports()
    assert (
        layer.groupby("incident_id").size().reindex(live["incident_id"]).to_numpy()
        == live["report_count"].to_numpy()
    ).all()
    assert set(layer["incident_id"]) == set(live["incident_id"])
    with pipeline.store.transaction(paris.jurisdiction_id) as uow:
        merged = incidents[incidents["status"] == "duplicate"]["incident_id"].tolist()
        if merged:
            row = uow.incidents.get(int(merged[0]))
            assert row is not None
            assert row["merged_into"] in set(live["incident_id"])
    again = merging.recluster(pipeline)
    assert (again.merged, again.opened, again.moved) == (0, 0, 0)


def test_recluster_never_merges_incidents_marked_not_duplicates(
    pipeline: Pipeline, paris: City, paris_gis: CityGIS
) -> None:
    a, b, _ = _two_incidents(pipeline, paris)
    c = pipeline.intake.submit(_report(paris, "c1", (2.35000, 48.87053), 3)).incident_id
    merging.not_duplicates(pipeline, a, b, "agent", "two holes")
    loose = Pipeline(_scaled(paris, 100), pipeline.store, paris_gis)
    done = merging.recluster(loose, "gis-officer", "radius raised")
    assert done.merged == 1
    assert merging.survivor(loose, c) in {a, b}
    assert {merging.survivor(loose, a), merging.survivor(loose, b)} == {a, b}
    history = _events(pipeline, "incident", c)
    assert any(
        kind == "merged" and actor == "gis-officer" and "radius raised" in why
        for kind, actor, why in history
    )


def test_recluster_keeps_what_staff_merged(pipeline: Pipeline, paris: City) -> None:
    """400 m apart, the thresholds would never join them; a person did, and re-clustering
    with the same thresholds keeps the person's decision (and the merge's link)."""
    a, b, reports = _two_incidents(pipeline, paris)
    merging.merge(pipeline, a, b, "dispatcher-1", "one leak seen from two streets")
    done = merging.recluster(pipeline)
    assert (done.merged, done.opened, done.moved) == (0, 0, 0)
    layer = pipeline.reads.reports(Selection(ids=tuple(reports)))
    assert set(layer["incident_id"]) == {a}
    moved = layer[layer["report_id"] == reports[2]]
    assert moved["dedupe_reason"].iloc[0].startswith("merged from incident")
