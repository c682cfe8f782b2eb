"""The per-report routing against the batch routing it must equal: ``route_one`` against
``route`` (team, rule, reason, deadlines) on every real Paris and Chicago report and on
synthetic rule sets, ``due_date`` against ``due_dates`` over start instants drawn by
hypothesis (weekends, holidays, daylight saving, before and after working hours), and
``record_routing_one`` against ``record_routing`` on both store backends."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from voirie.city import Calendar, City, Escalation, Route, Sla, Team, load_city
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE, OPEN311, ColumnMapping
from voirie.ingest.sources import RawTable, read_csv, read_open311_json
from voirie.ingest.validate import validate
from voirie.notify.outbox import record_routing, record_routing_one
from voirie.routing.sla import calendar_at, calendar_for, due_date, due_dates
from voirie.routing.table import Decision, RoutingTable, route
from voirie.services.pipeline import Pipeline
from voirie.store import Store

ROOT = Path(__file__).parents[2]
PARIS_REPORTS = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
CHICAGO_REPORTS = ROOT / "tests/data/chicago_100.json"
UNKNOWN = "not-in-the-catalogue"


def enriched(city: City, gis: CityGIS, table: RawTable, mapping: ColumnMapping) -> pd.DataFrame:
    """Validated reports with their enrichment columns, as the bulk path routes them."""
    reports = validate(table, mapping, city).reports
    frame = pd.concat(
        [
            reports,
            gis.enrich(
                reports["lon"].to_numpy(), reports["lat"].to_numpy(), reports["address"].to_numpy()
            ),
        ],
        axis=1,
    )
    frame.columns = [str(c) for c in frame.columns]
    return frame


def python_value(value: object) -> object:
    """A batch cell as the per-report path holds it: None for NaN/NA/NaT, datetimes."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def records(frame: pd.DataFrame) -> list[dict[str, object]]:
    """Each row of a batch as a "fields" mapping of Python values."""
    columns = {
        str(c): [python_value(v) for v in frame[c].astype(object).tolist()] for c in frame.columns
    }
    return [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]


def bulk_decisions(routed: pd.DataFrame) -> list[Decision]:
    """``route``'s rows as decisions."""
    return [Decision(**row) for row in records(routed[list(Decision.__dataclass_fields__)])]


def assert_routes_as_batch(city: City, batch: pd.DataFrame) -> list[Decision]:
    """Route every report one by one and as a batch; both must decide the same."""
    table = RoutingTable(city)
    expected = bulk_decisions(route(city, batch, table))
    got = [table.route_one(fields) for fields in records(batch)]
    wrong = [(i, g, e) for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e]
    assert not wrong, f"{len(wrong)} reports routed otherwise, first: {wrong[:2]}"
    return got


def city_with(city: City, rules: list[dict[str, Any]], **routing: Any) -> City:
    """A city with other routing rules and settings (validated like city.yaml)."""
    config = city.config.routing.model_copy(
        update={"rules": [Route.model_validate(r) for r in rules], **routing}
    )
    return City(city.folder, city.config.model_copy(update={"routing": config}))


def with_calendar(city: City, calendar: Calendar) -> City:
    return city_with(city, [], calendar=calendar)


@pytest.fixture(scope="module")
def paris_batch(paris: City, paris_gis: CityGIS) -> pd.DataFrame:
    """The 23,508 bundled DansMaRue reports, validated and enriched."""
    return enriched(paris, paris_gis, read_csv(PARIS_REPORTS), DANSMARUE)


@pytest.fixture(scope="module")
def chicago() -> City:
    return load_city(ROOT / "cities/chicago")


@pytest.fixture(scope="module")
def chicago_batch(chicago: City) -> pd.DataFrame:
    return enriched(chicago, CityGIS(chicago), read_open311_json(CHICAGO_REPORTS), OPEN311)


def at_instants(batch: pd.DataFrame, instants: list[datetime] | pd.Series) -> pd.DataFrame:
    """The first reports of a batch, one per instant, requested at those instants."""
    shifted = batch.iloc[: len(instants)].reset_index(drop=True)
    shifted["requested_at"] = pd.to_datetime(pd.Series(list(instants)), utc=True).astype(
        shifted["requested_at"].dtype
    )
    return shifted


