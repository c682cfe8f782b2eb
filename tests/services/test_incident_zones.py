"""The zones of an incident are where it stands now (issue 16, migration 0018), on every
backend: an incident opens with its first report's zones (bulk import and one report
submitted), a pin moved by staff across an arrondissement boundary takes its new zones
into every read of the incidents layer (zone filter, CQL2, zone columns) while its
reports keep their own, a split or a re-clustering that gives an incident another first
report and place gives it that place's zones, and the migration fills the table of a
database written before it. Real data: the 200 DansMaRue reports of ``tests/data`` and
Paris's arrondissements."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from boundaries import SERVICE, VALMY, across_the_boundary, unaligned_incident

from voirie.city import City
from voirie.model import Report
from voirie.services import merging
from voirie.services.auth import Principal, Role
from voirie.services.pipeline import Pipeline
from voirie.services.staff_edits import move
from voirie.store.base import Store
from voirie.store.selection import Selection
from voirie.store.statements.session import missing
from voirie.store.statements.unit import SqlUnitOfWork

LAYER = "arrondissement"
DISPATCHER = Principal("Dominique (dispatch)", Role.DISPATCHER)


def _zones(pipeline: Pipeline, query: str, key: str) -> dict[int, dict[str, tuple[str, str]]]:
    """``report_zones`` or ``incident_zones`` as {row id: {layer: (code, name)}}."""
    frame = pipeline.store.read(query, pipeline.city.jurisdiction_id)
    out: dict[int, dict[str, tuple[str, str]]] = {}
    for row in frame.itertuples():
        out.setdefault(int(getattr(row, key)), {})[str(row.layer)] = (str(row.code), str(row.name))
    return out


def _origin_zones(pipeline: Pipeline) -> dict[int, dict[str, tuple[str, str]]]:
    """Each incident's first report's zones, by incident id."""
    reports = _zones(pipeline, "report_zones", "report_id")
    incidents = pipeline.reads.incidents()
    return {
        int(i): reports.get(int(origin), {})
        for i, origin in zip(incidents["incident_id"], incidents["origin_report_id"], strict=True)
    }


def _place_zones(pipeline: Pipeline, lon: float, lat: float) -> dict[str, tuple[str, str]]:
    """The zones the city's layers give a WGS84 point, as intake enriches it."""
    found = pipeline.gis.enrich(np.array([lon]), np.array([lat])).iloc[0]
    return {
        layer: (str(found[f"zone_{layer}"]), str(found[f"zone_{layer}_name"]))
        for layer in pipeline.gis.zones
        if not pd.isna(found[f"zone_{layer}"])
    }


def _run_sql(store: Store, text: str) -> None:
    with store.transaction("paris.fr") as uow:
        assert isinstance(uow, SqlUnitOfWork)
        uow.session.run(text)


def test_new_incidents_take_their_first_reports_zones(pipeline: Pipeline, paris: City) -> None:
    stored = _zones(pipeline, "incident_zones", "incident_id")
    expected = _origin_zones(pipeline)
    assert stored == {i: z for i, z in expected.items() if z}
    assert all(LAYER in zones for zones in stored.values())  # every sample report is in Paris
    # One report submitted alone (the Open311 path) opens an incident with its zones.
    submitted = pipeline.intake.submit(
        Report(
            external_id="valmy-1",
            source="app",
            service_code=paris.services_by_name[SERVICE.casefold()].code,
            lon=VALMY[0][0],
            lat=VALMY[0][1],
            requested_at=datetime(2024, 3, 4, 9, 30, tzinfo=UTC),
        )
    )
    assert not submitted.attached
    mine = _zones(pipeline, "incident_zones", "incident_id")[submitted.incident_id]
    assert mine == _zones(pipeline, "report_zones", "report_id")[submitted.report_id]
    assert mine == _place_zones(pipeline, *VALMY[0])
    assert mine[LAYER][0] == "10"


def test_the_migration_fills_the_zones_of_incidents_stored_before_it(pipeline: Pipeline) -> None:
    store = pipeline.store
    before = _zones(pipeline, "incident_zones", "incident_id")
    # The database as voirie left it before migration 0018: no table, the migration not run.
    _run_sql(store, "DROP TABLE incident_zones")
    if store.backend == "sqlite":
        _run_sql(store, "DELETE FROM gpkg_contents WHERE table_name = 'incident_zones'")
    _run_sql(store, "DELETE FROM voirie_migrations WHERE version = 18")
    assert store.upgrade() == [18]
    assert _zones(pipeline, "incident_zones", "incident_id") == before
    assert before == {i: z for i, z in _origin_zones(pipeline).items() if z}


