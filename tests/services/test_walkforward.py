"""Walk-forward evaluation and out-of-time rule learning, on the bundled Paris history."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pandas as pd
import pytest
from datafiles import PARIS_REPORTS

from voirie.city import TRIAGE_TEAM, City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.routing.table import route
from voirie.services import walkforward
from voirie.services.rules_learning import Learned, Learning, learn_rules, month_start
from voirie.services.rules_replay import history, with_rules
from voirie.services.walkforward import walk_forward

WOODS = "zone-all-espace_vert-10132"  # every service inside the Bois de Vincennes → DEVE


@pytest.fixture(scope="module")
def past(paris: City, paris_gis: CityGIS) -> pd.DataFrame:
    """The bundled Paris history, validated and enriched once."""
    reports, _ = history(paris, paris_gis, read_csv(PARIS_REPORTS), DANSMARUE, "intervenant")
    return reports


def test_folds_learn_only_from_the_months_before(
    paris: City, paris_gis: CityGIS, past: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[date, date]] = []  # (day learning happens, last day it was given)

    def spy(city: City, reports: pd.DataFrame, end: date, **kwargs: object) -> Learned:
        seen.append((end, reports["day"].max()))
        return learn_rules(city, reports, end, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(walkforward, "learn_rules", spy)
    folds = walk_forward(paris, past, list(paris_gis.zones))
    months = past["day"].map(month_start)
    assert [f.month for f in folds] == sorted(set(months))[3:]
    assert len(folds) >= 6
    for fold in folds:
        assert fold.trained_on == (past["day"] < fold.month).sum()
        assert fold.voirie.n == fold.baseline.n == (months == fold.month).sum()
    assert seen
    assert all(last < end for end, last in seen)
    assert {end for end, _ in seen} == {f.month for f in folds}


def test_the_test_month_and_later_change_nothing_learned(
    paris: City, paris_gis: CityGIS, past: pd.DataFrame
) -> None:
    start = date(2024, 1, 1)
    scrambled = past.copy()
    later = scrambled["day"] >= start
    scrambled.loc[later, "truth"] = (
        scrambled.loc[later, "truth"].sample(frac=1, random_state=1).to_numpy()
    )
    layers = list(paris_gis.zones)
    fold = next(f for f in walk_forward(paris, past, layers) if f.month == start)
    again = next(f for f in walk_forward(paris, scrambled, layers) if f.month == start)
    assert fold.zone_rules == again.zone_rules
    assert (fold.voirie.n, fold.baseline.n) == (again.voirie.n, again.baseline.n)
    assert again.voirie.correct < fold.voirie.correct  # the scrambled month is what changed


def test_a_zone_rule_that_loses_on_the_validation_month_is_dropped(
    paris: City, paris_gis: CityGIS, past: pd.DataFrame
) -> None:
    end = date(2024, 3, 1)
    history_ = past[past["day"] < end].copy()
    layers = list(paris_gis.zones)
    policy = Learning(validation_months=1, half_life_days=None)  # all months alike
    kept = learn_rules(paris, history_, end, layers=layers, policy=policy)
    woods = {r.rule_id: r for r in kept.zone_rules}[WOODS]
    assert woods.team == "DEVE"
    assert woods.validated_gain is not None
    assert woods.validated_gain >= 1
    # In the validation month (February), every report inside the woods goes to the team
    # of its service rule: the woods rule now loses there, though the history as a whole
    # still says DEVE.
    services = {r.service: r.team for r in kept.rules if r.zone is None}
    february = (history_["day"] >= date(2024, 2, 1)) & (history_["zone_espace_vert"] == "10132")
    history_.loc[february, "truth"] = history_.loc[february, "service_code"].map(services)
    unchecked = learn_rules(
        paris, history_, end, layers=layers, policy=replace(policy, validation_months=0)
    )
    assert WOODS in {r.rule_id for r in unchecked.zone_rules}
    checked = learn_rules(paris, history_, end, layers=layers, policy=policy)
    assert WOODS not in {r.rule_id for r in checked.zone_rules}
    assert all((r.validated_gain or 0) >= 1 for r in checked.zone_rules)


def test_unseen_sub_categories_go_to_triage(
    paris: City, paris_gis: CityGIS, past: pd.DataFrame
) -> None:
    start = date(2024, 3, 1)
    before, month = past[past["day"] < start], past[past["day"] >= start]
    learned = learn_rules(paris, before, start, layers=list(paris_gis.zones))
    named = {r.service for r in learned.rules}
    new = ~month["service_code"].isin(set(before["service_code"]))
    assert new.sum() > 0
    assert not named & set(month.loc[new, "service_code"])  # no rule guesses for them
    city = with_rules(paris, learned.rules, set(before["service_code"]))
    routed = route(city, month)
    assert (routed.loc[new, "team"] == TRIAGE_TEAM).all()
    assert (routed.loc[~new, "team"] != TRIAGE_TEAM).all()


def test_recent_decisions_outweigh_old_ones(paris: City, past: pd.DataFrame) -> None:
    code = past["service_code"].value_counts().index[0]
    reports = past[past["service_code"] == code].head(30).copy()
    reports["day"] = date(2023, 8, 1)
    reports["truth"] = "DVD"
    recent = reports.head(10).assign(day=date(2024, 3, 1), truth="DEVE")
    both = pd.concat([reports.iloc[10:], recent], ignore_index=True)  # 20 old DVD, 10 new DEVE
    end = date(2024, 3, 2)
    weighted = learn_rules(paris, both, end, policy=Learning(half_life_days=60))
    flat = learn_rules(paris, both, end, policy=Learning(half_life_days=None))
    assert [r.team for r in weighted.rules] == ["DEVE"]
    assert [r.team for r in flat.rules] == ["DVD"]


def test_live_folds_replay_the_baseline_with_the_same_learning(
    paris: City, paris_gis: CityGIS, past: pd.DataFrame
) -> None:
    first = past[past["day"] < date(2023, 11, 1)]  # one fold: 2023-10
    (fold,) = walk_forward(
        paris, first, list(paris_gis.zones), live_support=3, live_triage_support=1
    )
    assert fold.live is not None
    assert fold.baseline_live is not None
    assert fold.live.n == fold.baseline_live.n == fold.voirie.n
    # Sub-categories new in the month: routed after a dispatcher's first answer, in both.
    assert fold.live.triaged < fold.voirie.triaged
    assert fold.baseline_live.triaged < fold.baseline.triaged