def spread(batch: pd.DataFrame, seed: int, unknown: bool = True) -> pd.DataFrame:
    """The batch with random request instants over 2023-2025 (any hour, any day) and, if
    ``unknown``, one report in nine of a service the city does not know."""
    rng = np.random.default_rng(seed)
    first = pd.Timestamp("2023-01-01", tz="UTC")
    seconds = rng.integers(0, 3 * 365 * 86_400, len(batch))
    spread = batch.copy()
    spread["requested_at"] = (first + pd.to_timedelta(seconds, unit="s")).astype(
        batch["requested_at"].dtype
    )
    if unknown:
        spread.loc[spread.index % 9 == 4, "service_code"] = UNKNOWN
    return spread


def test_every_paris_report_routes_as_in_the_batch(paris: City, paris_batch: pd.DataFrame) -> None:
    decisions = assert_routes_as_batch(paris, paris_batch)
    assert len(decisions) == 23_508
    # The shipped zone rules decide some reports: their sentences name the zone.
    assert sum(" inside " in d.routing_reason for d in decisions) > 50


def test_every_chicago_report_routes_as_in_the_batch(
    chicago: City, chicago_batch: pd.DataFrame
) -> None:
    decisions = assert_routes_as_batch(chicago, chicago_batch)
    assert len(decisions) == len(chicago_batch) > 90


def synthetic_rules(city: City, batch: pd.DataFrame) -> list[dict[str, Any]]:
    """A rule of every condition kind over the batch's most frequent services: local hours
    (one window wrapping past midnight), weekdays, flags, street attribute, zone wildcard,
    zone codes, a label, a group condition, plain service and group rules; SLAs in calendar
    hours, working hours and working days, one escalating to its own team."""
    top = batch["service_code"].value_counts().index[:6].tolist()
    group = city.services[top[1]].group
    return [
        {
            "id": "night",
            "team": "DEVE",
            "service": top[0],
            "hours": "20:30-06:15",
            "sla": {"hours": 4.5},
            "escalate_to": "graffitis",
            "version": 3,
        },
        {
            "id": "weekend",
            "team": "Ramen",
            "group": group,
            "weekdays": ["sat", "sun"],
            "sla": {"working_hours": 6.25},
            "priority": 2,
        },
        {"id": "off", "team": "DEVE", "service": top[2], "flags": {"off_network": True}},
        {
            "id": "major",
            "team": "graffitis",
            "service": top[0],
            "segment": {"roadClass": ["major"]},
            "sla": {"working_days": 2},
        },
        {
            "id": "green",
            "team": "DEVE",
            "group": group,
            "zones": {"espace_vert": "*"},
            "label": "dans un espace vert",
            "priority": 1,
        },
        {
            "id": "centre",
            "team": "Ramen",
            "service": top[3],
            "zones": {"arrondissement": [1, 2, "3", "4"]},
            "hours": "08:00-18:00",
            "weekdays": ["mon", "tue", "wed", "thu", "fri"],
            "flags": {"near_boundary": False},
        },
        {
            "id": "quartier",
            "team": "DEVE",
            "service": top[4],
            "zones": {"quartier": ["1", "45", "80"]},
            "segment": {"roadClass": ["minor", "major"]},
        },
        {"id": "plain-service", "team": "graffitis", "service": top[4], "priority": 4},
        {"id": "plain-group", "team": "DPE-STPP-DT", "group": group, "sla": {"working_hours": 30}},
    ]


SLAS = {1: Sla(hours=2), 2: Sla(working_days=1.5), 3: Sla(working_hours=7.25)}


@pytest.fixture(scope="module")
def synthetic(paris: City, paris_batch: pd.DataFrame) -> City:
    return city_with(
        paris,
        synthetic_rules(paris, paris_batch),
        sla=SLAS,
        escalation=Escalation(factor=1.5, team="triage"),
    )


def test_synthetic_rules_over_every_paris_report(
    synthetic: City, paris_batch: pd.DataFrame
) -> None:
    batch = spread(paris_batch, seed=1)
    decisions = assert_routes_as_batch(synthetic, batch)
    rules = {d.rule_id for d in decisions}
    assert rules >= {r.id for r in synthetic.config.routing.rules} - {"plain-service"}
    assert sum(d.team == "triage" and d.rule_id is None for d in decisions) >= len(batch) // 9
    # Every report has deadlines but those of priority 4 (no SLA), escalation later.
    assert all((d.due_at is None) == (d.escalate_at is None) for d in decisions)
    assert {d.rule_id for d in decisions if d.due_at is None} == {"plain-service"}
    assert all(d.escalate_at > d.due_at for d in decisions if d.escalate_at and d.due_at)


