"""Calibrated duplicate scores, learned on the past and measured on the next period.

The Chicago day (2021-01-01, City staff labels) is imported once through the real pipeline
(the shipped city.yaml without its calibration: the current rule), which gives every
report its service, street (from the address) and place. Its candidate pairs are the
pairs ``dedupe.pairs`` lists (a report and an earlier one the rule lets it join); a pair
is a labelled duplicate when staff put both in one chain of (child, parent) labels
(parents before the day included: two children of one older parent are one problem).

Walk-forward folds: learn on every pair whose later report arrived before the fold,
measure on the fold's (12-16 h, 16-20 h, 20-24 h local; the morning is the first past).
On each fold:

- the calibration (``gis/dedupe_score.fit``: isotonic, numpy only) learned on the past,
  its forecasts on the fold's pairs: Brier score against the raw score read as a
  probability, the current rule's decisions (1 when the import put both reports in one
  incident) and the past's overall share; a reliability table pooled over the folds;
- the merge threshold (a likelihood) chosen on the past by replaying ``dedupe.cluster``
  (what imports and re-clustering run) over the past's reports: the highest labelled-pair
  recall, then the fewest merges no label supports, then the lowest threshold; measured on
  the fold (its arrivals replayed after the past) against the current rule (threshold 0).

Finally the calibration and threshold learned the same way on the whole day, as the
``dedupe.calibration`` section of ``cities/chicago/city.yaml``. A city re-runs it on its
own labelled history with ``--city``, ``--reports`` (Open311 JSON) and ``--labels`` (CSV
of child and parent ``external_id``)::

    python bench/dedupe_calibration.py            # Chicago, bundled day
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from voirie.city import City, DedupeCalibration, load_city
from voirie.gis import dedupe, dedupe_score
from voirie.gis.dedupe_policy import DedupePolicy
from voirie.gis.enrich import CityGIS

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dedupe_eval import CHICAGO_CSV, ROOT, _import, to_open311
from dedupe_folds import _merges

# Fold boundaries, local hours of the day: the past is everything before a fold's start.
FOLD_HOURS = (12, 16, 20, 24)
Knots = tuple[list[float], list[float]]


@dataclass(frozen=True)
class History:
    """A city's imported reports (``reports``: a batch ``dedupe`` reads, in arrival order,
    with ``external_id``, ``hour`` and the current rule's ``incident_id``), its candidate
    pairs with ``label`` (1: one labelled chain) and its labelled (child, parent) pairs."""

    reports: pd.DataFrame
    pairs: pd.DataFrame
    labelled: list[tuple[str, str]]


def _chains(edges: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The root of each labelled report's chain of (child, parent) labels."""
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for child, up in edges:
        parent[find(child)] = find(up)
    return {node: find(node) for node in parent}


def history(city: City, requests: list[dict[str, object]], edges: list[tuple[str, str]]) -> History:
    """Import the requests through the real pipeline (the current rule) and list the
    candidate pairs of their reports with their labels."""
    plain = _uncalibrated(city)
    gis = CityGIS(plain)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.json"
        path.write_text(json.dumps(requests), encoding="utf-8")
        _, layer = _import(plain, gis, path, "open311", Path(tmp))
    layer = layer.sort_values(["requested_at", "report_id"], ignore_index=True)
    layer["x"], layer["y"] = gis.project(layer["lon"].to_numpy(float), layer["lat"].to_numpy(float))
    DedupePolicy(plain).set_thresholds(layer)
    zone = city.config.timezone
    layer["hour"] = layer["requested_at"].dt.tz_convert(zone).dt.hour
    pairs = dedupe.pairs(layer, plain.config.dedupe)
    root = _chains(edges)
    ids = layer["external_id"].to_numpy(object)
    a = [root.get(v) for v in ids[pairs["report"]]]
    b = [root.get(v) for v in ids[pairs["earlier"]]]
    pairs["label"] = [int(x is not None and x == y) for x, y in zip(a, b, strict=True)]
    incident = layer["incident_id"].to_numpy()
    pairs["joined"] = (incident[pairs["report"]] == incident[pairs["earlier"]]).astype(int)
    pairs["hour"] = layer["hour"].to_numpy()[pairs["report"]]
    known = set(ids)
    labelled = [(c, p) for c, p in edges if c in known and p in known]
    return History(layer, pairs, labelled)


def _uncalibrated(city: City) -> City:
    """The city with its scoring but no calibration: the current rule."""
    scoring = city.config.dedupe.model_copy(update={"calibration": None})
    return City(city.folder, city.config.model_copy(update={"dedupe": scoring}))


