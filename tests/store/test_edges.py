"""The storage contract at its edges, on both backends: where two hand-written backends
drifted apart once (a moved incident, a merge with anonymous supporters), and the other
places where they could (NULLs, conflicts, time zones, a table without ids).

Each test runs once per backend (``[sqlite]``, ``[postgis]``) through the ``store``
fixture, on incidents opened by the real per-report path.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import psycopg
import pytest

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.model import Report
from voirie.services.pipeline import Pipeline
from voirie.store.base import Store
from voirie.store.selection import Selection

SERVICE = "Autres objets encombrants abandonnés"
T0 = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)
PARIS_WINTER = timezone(timedelta(hours=1))
HERE, THERE = (2.34858, 48.87053), (2.35300, 48.87053)  # Bonne-Nouvelle, 320 m apart
NEAR_M = 50.0


@pytest.fixture
def pipeline(store: Store, paris: City, paris_gis: CityGIS) -> Pipeline:
    return Pipeline(paris, store, paris_gis)


def _open(pipeline: Pipeline, name: str, where: tuple[float, float], hours: float = 0) -> int:
    """A new incident of one report at ``where``; its id."""
    code = pipeline.city.services_by_name[SERVICE.casefold()].code
    done = pipeline.intake.submit(
        Report(
            external_id=name,
            source="app",
            service_code=code,
            lon=where[0],
            lat=where[1],
            requested_at=T0 + timedelta(hours=hours),
        )
    )
    return done.incident_id


def _in_bbox(pipeline: Pipeline, where: tuple[float, float]) -> list[int]:
    """Incidents of the layer in a small bbox around a point (through the spatial index)."""
    d = 0.00003
    box = (where[0] - d, where[1] - d, where[0] + d, where[1] + d)
    return [int(i) for i in pipeline.reads.incidents(Selection(bbox=box))["incident_id"]]


def _near(pipeline: Pipeline, where: tuple[float, float]) -> list[int]:
    """Dedupe candidates around a point, as the per-report path reads them."""
    code = pipeline.city.services_by_name[SERVICE.casefold()].code
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        near = uow.incidents.open_near(*where, NEAR_M, [code], T0 - timedelta(days=1))
        box = uow.incidents.open_in_bbox(
            (where[0] - 0.001, where[1] - 0.001, where[0] + 0.001, where[1] + 0.001),
            [code],
            T0 - timedelta(days=1),
        )
    assert box["incident_id"].tolist() == near.incident_id.tolist()
    return [int(i) for i in near.incident_id]


# --- a moved incident ------------------------------------------------------------------------


def test_a_moved_incident_is_found_at_its_new_place(pipeline: Pipeline) -> None:
    incident_id = _open(pipeline, "moved", HERE)
    assert _in_bbox(pipeline, HERE) == [incident_id]
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        uow.incidents.update(incident_id, {"lon": THERE[0], "lat": THERE[1]})
    assert _in_bbox(pipeline, THERE) == [incident_id]
    assert _in_bbox(pipeline, HERE) == []
    assert _near(pipeline, THERE) == [incident_id]
    assert _near(pipeline, HERE) == []


def test_moving_one_coordinate_moves_the_point(pipeline: Pipeline) -> None:
    incident_id = _open(pipeline, "moved", HERE)
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        uow.incidents.update(incident_id, {"lon": THERE[0]})
        row = uow.incidents.get(incident_id) or {}
    assert (row["lon"], row["lat"]) == THERE
    assert _in_bbox(pipeline, THERE) == [incident_id]
    assert _near(pipeline, THERE) == [incident_id]


# --- merging with anonymous supporters ---------------------------------------------------------


def test_absorb_keeps_each_supporter_and_follower_once(pipeline: Pipeline) -> None:
    a = _open(pipeline, "a", HERE)
    b = _open(pipeline, "b", THERE)
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        for incident_id in (a, b):
            uow.citizens.add_supporter(incident_id, "both@example.org", T0)
            uow.citizens.add_supporter(incident_id, None, T0, client_key="same-device")
            uow.citizens.add_supporter(incident_id, None, T0)  # no key: always counts
            uow.citizens.add_follower(incident_id, "both@example.org", T0)
        uow.citizens.add_supporter(a, None, T0, client_key="only-on-a")
        uow.citizens.add_supporter(a, "a@example.org", T0, client_key="a-device")
        uow.citizens.add_follower(a, "a@example.org", T0)
        # both@, same-device, only-on-a, a@ once; the two keyless supporters each.
        assert uow.incidents.absorb(a, b) == 6
        assert uow.citizens.subscribers(b) == ["a@example.org", "both@example.org"]
        assert uow.citizens.subscribers(a) == []
        # The moved rows still refuse a second "me too" on the target.
        assert uow.citizens.add_supporter(b, None, T0, client_key="same-device") == (False, 6)
        assert uow.citizens.add_supporter(b, "a@example.org", T0) == (False, 6)
    supporters = pipeline.reads.incidents(Selection(ids=(a, b))).set_index("incident_id")[
        "supporters"
    ]
    assert supporters.to_dict() == {a: 0, b: 6}


def test_a_merge_with_the_same_anonymous_device_on_both_sides(pipeline: Pipeline) -> None:
    a = _open(pipeline, "a", HERE)
    b = _open(pipeline, "b", THERE)
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        uow.citizens.add_supporter(a, None, T0, client_key="same-device")
        uow.citizens.add_supporter(b, None, T0, client_key="same-device")
        assert uow.incidents.absorb(a, b) == 1


# --- NULLs ----------------------------------------------------------------------------------


def test_optional_columns_are_set_to_null_and_read_back_as_missing(pipeline: Pipeline) -> None:
    incident_id = _open(pipeline, "nulls", HERE)
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        uow.incidents.update(
            incident_id,
            {"segment_id": None, "due_at": pd.NaT, "street_name": float("nan")},
        )
        row = uow.incidents.get(incident_id) or {}
    assert row["segment_id"] is None
    assert row["street_name"] is None
    assert pd.isna(row["due_at"])
    found = pipeline.reads.incidents(Selection(ids=(incident_id,)))
    assert found[["segment_id", "due_at", "street_name"]].isna().all(axis=None)


def test_a_row_read_back_with_nulls_is_written_back_as_nulls(pipeline: Pipeline) -> None:
    incident_id = _open(pipeline, "nulls", HERE)
    j = pipeline.city.jurisdiction_id
    with pipeline.store.transaction(j) as uow:
        uow.incidents.update(incident_id, {"due_at": None})  # as without an SLA
        row = dict(uow.incidents.get(incident_id) or {})
        assert pd.isna(row["due_at"])
        assert pd.isna(row["merged_into"])
        (copy_id,) = uow.tables.reserve_ids("incidents", 1)
        uow.tables.insert_rows("incidents", [{**row, "id": int(copy_id)}])
        copy = uow.incidents.get(int(copy_id)) or {}
    assert pd.isna(copy["due_at"])
    assert pd.isna(copy["merged_into"])
    assert _in_bbox(pipeline, HERE) == sorted([incident_id, int(copy_id)])


def test_reshape_keeps_stored_values_where_a_row_holds_null(pipeline: Pipeline) -> None:
    incident_id = _open(pipeline, "kept", HERE)
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        before = uow.incidents.get(incident_id) or {}
        uow.incidents.reshape(
            pd.DataFrame(
                {
                    "id": [incident_id],
                    "origin_report_id": [None],
                    "lon": [None],
                    "lat": [None],
                    "segment_id": [None],
                    "street_name": [None],
                    "report_count": [5],
                    "first_reported_at": [pd.NaT],
                    "last_reported_at": [pd.NaT],
                    "status": [None],
                    "merged_into": [None],
                    "updated_at": [pd.Timestamp(T0 + timedelta(days=1))],
                }
            )
        )
        after = uow.incidents.get(incident_id) or {}
    assert after["report_count"] == 5
    assert after["updated_at"] == T0 + timedelta(days=1)
    for name in ("origin_report_id", "lon", "lat", "segment_id", "street_name", "status"):
        assert after[name] == before[name], name
    assert after["last_reported_at"] == before["last_reported_at"]
    assert _in_bbox(pipeline, HERE) == [incident_id]


# --- conflicts ---------------------------------------------------------------------------------


def test_the_same_supporter_and_pair_twice_count_once(pipeline: Pipeline) -> None:
    a = _open(pipeline, "a", HERE)
    b = _open(pipeline, "b", THERE)
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        assert uow.citizens.add_supporter(a, "x@example.org", T0) == (True, 1)
        assert uow.citizens.add_supporter(a, "x@example.org", T0) == (False, 1)
        assert uow.citizens.add_supporter(a, None, T0, client_key="k") == (True, 2)
        assert uow.citizens.add_supporter(a, None, T0, client_key="k") == (False, 2)
        assert uow.links.mark_not_duplicates(a, b, "agent", "two piles", T0)
        assert not uow.links.mark_not_duplicates(b, a, "agent", "again", T0)
        assert uow.links.not_duplicates([a]).values.tolist() == [[min(a, b), max(a, b)]]


def test_a_re_inserted_id_is_refused_and_rolled_back(pipeline: Pipeline) -> None:
    incident_id = _open(pipeline, "once", HERE)
    j = pipeline.city.jurisdiction_id
    with pipeline.store.transaction(j) as uow:
        row = dict(uow.incidents.get(incident_id) or {}, due_at=T0, merged_into=None)
    with (
        pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)),
        pipeline.store.transaction(j) as uow,
    ):
        uow.tables.insert_rows("incidents", [row])
    assert pipeline.store.count("incidents", j) == 1
    assert _in_bbox(pipeline, HERE) == [incident_id]


# --- time zones ------------------------------------------------------------------------------


def test_aware_instants_of_any_zone_come_back_in_utc_and_naive_means_utc(
    pipeline: Pipeline,
) -> None:
    incident_id = _open(pipeline, "zones", HERE)
    due = datetime(2024, 3, 10, 18, 0, tzinfo=PARIS_WINTER)
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        uow.incidents.update(incident_id, {"due_at": due, "updated_at": datetime(2024, 3, 5, 8)})
        row = uow.incidents.get(incident_id) or {}
    assert row["due_at"] == datetime(2024, 3, 10, 17, 0, tzinfo=UTC)
    assert str(pd.Timestamp(row["due_at"]).tz) == "UTC"
    assert row["updated_at"] == datetime(2024, 3, 5, 8, tzinfo=UTC)
    found = pipeline.reads.incidents(Selection(ids=(incident_id,)))
    assert found["due_at"].iloc[0] == pd.Timestamp("2024-03-10T17:00Z")
    assert found["updated_at"].iloc[0] == pd.Timestamp("2024-03-05T08:00Z")


def test_instants_compare_as_instants_whatever_their_zone(pipeline: Pipeline) -> None:
    incident_id = _open(pipeline, "compare", HERE)  # last reported at T0 (09:30 UTC)
    code = pipeline.city.services_by_name[SERVICE.casefold()].code
    j = pipeline.city.jurisdiction_id
    just_after = T0.astimezone(PARIS_WINTER) + timedelta(minutes=1)  # 10:31 +01:00
    with pipeline.store.transaction(j) as uow:
        assert len(uow.incidents.open_near(*HERE, NEAR_M, [code], just_after)) == 0
        assert len(uow.incidents.open_near(*HERE, NEAR_M, [code], T0.replace(tzinfo=None))) == 1
        uow.incidents.add_report(incident_id, datetime(2024, 3, 4, 11, 0, tzinfo=PARIS_WINTER), T0)
        row = uow.incidents.get(incident_id) or {}
    assert row["last_reported_at"] == datetime(2024, 3, 4, 10, 0, tzinfo=UTC)
    assert row["report_count"] == 2


# --- a table without ids ---------------------------------------------------------------------


@pytest.mark.parametrize("table", ["no_such_table", "enrichments"])
def test_reserve_ids_of_a_table_without_ids_is_a_clear_error(store: Store, table: str) -> None:
    with pytest.raises(KeyError, match=table), store.transaction("paris.fr") as uow:
        uow.tables.reserve_ids(table, 2)
