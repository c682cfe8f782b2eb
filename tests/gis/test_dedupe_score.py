"""Calibrated duplicate scores: the isotonic fit against its textbook formula, the knots'
checks, the threshold as the rule applies it, and the likelihood in the link's reasons."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from voirie.city import DedupeCalibration, DedupeScoring, load_city
from voirie.gis import dedupe, dedupe_score
from voirie.gis.dedupe_policy import DedupePolicy

ROOT = Path(__file__).parents[2]
X, Y = 652_271.0, 6_863_519.0
NO_STORED = pd.DataFrame(
    {
        "incident_id": pd.Series([], dtype="int64"),
        "x": [],
        "y": [],
        "service_code": [],
        "group": [],
        "match": [],
        "segment_id": [],
        "street_name": [],
        "last_reported_at": pd.to_datetime([], utc=True),
    }
)


def _isotonic_oracle(x: np.ndarray, y: np.ndarray) -> dict[float, float]:
    """The least-squares non-decreasing fit at each distinct x, by the min-max formula:
    f(i) = max over j <= i of min over k >= i of the weighted mean of levels j..k."""
    levels = sorted(set(x.tolist()))
    sums = np.array([y[x == v].sum() for v in levels])
    counts = np.array([(x == v).sum() for v in levels], dtype=float)
    n = len(levels)
    fit = {}
    for i in range(n):
        fit[levels[i]] = max(
            min(sums[j : k + 1].sum() / counts[j : k + 1].sum() for k in range(i, n))
            for j in range(i + 1)
        )
    return fit


@pytest.mark.parametrize("seed", range(20))
def test_the_fit_is_the_isotonic_regression_shrunk_towards_the_overall_share(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = np.round(rng.uniform(0, 1, 60), 2)
    y = (rng.uniform(0, 1, 60) < x).astype(float)
    scores, likelihoods = dedupe_score.fit(x, y)
    oracle = _isotonic_oracle(x, y)
    got = dedupe_score.likelihood(scores, likelihoods, np.array(list(oracle)))
    # Each block of the fit is shrunk by PRIOR_PAIRS pseudo-pairs at the overall share,
    # then made non-decreasing again: within that, it is the oracle's level.
    share = y.mean()
    for value, level in zip(got, oracle.values(), strict=True):
        assert min(level, share) - 1e-4 <= value <= max(level, share) + 1e-4
    assert list(likelihoods) == sorted(likelihoods)
    assert all(b > a for a, b in itertools.pairwise(scores))
    assert min(likelihoods) > 0
    assert max(likelihoods) < 1


def test_without_shrinkage_the_fit_is_the_oracle_exactly() -> None:
    rng = np.random.default_rng(7)
    x = np.round(rng.uniform(0, 1, 80), 2)
    y = (rng.uniform(0, 1, 80) < x**2).astype(float)
    scores, likelihoods = dedupe_score.fit(x, y, prior_pairs=0.0)
    oracle = _isotonic_oracle(x, y)
    got = dedupe_score.likelihood(scores, likelihoods, np.array(list(oracle)))
    assert got == pytest.approx(np.round(list(oracle.values()), dedupe_score.DECIMALS))


def test_one_distinct_score_gives_one_likelihood_everywhere() -> None:
    scores, likelihoods = dedupe_score.fit(np.array([0.7, 0.7, 0.7]), np.array([1, 0, 0]))
    assert scores == [0.0, 1.0]
    assert likelihoods[0] == likelihoods[1] == pytest.approx(1 / 3, abs=1e-4)


@pytest.mark.parametrize(
    ("scores", "likelihoods", "words"),
    [
        ([0.5, 0.4], [0.1, 0.2], "scores must be strictly increasing"),
        ([0.4, 0.5], [0.3, 0.2], "likelihoods must never decrease"),
        ([0.4, 0.5, 0.6], [0.3, 0.4], "one length"),
        ([0.4, 1.5], [0.3, 0.4], "less than or equal to 1"),
    ],
)
def test_bad_knots_are_refused_with_the_reason(
    scores: list[float], likelihoods: list[float], words: str
) -> None:
    with pytest.raises(ValidationError, match=words):
        DedupeCalibration(scores=scores, likelihoods=likelihoods, learned_on="test")


def test_the_cut_is_where_the_likelihood_reaches_the_threshold() -> None:
    scores, likelihoods = [0.4, 0.6, 0.8], [0.1, 0.3, 0.9]
    cut = dedupe_score.score_cut(scores, likelihoods, 0.6)
    assert cut == pytest.approx(0.7)
    assert dedupe_score.likelihood(scores, likelihoods, cut) == pytest.approx(0.6)
    assert dedupe_score.score_cut(scores, likelihoods, 0.1) == -np.inf
    assert dedupe_score.score_cut(scores, likelihoods, 0.95) == np.inf


def test_brier_and_reliability() -> None:
    p = np.array([0.1, 0.1, 0.9, 0.9])
    y = np.array([0, 1, 1, 1])
    assert dedupe_score.brier(p, y) == pytest.approx((0.01 + 0.81 + 0.01 + 0.01) / 4)
    table = dedupe_score.reliability(p, y)
    filled = table[table["pairs"] > 0]
    assert filled["pairs"].tolist() == [2, 2]
    assert filled["observed"].tolist() == [0.5, 1.0]


def _scoring(threshold: float) -> DedupeScoring:
    calibration = DedupeCalibration(
        scores=[0.5, 0.9], likelihoods=[0.1, 0.9], threshold=threshold, learned_on="test"
    )
    return DedupeScoring(calibration=calibration)


def _pair(dx: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [X, X + dx],
            "y": [Y, Y],
            "service_code": ["a", "a"],
            "requested_at": pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True),
            "group": "g",
            "match": "service",
            "radius_m": 30.0,
            "window_days": 3.0,
            "segment_id": [None, None],
            "street_name": [None, None],
        }
    )


def _stored(reports: pd.DataFrame) -> tuple[dedupe.NewReport, dedupe.Candidates]:
    """The second report arriving, the first stored as an open incident."""
    first, second = reports.iloc[0], reports.iloc[1]

    def objects(value: object) -> np.ndarray:
        out = np.empty(1, dtype=object)
        out[0] = value
        return out

    candidates = dedupe.Candidates(
        incident_id=np.array([1]),
        x=np.array([first["x"]]),
        y=np.array([first["y"]]),
        service_code=objects("a"),
        group=objects("g"),
        match=objects("service"),
        segment_id=objects(None),
        street_name=objects(None),
        last_reported_at=np.array([first["requested_at"].tz_convert(None)], "datetime64[ns]"),
        status=objects("new"),
    )
    report = dedupe.NewReport(
        x=float(second["x"]),
        y=float(second["y"]),
        service_code="a",
        group="g",
        match="service",
        radius_m=30.0,
        window_days=3.0,
        requested_at=second["requested_at"].to_pydatetime(),
        segment_id=None,
        street_name=None,
    )
    return report, candidates


def test_a_pair_below_the_threshold_is_not_joined_on_both_paths() -> None:
    # 24 m apart, a day: score 0.4*0.2 + 0.2*2/3 + 0.2 + 0.1 = 0.513, likelihood 0.127.
    reports = _pair(24.0)
    joined = dedupe.attach(reports, NO_STORED, _scoring(0.1))
    assert joined["leader"].tolist() == [0, 0]
    assert joined["likelihood"].iloc[1] == pytest.approx(0.1 + 0.8 * (0.5133 - 0.5) / 0.4, 1e-2)
    assert dedupe.reasons(joined)[1] == "same service, 24 m, 1 day, 13 % likely a duplicate"
    apart = dedupe.attach(reports, NO_STORED, _scoring(0.2))
    assert apart["leader"].tolist() == [0, 1]
    assert dedupe.reasons(apart)[1] == dedupe.FOUNDER_REASON
    report, candidates = _stored(reports)
    one = dedupe.attach_one(report, candidates, _scoring(0.1))
    assert one.incident_id == 1
    assert one.reason == "same service, 24 m, 1 day, 13 % likely a duplicate"
    assert one.likelihood == pytest.approx(joined["likelihood"].iloc[1])
    assert dedupe.attach_one(report, candidates, _scoring(0.2)).incident_id == dedupe.NO_INCIDENT
    # The score staff see is the same number, threshold or not.
    seen = dedupe.scores(report, candidates, _scoring(0.2))
    assert seen[0] == pytest.approx(one.score)


def test_without_calibration_nothing_changes() -> None:
    links = dedupe.attach(_pair(24.0), NO_STORED, DedupeScoring())
    assert links["leader"].tolist() == [0, 0]
    assert np.isnan(links["likelihood"]).all()
    assert dedupe.reasons(links)[1] == "same service, 24 m, 1 day"


def test_pairs_lists_what_the_rule_may_join_with_the_scores_attach_gives() -> None:
    reports = pd.concat([_pair(12.0), _pair(60.0).iloc[[1]]], ignore_index=True)
    pairs = dedupe.pairs(reports, DedupeScoring())
    # Report 2 (60 m away) is beyond the radius of both; report 1 may join report 0.
    assert pairs[["report", "earlier"]].values.tolist() == [[1, 0]]
    links = dedupe.attach(reports, NO_STORED, DedupeScoring())
    assert pairs["score"].iloc[0] == pytest.approx(links["score"].iloc[1])


def test_the_shipped_cities_say_what_their_scores_mean() -> None:
    chicago = load_city(ROOT / "cities/chicago").config.dedupe.calibration
    assert chicago is not None
    assert "bench/dedupe_calibration.py" in chicago.learned_on
    # Paris has no labelled duplicates: its score only ranks, uncalibrated.
    assert load_city(ROOT / "cities/paris").config.dedupe.calibration is None


def test_staff_see_the_likelihood_the_rule_gives_when_the_later_arrives() -> None:
    city = load_city(ROOT / "cities/chicago")
    policy = DedupePolicy(city)
    street = "south sangamon street"
    incident = {
        "service_code": "SDO",
        "segment_id": None,
        "street_name": street,
        "last_reported_at": pd.Timestamp("2021-01-01 18:00", tz="UTC"),
    }
    others = pd.DataFrame(
        {
            "incident_id": [7, 8],
            "service_code": ["SDO", "GRAF"],
            "segment_id": [None, None],
            "street_name": [street, street],
            "last_reported_at": pd.to_datetime(["2021-01-01 12:00"] * 2, utc=True),
            "status": ["new", "new"],
        }
    )
    x, y = np.array([X, X + 150.0, X + 5.0]), np.full(3, Y)
    score, likely = policy.near_scores(incident, others, x, y)
    # Snow removal 150 m along the same street (street-scale: 200 m); graffiti: never.
    assert np.isnan(score[1])
    assert np.isnan(likely[1])
    arrivals = pd.DataFrame(
        {
            "x": [X + 150.0, X],
            "y": [Y, Y],
            "service_code": ["SDO", "SDO"],
            "requested_at": pd.to_datetime(["2021-01-01 12:00", "2021-01-01 18:00"], utc=True),
            "segment_id": [None, None],
            "street_name": [street, street],
        }
    )
    policy.set_thresholds(arrivals)
    links = dedupe.attach(arrivals, NO_STORED, city.config.dedupe)
    assert links["leader"].tolist() == [0, 0]
    assert score[0] == pytest.approx(links["score"].iloc[1])
    assert likely[0] == pytest.approx(links["likelihood"].iloc[1])
    assert 0 < likely[0] < 1
