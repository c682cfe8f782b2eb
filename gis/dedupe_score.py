"""What a duplicate score means: its calibration on labelled history, numpy only.

The rule's score (``dedupe.py``: a weighted mean of proximity, recency, kinship and place)
ranks the incidents a report may join, but 0.8 does not mean "80 % of such pairs are one
problem". A calibration learned on a city's labelled duplicates does: among the candidate
pairs of its history (a report and an earlier one the rule lets it join), the share that
staff labelled as one problem, as a non-decreasing function of the score. It is fitted by
isotonic regression (pool-adjacent-violators, here in numpy rather than scikit-learn: the
fit is twenty lines and the package need not depend on a learning library), each block's
share shrunk towards the overall share by ``PRIOR_PAIRS`` pseudo-pairs so a small block
never says 0 % or 100 %, and stored in ``city.yaml`` as knots (``dedupe.calibration``)
read by linear interpolation. A threshold on that likelihood (the same section) keeps a
report out of incidents it would too probably not belong to; the rule applies it as the
raw score where the likelihood reaches the threshold (``score_cut``), so the batch and
per-report paths compare the same number.

Staff do not label every repeat, so "labelled" is a lower bound of "true": the likelihood
is the share of such pairs a city's staff would mark as duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

# Pseudo-pairs at the overall share added to each isotonic block (shrinkage of small blocks).
PRIOR_PAIRS = 2.0
# Decimals of the stored knots (and of the scores pooled as ties when fitting).
DECIMALS = 4
# Likelihood bins of the reliability table (the last one holds 1).
BINS = (0.0, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.000001)


def fit(
    score: np.ndarray, label: np.ndarray, prior_pairs: float = PRIOR_PAIRS
) -> tuple[list[float], list[float]]:
    """The knots (scores, likelihoods) of the isotonic share of ``label`` (1: a labelled
    duplicate pair) as a function of ``score``, each block shrunk towards the overall share
    by ``prior_pairs`` pseudo-pairs.

    Pool-adjacent-violators over the distinct (rounded) scores: a block whose share exceeds
    the next one's is merged with it until the shares never decrease. Each block gives a
    knot at its lowest and highest score; between blocks the likelihood is interpolated."""
    if len(score) == 0 or len(score) != len(label):
        raise ValueError("fit needs as many labels as scores, at least one")
    frame = pd.DataFrame(
        {"s": np.round(np.asarray(score, float), DECIMALS), "y": np.asarray(label, float)}
    )
    ties = frame.groupby("s")["y"].agg(["sum", "size"]).sort_index()
    blocks: list[list[float]] = []  # [low score, high score, positives, pairs]
    for s, positives, pairs in zip(ties.index, ties["sum"], ties["size"], strict=True):
        blocks.append([float(s), float(s), float(positives), float(pairs)])
        while len(blocks) > 1 and blocks[-2][2] / blocks[-2][3] > blocks[-1][2] / blocks[-1][3]:
            low, _, pos, n = blocks.pop(-2)
            blocks[-1] = [low, blocks[-1][1], pos + blocks[-1][2], n + blocks[-1][3]]
    base = float(np.mean(label))
    shares = [(pos + prior_pairs * base) / (n + prior_pairs) for _, _, pos, n in blocks]
    shares = np.maximum.accumulate(np.array(shares)).tolist()
    scores: list[float] = []
    likelihoods: list[float] = []
    for (low, high, _, _), share in zip(blocks, shares, strict=True):
        for knot in (low, high) if high > low else (low,):
            scores.append(knot)
            likelihoods.append(round(share, DECIMALS))
    if len(scores) == 1:  # one distinct score: the same likelihood everywhere
        return [0.0, 1.0], likelihoods * 2
    return scores, likelihoods


def likelihood(
    scores: Sequence[float], likelihoods: Sequence[float], raw: np.ndarray | float
) -> np.ndarray:
    """The calibrated likelihood of raw scores (flat beyond the first and last knots)."""
    out: np.ndarray = np.interp(np.asarray(raw, float), scores, likelihoods)
    return out


def score_cut(scores: Sequence[float], likelihoods: Sequence[float], threshold: float) -> float:
    """The lowest raw score whose likelihood reaches ``threshold`` (-inf when every score
    does, +inf when none does): the rule joins only candidates scored at least this."""
    ys = np.asarray(likelihoods, float)
    if threshold <= ys[0]:
        return -np.inf
    if threshold > ys[-1]:
        return np.inf
    k = int(np.argmax(ys >= threshold))
    x0, x1, y0, y1 = scores[k - 1], scores[k], ys[k - 1], ys[k]
    return float(x0 + (threshold - y0) / (y1 - y0) * (x1 - x0))


def brier(probability: np.ndarray, label: np.ndarray) -> float:
    """Mean squared gap between forecast probabilities and outcomes (0 is perfect)."""
    return float(np.mean((np.asarray(probability, float) - np.asarray(label, float)) ** 2))


def reliability(probability: np.ndarray, label: np.ndarray) -> pd.DataFrame:
    """Per bin of forecast probability (``BINS``): pairs, mean forecast, observed share of
    labelled duplicates. A calibrated forecast has the two close where pairs are many."""
    bins = pd.cut(np.asarray(probability, float), list(BINS), include_lowest=True, right=False)
    frame = pd.DataFrame({"bin": bins, "p": probability, "y": np.asarray(label, float)})
    return frame.groupby("bin", observed=False).agg(
        pairs=("y", "size"), forecast=("p", "mean"), observed=("y", "mean")
    )
