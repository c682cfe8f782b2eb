"""Replaying past reports through the routing table, and drafting rules from them."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import yaml

from voirie.city import TRIAGE_TEAM, City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import RawTable, read_csv
from voirie.routing.table import unreachable_rules
from voirie.services.rules_replay import draft_yaml, learn, replay
from voirie.services.walkforward import split_test
from voirie.store import Store

DATA = Path(__file__).parents[1] / "data" / "dansmarue_200.csv"


def test_shipped_table_routes_real_reports_well(paris: City, paris_gis: CityGIS) -> None:
    result = replay(paris, paris_gis, read_csv(DATA), DANSMARUE, "intervenant")
    assert result.n == 200
    assert result.accuracy >= 0.9
    assert result.correct + result.wrong_team + result.triaged == result.n
    assert result.confusion["count"].sum() == result.n
    assert result.rules["count"].sum() == result.n
    assert result.top_pairs(3)["count"].is_monotonic_decreasing


def test_unknown_service_goes_to_triage(paris: City, paris_gis: CityGIS) -> None:
    table = read_csv(DATA)
    rows = table.rows.copy()
    # A sub-category not in city.yaml, of a known group: accepted, routed to triage.
    rows.loc[:9, "soustype"] = "Catégorie apparue après la configuration"
    result = replay(paris, paris_gis, RawTable(rows, table.columns), DANSMARUE, "intervenant")
    assert result.n == 200
    assert result.triaged == 10
    assert result.triage_rate == 10 / 200
    confusion = result.confusion
    assert confusion.loc[confusion["predicted"] == TRIAGE_TEAM, "count"].sum() == 10


def test_date_range_filters_on_local_declaration_day(paris: City, paris_gis: CityGIS) -> None:
    table = read_csv(DATA)
    days = table.rows["datedecl"]
    cut = sorted(days)[100]
    later = replay(paris, paris_gis, table, DANSMARUE, "intervenant", since=date.fromisoformat(cut))
    earlier = replay(
        paris, paris_gis, table, DANSMARUE, "intervenant", until=date.fromisoformat(cut)
    )
    assert later.n == (days >= cut).sum()
    assert earlier.n == (days <= cut).sum()


def test_learned_rules_cover_frequent_services(paris: City) -> None:
    learned = learn(paris, read_csv(DATA), DANSMARUE, "intervenant", min_support=5)
    assert learned.rules
    assert all(r.support >= 5 and 0.5 <= r.confidence <= 1 for r in learned.rules)
    entries = yaml.safe_load(draft_yaml(learned))
    assert [e["id"] for e in entries] == [r.rule_id for r in learned.rules]
    assert set(entries[0]) == {"id", "team", "service"}


def test_second_rule_for_a_service_is_unreachable(paris: City) -> None:
    assert unreachable_rules(paris) == []
    first = next(r for r in paris.config.routing.rules if r.service and not r.zones)
    extra = first.model_copy(update={"id": "svc-again"})
    group = paris.services[str(first.service)].group
    services = [s.code for s in paris.config.services if s.group == group]
    group_rule = first.model_copy(update={"id": "grp-all", "service": None, "group": group})
    routing = paris.config.routing.model_copy(
        update={"rules": [*paris.config.routing.rules, extra, group_rule]}
    )
    city = City(paris.folder, paris.config.model_copy(update={"routing": routing}))
    warnings = unreachable_rules(city)
    assert any("svc-again" in w and first.id in w for w in warnings)
    covered = all(any(r.service == s for r in routing.rules) for s in services)
    assert any("grp-all" in w for w in warnings) == covered


PARIS_SLICE = (
    Path(__file__).parents[2]
    / "cities"
    / "paris"
    / "reports"
    / ("dansmarue_2023-07_2024-03.csv.gz")
)


def test_zone_rules_learned_where_location_changes_the_team(
    paris: City, paris_gis: CityGIS
) -> None:
    table = read_csv(PARIS_SLICE)
    learned = learn(
        paris,
        table,
        DANSMARUE,
        "intervenant",
        gis=paris_gis,
        until=date(2024, 1, 31),
        min_support=1,
    )
    woods = {r.rule_id: r for r in learned.zone_rules}["zone-all-espace_vert-10132"]
    assert (woods.team, woods.zone_name) == ("DEVE", "BOIS DE VINCENNES")
    assert woods.support >= 20
    assert woods.confidence >= 0.6
    assert woods.gain > 0
    # Zone rules come first: the engine evaluates conditional rules in file order.
    assert learned.rules[: len(learned.zone_rules)] == learned.zone_rules
    entries = yaml.safe_load(draft_yaml(learned))
    assert {"id": woods.rule_id, "team": "DEVE", "zones": {"espace_vert": ["10132"]}} in entries
    results = split_test(paris, paris_gis, table, DANSMARUE, "intervenant", date(2024, 1, 31))
    baseline, ours = results["baseline"], results["learned"]
    assert baseline.n == ours.n > 6000
    assert ours.accuracy > baseline.accuracy
    assert ours.wrong_team < baseline.wrong_team
    # Categories never seen while learning go to triage, not to a guessed team.
    assert ours.triaged > 0


def test_learn_counts_dispatcher_reassignments(paris: City, store: Store) -> None:
    from datetime import UTC, datetime

    from voirie.model import Report
    from voirie.services import workflow
    from voirie.services.auth import Principal, Role
    from voirie.services.pipeline import Pipeline
    from voirie.services.rules_replay import corrections_from

    table = read_csv(DATA)
    first = learn(paris, table, DANSMARUE, "intervenant", min_support=1)
    rule = first.rules[-1]  # the rarest service in the sample
    other = "DVD" if rule.team != "DVD" else "DEVE"
    pipeline = Pipeline(paris, store)
    dispatcher = Principal("dana", Role.DISPATCHER)
    for i in range(rule.support + 1):  # distinct places: distinct incidents
        done = pipeline.intake.submit(
            Report(
                external_id=f"c{i}",
                source="test",
                service_code=str(rule.service),
                lon=2.30 + i * 0.01,
                lat=48.86,
                requested_at=datetime.now(UTC),
            )
        )
        workflow.reassign(store, paris, done.incident_id, dispatcher, other, "not ours")
    fixes = corrections_from(store, paris)
    assert len(fixes) == rule.support + 1
    assert set(fixes["team"]) == {other}
    again = learn(paris, table, DANSMARUE, "intervenant", min_support=1, corrections=fixes)
    learned = {r.service: r for r in again.rules}[rule.service]
    assert learned.team == other
    assert learned.support == 2 * rule.support + 1