def test_default_team_and_unknown_services_without_rules(
    paris: City, paris_batch: pd.DataFrame
) -> None:
    """No rule at all: everything goes to the city default, unknown services to triage."""
    city = city_with(paris, [], default_team="DEVE", sla={3: Sla(working_days=3)})
    decisions = assert_routes_as_batch(city, spread(paris_batch.iloc[:3000], seed=2))
    assert {d.team for d in decisions} == {"DEVE", "triage"}
    assert {d.rule_version for d in decisions} == {None}


def test_chicago_with_working_time_slas(chicago: City, chicago_batch: pd.DataFrame) -> None:
    """US holidays and Chicago's daylight saving, with conditions on hours and zones."""
    rules = [
        {
            "id": "evening",
            "team": chicago.config.routing.rules[0].team,
            "hours": "17:00-23:00",
            "service": chicago_batch["service_code"].iloc[0],
            "sla": {"working_hours": 3},
        },
        {
            "id": "area",
            "team": chicago.config.routing.rules[1].team,
            "zones": {"community_area": "*"},
            "weekdays": ["sun"],
            "sla": {"working_days": 1},
        },
        *[r.model_dump(exclude_defaults=True) for r in chicago.config.routing.rules],
    ]
    city = city_with(
        chicago,
        rules,
        sla={3: Sla(working_hours=5)},
        calendar=Calendar(country="US", subdivision="IL"),
    )
    batch = pd.concat([spread(chicago_batch, seed=s) for s in range(20)], ignore_index=True)
    decisions = assert_routes_as_batch(city, batch)
    assert {"evening", "area"} <= {d.rule_id for d in decisions}


# Start instants the deadlines are hard around (UTC): daylight-saving changes in Paris and
# Chicago, weekends, French and US public holidays, before opening, after closing.
EDGES = [
    "2024-03-31T00:59:59",
    "2024-03-31T01:00:00",
    "2024-03-31T01:30:00",  # Paris +1h
    "2024-10-27T00:30:00",
    "2024-10-27T01:00:00",
    "2024-10-27T01:59:00",  # Paris -1h
    "2024-03-30T23:45:00",
    "2024-10-26T23:30:00",
    "2024-10-27T00:15:00",  # night shift
    "2024-03-10T07:30:00",
    "2024-03-10T08:00:00",
    "2024-11-03T06:30:00",  # Chicago
    "2024-11-03T07:30:00",
    "2024-07-12T15:59:59",
    "2024-08-14T16:30:00",
    "2024-05-01T07:00:00",  # FR holidays
    "2024-07-04T13:00:00",
    "2024-12-24T23:00:00",
    "2024-12-31T22:59:59",  # US, year end
    "2024-03-06T05:00:00",
    "2024-03-08T17:00:01",
    "2024-03-09T12:00:00",  # hours, weekend
]
EDGE_INSTANTS = [datetime.fromisoformat(e).replace(tzinfo=UTC) for e in EDGES]


@pytest.fixture(scope="module")
def calendar_cities(paris: City, chicago: City) -> dict[str, City]:
    """Calendars to count on: Paris's, Chicago's, and night shifts whose hours cross the
    clock changes (working hours the clocks skip or repeat), Sundays working."""
    night = Calendar(weekend=["wed"], workday_start=time(1, 30), workday_end=time(3, 30))
    return {
        "paris": paris,
        "chicago": with_calendar(chicago, Calendar(country="US", subdivision="IL")),
        "paris-night": with_calendar(paris, night),
        "chicago-night": with_calendar(chicago, night.model_copy(update={"country": "US"})),
        "paris-short-week": with_calendar(
            paris, Calendar(weekend=["fri", "sat", "sun"], workday_end=time(12, 45))
        ),
    }


