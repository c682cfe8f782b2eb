"""Rules learned from dispatchers' corrections, and their replay in time order."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from datafiles import SAMPLE_200

from voirie.city import TRIAGE_TEAM, City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.model import Report
from voirie.routing.table import is_conditional
from voirie.services import learned_routing, workflow
from voirie.services.auth import Principal, Role
from voirie.services.live_learning import LiveRules, proposals
from voirie.services.pipeline import Pipeline
from voirie.services.rules_replay import decisions_from, history, with_rules
from voirie.services.walkforward import live_replay
from voirie.store import Store
from voirie.store.selection import Selection

DAY = date(2024, 5, 2)


def test_agreeing_corrections_beyond_the_support_make_a_rule() -> None:
    live = LiveRules(min_support=3)
    assert live.feed(DAY, "s", "SMEP", "DVD-3M") is None
    assert live.feed(DAY, "s", "SMEP", "SMEP") is None  # kept: one decision against
    assert live.feed(DAY, "s", "SMEP", "DVD-3M") is None
    assert live.team("s") is None
    rule = live.feed(DAY + timedelta(days=3), "s", "SMEP", "DVD-3M")
    assert rule is not None
    assert (rule.team, rule.corrections, rule.kept, rule.since, rule.version) == (
        "DVD-3M",
        3,
        1,
        DAY,
        1,
    )
    assert rule.why.startswith("learned from 3 reassignments by dispatchers since 2024-05-02")
    assert rule.entry() == {
        "id": "live-s",
        "version": 1,
        "team": "DVD-3M",
        "service": "s",
        "label": rule.why,
    }
    assert live.team("s") == "DVD-3M"
    # Reversible: corrections away from the learned team make a new version.
    for _ in range(2):
        assert live.feed(DAY, "s", "DVD-3M", "SMEP") is None
    again = live.feed(DAY, "s", "DVD-3M", "SMEP")
    assert again is not None
    assert (again.team, again.version) == ("SMEP", 2)


def test_corrections_outnumbered_by_kept_decisions_change_nothing() -> None:
    live = LiveRules(min_support=2)
    for _ in range(5):
        live.feed(DAY, "s", "SMEP", "SMEP")
    for _ in range(5):
        assert live.feed(DAY, "s", "SMEP", "DVD-3M") is None
    assert live.team("s") is None


def test_an_answer_to_triage_counts_towards_the_triage_support() -> None:
    live = LiveRules(min_support=3, triage_support=1)
    # A sub-category without a rule: the first team a dispatcher gives it routes the next.
    rule = live.feed(DAY, "new", TRIAGE_TEAM, "Haropa Port")
    assert rule is not None
    assert (rule.team, rule.corrections, rule.kept, rule.version) == ("Haropa Port", 1, 0, 1)
    assert live.team("new") == "Haropa Port"
    # A correction of a team the rules gave still needs ``min_support`` agreeing.
    assert live.feed(DAY, "known", "SMEP", "DVD-3M") is None
    assert live.team("known") is None
    # Changing the learned rule is a correction like any other.
    assert live.feed(DAY, "new", "Haropa Port", "DVD") is None
    assert live.team("new") == "Haropa Port"


def test_live_replay_feeds_corrections_back_the_next_day(paris: City, paris_gis: CityGIS) -> None:
    reports, _ = history(paris, paris_gis, read_csv(SAMPLE_200), DANSMARUE, "intervenant")
    code = reports["service_code"].value_counts().index[0]
    rows = reports[reports["service_code"] == code].head(5).copy()
    rows["truth"] = "DEVE"
    rows["day"] = [DAY] * 4 + [DAY + timedelta(days=1)]
    # A city that has never seen the sub-category: every report of it goes to triage,
    # and a dispatcher sends each to DEVE.
    city = with_rules(paris, [], {s for s in paris.services if s != code})
    static = live_replay(city, rows, min_support=99)
    assert (static.triaged, static.correct) == (5, 0)
    live = live_replay(city, rows, min_support=3)
    # Four corrections on the first day; the rule they make routes from the next day only.
    assert (live.triaged, live.correct) == (4, 1)
    assert live.rules.set_index("rule").loc[f"live-{code}", "count"] == 1
    assert TRIAGE_TEAM in set(live.confusion["predicted"])


def test_live_replay_routes_a_new_sub_category_after_the_first_answer(
    paris: City, paris_gis: CityGIS
) -> None:
    reports, _ = history(paris, paris_gis, read_csv(SAMPLE_200), DANSMARUE, "intervenant")
    code = reports["service_code"].value_counts().index[0]
    rows = reports[reports["service_code"] == code].head(5).copy()
    rows["truth"] = "DEVE"
    rows["day"] = [DAY + timedelta(days=i) for i in range(5)]  # one report a day
    city = with_rules(paris, [], {s for s in paris.services if s != code})
    three = live_replay(city, rows, min_support=3)
    assert (three.triaged, three.correct) == (3, 2)
    first = live_replay(city, rows, min_support=3, triage_support=1)
    assert (first.triaged, first.correct, first.wrong_team) == (1, 4, 0)


def test_reassignments_in_the_store_propose_a_rule(paris: City, store: Store) -> None:
    from voirie.model import Report
    from voirie.services import workflow
    from voirie.services.auth import Principal, Role
    from voirie.services.pipeline import Pipeline

    rule = next(
        r
        for r in paris.config.routing.rules
        if r.service and not is_conditional(r) and r.team not in ("DVD", "DEVE")
    )
    pipeline = Pipeline(paris, store)
    dispatcher = Principal("dana", Role.DISPATCHER)
    for i in range(4):  # distinct places: distinct incidents
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
        if i < 3:  # the fourth is left as routed
            workflow.reassign(store, paris, done.incident_id, dispatcher, "DVD", "not ours")
    decisions = decisions_from(store, paris)
    assert len(decisions) == 4
    assert (decisions["given"] == rule.team).all()
    assert sorted(decisions["handled_by"]) == sorted(["DVD"] * 3 + [rule.team])
    assert proposals(decisions, 4) == []
    (proposal,) = proposals(decisions, 3)
    assert (proposal.service, proposal.team, proposal.corrections) == (rule.service, "DVD", 3)
    assert proposal.why.startswith("learned from 3 reassignments by dispatchers since ")


def test_one_answer_to_a_triaged_sub_category_makes_a_rule_in_the_store(
    paris: City, store: Store
) -> None:
    rule = next(
        r
        for r in paris.config.routing.rules
        if r.service and not is_conditional(r) and r.team != "DVD"
    )
    # The city without the sub-category's rule: its reports go to triage.
    routing = paris.config.routing.model_copy(
        update={
            "rules": [r for r in paris.config.routing.rules if r.service != rule.service],
            "learning": paris.config.routing.learning.model_copy(
                update={"mode": "auto", "refresh_s": 1e-6}
            ),
        }
    )
    city = City(paris.folder, paris.config.model_copy(update={"routing": routing}))
    pipeline = Pipeline(city, store)
    done = pipeline.intake.submit(
        Report(
            external_id="t0",
            source="test",
            service_code=str(rule.service),
            lon=2.33,
            lat=48.86,
            requested_at=datetime.now(UTC),
        )
    )
    (team,) = pipeline.reads.incidents(Selection(ids=(done.incident_id,)))["team"]
    assert team == TRIAGE_TEAM
    dispatcher = Principal("dana", Role.DISPATCHER)
    workflow.reassign(store, city, done.incident_id, dispatcher, "DVD", "c'est la voirie")
    (learned,) = learned_routing.versions(store, city)
    assert (learned.service_code, learned.team, learned.corrections, learned.status) == (
        rule.service,
        "DVD",
        1,
        learned_routing.ACTIVE,
    )
