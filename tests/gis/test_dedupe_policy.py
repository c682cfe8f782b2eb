"""The deduplication policy read from Paris's city.yaml: one rule per service, lock keys
and candidate services that agree, thresholds a batch gets as a report gets them; the
street-scale settings as city.yaml gives them (Chicago) and as voirie/city.py checks them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from voirie.city import City, Dedupe, load_city
from voirie.gis.dedupe_policy import THRESHOLD_COLUMNS, DedupePolicy


@pytest.fixture(scope="module")
def chicago() -> City:
    return load_city(Path(__file__).parents[2] / "cities/chicago")


def test_sharing_services_lock_and_look_as_one_family(paris: City) -> None:
    policy = DedupePolicy(paris)
    j = paris.jurisdiction_id
    assert policy.families, "Paris has groups whose services share incidents"
    for code, rule in policy.rules.items():
        (key,) = policy.lock_keys([code])
        if rule.match == "group":
            assert key == f"{j}/{rule.group}"
            assert policy.candidate_services(code) == policy.families[rule.group]
            # Every sibling takes the same lock, so two of them never race.
            assert set(policy.lock_keys(policy.families[rule.group])) == {key}
        else:
            assert key == f"{j}/{code}"
            assert policy.candidate_services(code) == [code]


def test_a_batch_gets_the_thresholds_of_each_report_and_labels_know_no_stranger(
    paris: City,
) -> None:
    policy = DedupePolicy(paris)
    codes = list(policy.rules)[:5]
    batch = pd.DataFrame({"service_code": codes, "group": [policy.rule(c).group for c in codes]})
    policy.set_thresholds(batch)
    for row, code in zip(batch.itertuples(index=False), codes, strict=True):
        rule = policy.rule(code)
        assert tuple(getattr(row, c) for c in THRESHOLD_COLUMNS) == (
            rule.group,
            rule.match,
            rule.radius_m,
            rule.window_days,
            rule.street_radius_m,
        )
    group, match = policy.labels(np.array([codes[0], "no-such-service"], dtype=object))
    assert group.tolist() == [policy.rule(codes[0]).group, None]
    assert match.tolist() == [policy.rule(codes[0]).match, None]
    assert policy.reach_m(10.0) == 10.0 * paris.config.dedupe.same_street_factor


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"street_scale": True}, "street_scale: true needs street_radius_m"),
        ({"street_radius_m": 200}, "street_radius_m is only read with street_scale: true"),
        (
            {"street_scale": True, "street_radius_m": 20},
            "street_radius_m (20) must be at least radius_m (50)",
        ),
        (
            {"street_scale": True, "street_radius_m": 200, "match": "never"},
            "street_scale cannot apply to match: never",
        ),
        ({"street_scale": True, "street_radius_m": 5000}, "less than or equal to 1000"),
    ],
)
def test_street_scale_settings_are_checked(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        Dedupe.model_validate({"radius_m": 50, "window_days": 3, **settings})


def test_a_street_scale_rule_reaches_its_street_radius(chicago: City) -> None:
    policy = DedupePolicy(chicago)
    snow, graffiti = policy.rule("SDO"), policy.rule("GRAF")
    assert snow.street_radius_m == 200.0
    assert graffiti.street_radius_m == 0.0
    assert policy.reach_m(snow.radius_m, snow.street_radius_m) == 200.0
    assert policy.reach_m(graffiti.radius_m, graffiti.street_radius_m) == graffiti.radius_m