starts = st.one_of(
    st.datetimes(
        min_value=datetime(2022, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
    ),
    st.builds(
        lambda edge, shift: edge + timedelta(minutes=shift),
        st.sampled_from(EDGE_INSTANTS),
        st.integers(-180, 180),
    ),
)
spans = st.one_of(
    st.none(),
    st.floats(min_value=0.01, max_value=600, allow_nan=False),
    st.sampled_from([0.5, 1.0, 2.0, 4.0, 7.25, 10.0, 24.0, 48.0, 100.0]),
)
cases = st.lists(st.tuples(starts, spans, spans), min_size=1, max_size=12)


@pytest.mark.parametrize(
    "name", ["paris", "chicago", "paris-night", "chicago-night", "paris-short-week"]
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases=cases, factor=st.sampled_from([1.0, 1.5, 2.0, 3.3]))
@example(cases=[(e, None, 1.0) for e in EDGE_INSTANTS], factor=1.0)
@example(cases=[(e, None, 10.5) for e in EDGE_INSTANTS], factor=2.0)
@example(cases=[(e, 36.0, None) for e in EDGE_INSTANTS], factor=1.5)
@example(cases=[(e, None, 0.25) for e in EDGE_INSTANTS], factor=2.0)
def test_due_date_is_due_dates_elementwise(
    calendar_cities: dict[str, City],
    name: str,
    cases: list[tuple[datetime, float | None, float | None]],
    factor: float,
) -> None:
    city = calendar_cities[name]
    start = pd.Series([c[0] for c in cases])
    hours = np.array([np.nan if c[1] is None else c[1] for c in cases])
    working = np.array([np.nan if c[2] is None else c[2] for c in cases])
    expected = due_dates(calendar_for(city, start), start, hours, working, factor)
    got = [due_date(calendar_at(city, s), s, h, w, factor) for s, h, w in cases]
    assert got == [python_value(v) for v in expected.astype(object)]


@pytest.mark.parametrize(
    ("name", "start", "working_hours", "due"),
    [
        # Sun 31 March 01:30 + 45 min: 02:15 does not exist (clocks go forward at 02:00);
        # both paths move it to 03:00 summer time.
        ("paris-night", "2024-03-31T01:30+01:00", 0.75, "2024-03-31T01:00:00+00:00"),
        # Sun 27 October 01:30 + 1 h: 02:30 happens twice; no deadline rather than a guess.
        ("paris-night", "2024-10-27T01:30+02:00", 1.0, None),
        # Wed is the night shift's day off: Tue 03:00 + 1 h is 30 min on Tuesday, then
        # Thu 01:30 + 30 min.
        ("paris-night", "2024-03-05T03:00+01:00", 1.0, "2024-03-07T02:00:00+01:00"),
        # Chicago: 02:15 on 10 March does not exist, 01:45 on 3 November happens twice.
        ("chicago-night", "2024-03-10T01:30-06:00", 0.75, "2024-03-10T03:00:00-05:00"),
        ("chicago-night", "2024-11-03T01:30-05:00", 0.25, None),
    ],
)
def test_working_time_over_clock_changes(
    calendar_cities: dict[str, City],
    name: str,
    start: str,
    working_hours: float,
    due: str | None,
) -> None:
    city = calendar_cities[name]
    instant = datetime.fromisoformat(start).astimezone(UTC)
    expected = None if due is None else datetime.fromisoformat(due)
    assert due_date(calendar_at(city, instant), instant, None, working_hours) == expected
    bulk = due_dates(
        calendar_for(city, pd.Series([instant])),
        pd.Series([instant]),
        np.array([np.nan]),
        np.array([working_hours]),
    )
    assert python_value(bulk.iloc[0]) == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instants=st.lists(starts, min_size=1, max_size=40))
def test_synthetic_rules_at_any_instant(
    synthetic: City, paris_batch: pd.DataFrame, instants: list[datetime]
) -> None:
    # Reports of services the synthetic rules name, requested at the drawn instants.
    named = {r.service for r in synthetic.config.routing.rules} - {None}
    group = {r.group for r in synthetic.config.routing.rules} - {None}
    wanted = paris_batch["service_code"].isin(named) | paris_batch["group"].isin(group)
    sample = paris_batch[wanted].iloc[::97].reset_index(drop=True)
    assert_routes_as_batch(synthetic, at_instants(sample, instants))