def _calibrated(city: City, knots: Knots, threshold: float) -> City:
    """The city with this calibration and threshold."""
    calibration = DedupeCalibration(
        scores=knots[0], likelihoods=knots[1], threshold=threshold, learned_on="bench"
    )
    scoring = city.config.dedupe.model_copy(update={"calibration": calibration})
    return City(city.folder, city.config.model_copy(update={"dedupe": scoring}))


@dataclass(frozen=True)
class Decisions:
    """What one threshold did to the arrivals of a period: labelled pairs (child arriving
    in it) and those in one incident; merges its reports made and those no label supports."""

    pairs: int
    joined: int
    merges: int
    unsupported: int

    def supported(self) -> str:
        """The share of merges a label supports (a precision proxy: unlabelled is not wrong)."""
        return f"{1 - self.unsupported / self.merges:.1%}" if self.merges else "–"

    def recall(self) -> str:
        return f"{self.joined / self.pairs:.1%} ({self.joined}/{self.pairs})" if self.pairs else "–"


def decisions(
    city: City,
    hist: History,
    start: int,
    end: int,
    threshold: float,
    knots: Knots,
) -> Decisions:
    """Replay ``dedupe.cluster`` over the reports before ``end`` (local hour) with the
    calibration and threshold; score the arrivals from ``start``."""
    scoring = _calibrated(city, knots, threshold).config.dedupe
    upto = hist.reports[hist.reports["hour"] < end].reset_index(drop=True)
    links = dedupe.cluster(upto, scoring)
    layer = pd.DataFrame(
        {"external_id": upto["external_id"], "incident_id": links["leader"].to_numpy()}
    )
    arrivals = set(upto.loc[upto["hour"] >= start, "external_id"])
    pairs = [(c, p) for c, p in hist.labelled if c in arrivals and p in set(upto["external_id"])]
    of = dict(zip(layer["external_id"], layer["incident_id"], strict=True))
    before = layer.loc[~layer["external_id"].isin(arrivals), "external_id"]
    merges, unsupported = _merges(layer, pairs, before)
    return Decisions(len(pairs), sum(of[c] == of[p] for c, p in pairs), merges, unsupported)


def choose_threshold(city: City, hist: History, end: int, knots: Knots) -> float:
    """The past's choice (reports before ``end``): the highest labelled-pair recall, then
    the fewest unsupported merges, then the lowest threshold, among 0 and the likelihood
    levels of the calibration."""
    levels = sorted({0.0, *knots[1]})
    scored = [(t, decisions(city, hist, 0, end, t, knots)) for t in levels]
    return min(scored, key=lambda ts: (-ts[1].joined, ts[1].unsupported, ts[0]))[0]


def _knots_row(knots: Knots) -> str:
    """Each likelihood level of a calibration from the score where it starts."""
    levels: dict[float, float] = {}
    for score, share in zip(*knots, strict=True):
        levels.setdefault(share, score)
    return ", ".join(f"{p:.0%} from {s:.3f}" for p, s in levels.items())


def _folds(pairs: pd.DataFrame) -> Iterator[tuple[int, int, pd.DataFrame, pd.DataFrame, Knots]]:
    """Each fold's hours, its past's pairs, its own and the calibration learned on the past."""
    for start, end in itertools.pairwise(FOLD_HOURS):
        past = pairs[pairs["hour"] < start]
        fold = pairs[(pairs["hour"] >= start) & (pairs["hour"] < end)]
        yield start, end, past, fold, dedupe_score.fit(past["score"], past["label"])


def walk_forward(city: City, hist: History) -> None:
    """Print the folds' calibration, Brier scores, reliability and threshold tables."""
    pairs = hist.pairs
    print(
        f"{len(hist.reports):,} reports, {len(pairs):,} candidate pairs, "
        f"{int(pairs['label'].sum())} labelled duplicates; labelled (child, parent) with "
        f"both in the file: {len(hist.labelled)}"
    )
    print(
        "\nfold | past pairs (labelled) | fold pairs (labelled) | Brier calibrated | "
        "raw score | current rule (0/1) | past share | calibration learned on the past"
    )
    print("|".join(["---"] * 8))
    pooled = []
    for start, end, past, fold, knots in _folds(pairs):
        p = dedupe_score.likelihood(*knots, fold["score"].to_numpy())
        y = fold["label"].to_numpy()
        share = float(past["label"].mean())
        print(
            f"{start}-{end} h | {len(past)} ({int(past['label'].sum())}) | {len(fold)} "
            f"({int(y.sum())}) | **{dedupe_score.brier(p, y):.4f}** | "
            f"{dedupe_score.brier(fold['score'].to_numpy(), y):.4f} | "
            f"{dedupe_score.brier(fold['joined'].to_numpy(), y):.4f} | "
            f"{dedupe_score.brier(np.full(len(y), share), y):.4f} | {_knots_row(knots)}"
        )
        pooled.append(pd.DataFrame({"p": p, "y": y, "joined": fold["joined"].to_numpy()}))
    _reliability(pd.concat(pooled, ignore_index=True))
    print("\nThreshold chosen on the past, measured on the fold (replayed after the past):")
    print(
        "fold | threshold | labelled recall | merges | unsupported | supported share | "
        "current rule: recall | merges | unsupported | supported share\n" + "|".join(["---"] * 10)
    )
    for start, end, _, _, knots in _folds(pairs):
        threshold = choose_threshold(city, hist, start, knots)
        ours = decisions(city, hist, start, end, threshold, knots)
        rule = decisions(city, hist, start, end, 0.0, knots)
        print(
            f"{start}-{end} h | {threshold:.1%} | {ours.recall()} | {ours.merges} | "
            f"{ours.unsupported} | {ours.supported()} | {rule.recall()} | {rule.merges} | "
            f"{rule.unsupported} | {rule.supported()}"
        )


