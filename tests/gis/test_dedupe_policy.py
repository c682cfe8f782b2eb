"""The deduplication policy read from Paris's city.yaml: one rule per service, lock keys
and candidate services that agree, thresholds a batch gets as a report gets them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from voirie.city import City
from voirie.gis.dedupe_policy import THRESHOLD_COLUMNS, DedupePolicy


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
        )
    group, match = policy.labels(np.array([codes[0], "no-such-service"], dtype=object))
    assert group.tolist() == [policy.rule(codes[0]).group, None]
    assert match.tolist() == [policy.rule(codes[0]).match, None]
    assert policy.reach_m(10.0) == 10.0 * paris.config.dedupe.same_street_factor