def test_a_moved_incident_is_in_its_new_zone_in_every_incident_read(pipeline: Pipeline) -> None:
    reads = pipeline.reads
    incident_id = unaligned_incident(pipeline)
    before = reads.incidents()
    incident = before.set_index("incident_id").loc[incident_id]
    old = str(incident[f"zone_{LAYER}"])
    place = (float(incident["lon"]), float(incident["lat"]))
    lon, lat = across_the_boundary(pipeline.gis, LAYER, *place)
    new = _place_zones(pipeline, lon, lat)
    assert new[LAYER][0] != old
    in_old = reads.count("incidents", Selection(zone=(LAYER, old)))
    in_new = reads.count("incidents", Selection(zone=(LAYER, new[LAYER][0])))
    reports_before = reads.reports(Selection(incident_ids=(incident_id,)))

    moved = move(pipeline, DISPATCHER, incident_id, lon, lat, "de l'autre côté de la rue")
    assert moved.zones[LAYER] == new[LAYER][0]

    assert _zones(pipeline, "incident_zones", "incident_id")[incident_id] == new
    # The zone filter, CQL2's zone property and the zone columns read the new zone.
    for code, expected in ((new[LAYER][0], True), (old, False)):
        kept = reads.incidents(Selection(zone=(LAYER, code)))
        assert (incident_id in set(kept["incident_id"])) is expected, code
        cql2 = json.dumps({"op": "=", "args": [{"property": f"zone_{LAYER}"}, code]})
        kept = reads.incidents(Selection(cql2_filter=cql2))
        assert (incident_id in set(kept["incident_id"])) is expected, code
    assert reads.count("incidents", Selection(zone=(LAYER, old))) == in_old - 1
    assert reads.count("incidents", Selection(zone=(LAYER, new[LAYER][0]))) == in_new + 1
    after = reads.incidents()
    row = after.set_index("incident_id").loc[incident_id]
    for layer in pipeline.gis.zones:
        assert _text(row[f"zone_{layer}"]) == new.get(layer, (None,))[0], layer
    (record,) = reads.records("incidents", Selection(ids=(incident_id,)), public=False)
    assert record[f"zone_{LAYER}"] == new[LAYER][0]
    # Its reports keep their own zones: where they were made.
    reports_after = reads.reports(Selection(incident_ids=(incident_id,)))
    pd.testing.assert_series_equal(
        reports_after[f"zone_{LAYER}"], reports_before[f"zone_{LAYER}"], check_names=False
    )
    assert (reports_after[f"zone_{LAYER}"] == old).all()
    # Every other incident reads exactly as before.
    others = after[after["incident_id"] != incident_id].reset_index(drop=True)
    untouched = before[before["incident_id"] != incident_id].reset_index(drop=True)
    pd.testing.assert_frame_equal(others, untouched)


def _text(value: object) -> str | None:
    """A zone cell as text, None when missing."""
    return None if missing(value) else str(value)


def _assert_zones_follow_the_place(pipeline: Pipeline) -> None:
    """Every incident not merged away has the zones of the point it stands on."""
    stored = _zones(pipeline, "incident_zones", "incident_id")
    incidents = pipeline.reads.incidents(Selection(statuses=("new",)))
    assert len(incidents)
    for row in incidents.itertuples():
        place = _place_zones(pipeline, float(row.lon), float(row.lat))
        assert stored.get(int(row.incident_id), {}) == place, row.incident_id


def test_split_and_reclustering_give_an_incident_the_zones_of_its_new_place(
    pipeline: Pipeline,
) -> None:
    incidents = pipeline.reads.incidents().sort_values("incident_id")
    survivor = incidents.iloc[0]
    old_id, origin = int(survivor["incident_id"]), int(survivor["origin_report_id"])
    elsewhere = incidents[incidents[f"zone_{LAYER}"] != survivor[f"zone_{LAYER}"]]
    merged_id = int(elsewhere["incident_id"].iloc[0])
    # A merge leaves the surviving incident where it was, with its own zones.
    before = _zones(pipeline, "incident_zones", "incident_id")
    merging.merge(pipeline, old_id, merged_id, "Dominique", "même dépôt")
    assert _zones(pipeline, "incident_zones", "incident_id")[old_id] == before[old_id]
    # Taking out the report that opened it gives the incident another first report and
    # place (the merged incident's report, in another arrondissement): its zones are that
    # report's now; the new incident has the split report's.
    new_id = merging.split(pipeline, origin, "Dominique", "deux problèmes différents")
    reports = _zones(pipeline, "report_zones", "report_id")
    stored = _zones(pipeline, "incident_zones", "incident_id")
    first = int(pipeline.reads.incidents(Selection(ids=(old_id,)))["origin_report_id"].iloc[0])
    assert first != origin
    assert stored[old_id] == reports[first] != before[old_id]
    assert stored[new_id] == reports[origin] == before[old_id]
    _assert_zones_follow_the_place(pipeline)
    # Re-clustering puts every open incident on its first report's point again: its zones
    # follow, a moved one included.
    moved = int(incidents.sort_values("incident_id")["incident_id"].iloc[-1])
    row = incidents.set_index("incident_id").loc[moved]
    lon, lat = across_the_boundary(pipeline.gis, LAYER, float(row["lon"]), float(row["lat"]))
    move(pipeline, DISPATCHER, moved, lon, lat, "plus loin")
    merging.recluster(pipeline)
    _assert_zones_follow_the_place(pipeline)
