"""Replaying past reports through the routing table, and drafting rules from them."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import yaml

from voirie.city import TRIAGE_TEAM, City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import RawTable, read_csv
from voirie.routing.evaluate import draft_yaml, learn, replay
from voirie.routing.table import unreachable_rules

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
    later = replay(paris, paris_gis, table, DANSMARUE, "intervenant",
                   since=date.fromisoformat(cut))
    earlier = replay(paris, paris_gis, table, DANSMARUE, "intervenant",
                     until=date.fromisoformat(cut))
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
    first = paris.config.routing.rules[0]
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