def test_calendar_built_once_per_city_and_widened_on_demand(paris: City) -> None:
    city = with_calendar(paris, Calendar(workday_start=time(7, 0)))
    july = datetime(2024, 7, 12, 8, tzinfo=UTC)
    calendar = calendar_at(city, july)
    assert calendar_at(city, july + timedelta(days=100)) is calendar
    assert calendar_for(city, pd.Series([july, july + timedelta(days=30)])) is calendar
    assert calendar.busdays is calendar.busdays
    later = calendar_at(city, datetime(2031, 1, 2, tzinfo=UTC))
    assert later is not calendar
    assert later.covers(2023, 2033)  # the years already covered stay covered
    assert calendar_at(city, july) is later
    assert calendar_at(paris, july) is not later  # another city, its own calendar


# Record routing: the rows written for a new incident, per report and per batch.

WEBHOOK_TEAMS = [
    Team(
        code="DEVE",
        name="Espaces verts / DEVE",
        webhook="http://127.0.0.1:9/deve",
        email="deve@example.org",
    ),
    Team(code="graffitis", name="Graffitis", email="graffitis@example.org"),
    Team(code="Ramen", name="Ramen", webhook="http://127.0.0.1:9/ramen"),
    Team(code="triage", name="Triage", webhook="http://127.0.0.1:9/triage"),
]


def notifying(city: City) -> City:
    """The city with channels for some of its teams (others have none: no notice)."""
    teams = [t for t in city.config.teams if t.code not in {w.code for w in WEBHOOK_TEAMS}]
    return City(city.folder, city.config.model_copy(update={"teams": [*teams, *WEBHOOK_TEAMS]}))


def test_record_routing_one_writes_record_routings_rows(
    synthetic: City, paris_gis: CityGIS, two_stores: tuple[Store, Store]
) -> None:
    importing = city_with(synthetic, [], sla={})  # no deadline, no notice at import
    routed_city = notifying(synthetic)
    table = read_csv(PARIS_REPORTS)
    raw = RawTable(table.rows.iloc[::800].reset_index(drop=True), table.columns)
    raw.rows.loc[raw.rows.index % 5 == 1, "soustype"] = "Catégorie inconnue"  # → triage
    now = datetime(2024, 3, 31, 0, 30, 15, 123456, tzinfo=UTC)
    written: list[dict[str, pd.DataFrame]] = []
    for store, one in zip(two_stores, (False, True), strict=True):
        Pipeline(importing, store, paris_gis).imports.import_table(raw, DANSMARUE)
        jurisdiction = synthetic.jurisdiction_id
        incidents = store.lookup("incidents", jurisdiction, "id", list(range(1, 1000)))
        reports = store.lookup(
            "reports", jurisdiction, "id", incidents["origin_report_id"].tolist()
        )
        batch = spread(enriched(importing, paris_gis, raw, DANSMARUE), seed=3, unknown=False)
        origins = batch.set_index("external_id").loc[reports["external_id"]].reset_index()
        table_ = RoutingTable(routed_city)
        # The paths differ on purpose for an incident already past its deadline: an
        # import does not announce it (tests/notify/test_import_notices.py).
        due = route(routed_city, origins, table_)["due_at"]
        for i in np.flatnonzero(pd.to_datetime(due, utc=True) > now):
            incident = incidents.iloc[[i]].reset_index(drop=True)
            with store.transaction(jurisdiction) as uow:
                if one:
                    decision = table_.route_one(records(origins.iloc[[i]])[0])
                    record_routing_one(uow, routed_city, records(incident)[0], decision, now)
                else:
                    routed = route(routed_city, origins.iloc[[i]].reset_index(drop=True), table_)
                    record_routing(uow, routed_city, incident, routed, now)
        ids = incidents["id"].tolist()
        written.append(
            {
                name: store.lookup(name, jurisdiction, key, ids)
                for name, key in (("escalations", "incident_id"), ("outbox", "entity_id"))
            }
        )
    bulk, one_by_one = written
    assert len(bulk["outbox"]) > 5
    assert len(bulk["escalations"]) > 5
    assert set(bulk["outbox"]["channel"]) == {"webhook", "email"}
    assert bulk["outbox"]["payload"].str.contains('"service_name":null').any()  # unknown
    for name, rows in bulk.items():
        pd.testing.assert_frame_equal(one_by_one[name], rows, obj=name)