def _reliability(every: pd.DataFrame) -> None:
    """The reliability table of pooled out-of-time forecasts ``p`` with labels ``y``."""
    print("\nReliability, forecasts of the folds pooled (each learned on its past):")
    print(
        "likelihood bin | pairs | mean forecast | labelled share | current rule joined\n"
        + "|".join(["---"] * 5)
    )
    table = dedupe_score.reliability(every["p"].to_numpy(), every["y"].to_numpy())
    bins = pd.cut(every["p"], list(dedupe_score.BINS), right=False)
    joined = every.groupby(bins, observed=False)["joined"].sum().to_numpy()
    for (interval, row), n_joined in zip(table.iterrows(), joined, strict=True):
        if row["pairs"]:
            print(
                f"[{interval.left:.2f}, {min(interval.right, 1.0):.2f}) | {int(row['pairs'])} | "
                f"{row['forecast']:.1%} | {row['observed']:.1%} "
                f"({round(row['observed'] * row['pairs'])}) | {int(n_joined)}"
            )


def shipped(city: City, hist: History, learned_on: str) -> None:
    """The calibration and threshold learned on the whole history, as city.yaml text."""
    pairs = hist.pairs
    knots = dedupe_score.fit(pairs["score"].to_numpy(), pairs["label"].to_numpy())
    print("\nWhole history, each candidate threshold replayed (what the choice weighs):")
    print("threshold | labelled recall | merges | unsupported | supported share")
    print("---|---|---|---|---")
    for level in sorted({0.0, *knots[1]}):
        replay = decisions(city, hist, 0, 24, level, knots)
        print(
            f"{level:.1%} | {replay.recall()} | {replay.merges} | {replay.unsupported} | "
            f"{replay.supported()}"
        )
    threshold = choose_threshold(city, hist, 24, knots)
    whole = decisions(city, hist, 0, 24, threshold, knots)
    print(
        f"\nWhole history: threshold {threshold:.1%}, labelled recall {whole.recall()}, "
        f"merges {whole.merges}, unsupported {whole.unsupported}"
    )
    print("city.yaml, under dedupe:\n  calibration:")
    print(f"    scores: [{', '.join(f'{s:g}' for s in knots[0])}]")
    print(f"    likelihoods: [{', '.join(f'{p:g}' for p in knots[1])}]")
    print(f"    threshold: {threshold:g}")
    print(f"    learned_on: {learned_on}")


def _chicago() -> tuple[list[dict[str, object]], list[tuple[str, str]]]:
    """The bundled Chicago day as Open311 requests and its staff labels."""
    raw = pd.read_csv(CHICAGO_CSV, dtype=str).sort_values("created_date", kind="stable")
    dup = raw[(raw["duplicate"] == "True") & raw["parent_sr_number"].notna()]
    return to_open311(raw), list(zip(dup["sr_number"], dup["parent_sr_number"], strict=True))


def main() -> int:
    """Chicago by default, or a city's own history and labels."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--city", type=Path, default=ROOT / "cities/chicago")
    parser.add_argument("--reports", type=Path, help="Open311 JSON of the labelled history")
    parser.add_argument("--labels", type=Path, help="CSV: child,parent (external ids)")
    args = parser.parse_args()
    city = load_city(args.city)
    if args.reports is None:
        requests, edges = _chicago()
        source = "Chicago 311 2021-01-01 staff labels (python bench/dedupe_calibration.py)"
    else:
        requests = json.loads(args.reports.read_text(encoding="utf-8"))
        labels = pd.read_csv(args.labels, dtype=str)
        edges = list(zip(labels["child"], labels["parent"], strict=True))
        source = f"{args.reports.name} + {args.labels.name} (python bench/dedupe_calibration.py)"
    hist = history(city, requests, edges)
    walk_forward(city, hist)
    shipped(city, hist, source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
