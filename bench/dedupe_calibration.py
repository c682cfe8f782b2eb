"""Calibrated duplicate scores, learned on the past and measured on the next period.

The procedure is ``voirie dedupe calibrate``'s (``voirie/cli/dedupe_calibration.py``);
this script runs it on the Chicago day with folds at fixed local hours and prints its
tables as markdown. The Chicago day (2021-01-01, City staff labels) is imported once
through the real pipeline (the shipped city.yaml without its calibration: the current
rule), which gives every report its service, street (from the address) and place. Its
candidate pairs are the pairs ``dedupe.pairs`` lists (a report and an earlier one the
rule lets it join); a pair is a labelled duplicate when staff put both in one chain of
(child, parent) labels (parents before the day included: two children of one older parent
are one problem).

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
of child and parent ``external_id``), or with ``voirie dedupe calibrate``::

    python bench/dedupe_calibration.py            # Chicago, bundled day
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

from voirie.city import load_city
from voirie.cli.dedupe_calibration import (
    Calibration,
    Decisions,
    History,
    calibrate,
    labelled_history,
)
from voirie.ingest.mapping import OPEN311
from voirie.ingest.sources import read_open311_json

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dedupe_eval import CHICAGO_CSV, ROOT, to_open311

# Fold boundaries, local hours of the day: the past is everything before a fold's start.
FOLD_HOURS = (0, 12, 16, 20, 24)


def _supported(decided: Decisions) -> str:
    """The share of merges a label supports (a precision proxy: unlabelled is not wrong)."""
    return f"{1 - decided.unsupported / decided.merges:.1%}" if decided.merges else "–"


def _knots_row(knots: tuple[list[float], list[float]]) -> str:
    """Each likelihood level of a calibration from the score where it starts."""
    levels: dict[float, float] = {}
    for score, share in zip(*knots, strict=True):
        levels.setdefault(share, score)
    return ", ".join(f"{p:.0%} from {s:.3f}" for p, s in levels.items())


def hour_bounds(hist: History, timezone: str) -> list[pd.Timestamp]:
    """``FOLD_HOURS`` of the history's first local day, as instants."""
    day = hist.reports["requested_at"].min().tz_convert(timezone).normalize()
    return [day + pd.Timedelta(hours=h) for h in FOLD_HOURS]


def print_tables(
    hist: History, result: Calibration, bounds: list[pd.Timestamp], learned_on: str
) -> None:
    """The folds' Brier scores, the pooled reliability, the thresholds chosen on the past
    and the whole history's calibration as city.yaml text."""
    pairs = hist.pairs
    print(
        f"{len(hist.reports):,} reports, {len(pairs):,} candidate pairs, "
        f"{int(pairs['label'].sum())} labelled duplicates; labelled (child, parent) with "
        f"both in the file: {len(hist.labelled)}"
    )
    print(
        "\nfold | past pairs (labelled) | fold pairs (labelled) | Brier calibrated | "
        "raw score | current rule (0/1) | past share\n" + "|".join(["---"] * 7)
    )
    hour = dict(zip(bounds, FOLD_HOURS, strict=True))
    hours = [f"{hour[f.start]}-{hour[f.end]} h" for f in result.folds]
    for label, fold in zip(hours, result.folds, strict=True):
        brier = " | ".join(f"{fold.brier[k]:.4f}" for k in fold.brier)
        print(
            f"{label} | {fold.past_pairs} ({fold.past_labelled}) | {fold.pairs} "
            f"({fold.labelled}) | {brier}"
        )
    print("\nReliability, forecasts of the folds pooled (each learned on its past):")
    print(
        "likelihood bin | pairs | mean forecast | labelled share | current rule joined\n"
        + "|".join(["---"] * 5)
    )
    for interval, row in result.reliability.iterrows():
        if row["pairs"]:
            print(
                f"[{interval.left:.2f}, {min(interval.right, 1.0):.2f}) | {int(row['pairs'])} | "
                f"{row['forecast']:.1%} | {row['observed']:.1%} "
                f"({round(row['observed'] * row['pairs'])}) | {int(row['joined'])}"
            )
    print("\nThreshold chosen on the past, measured on the fold (replayed after the past):")
    print(
        "fold | threshold | labelled recall | merges | unsupported | supported share | "
        "current rule: recall | merges | unsupported | supported share\n" + "|".join(["---"] * 10)
    )
    for label, fold in zip(hours, result.folds, strict=True):
        ours, rule = fold.chosen, fold.rule
        print(
            f"{label} | {fold.threshold:.1%} | {ours.recall()} | {ours.merges} | "
            f"{ours.unsupported} | {_supported(ours)} | {rule.recall()} | {rule.merges} | "
            f"{rule.unsupported} | {_supported(rule)}"
        )
    whole = result.whole
    print(
        f"\nWhole history: threshold {result.threshold:.1%}, labelled recall {whole.recall()}, "
        f"merges {whole.merges}, unsupported {whole.unsupported}; calibration "
        f"{_knots_row(result.knots)}"
    )
    section = result.section(learned_on)
    print("city.yaml, under dedupe:\n  calibration:")
    print(f"    scores: [{', '.join(f'{s:g}' for s in section.scores)}]")
    print(f"    likelihoods: [{', '.join(f'{p:g}' for p in section.likelihoods)}]")
    print(f"    threshold: {section.threshold:g}")
    print(f"    learned_on: {section.learned_on}")


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
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.json"
        path.write_text(json.dumps(requests), encoding="utf-8")
        hist = labelled_history(city, read_open311_json(path), OPEN311, edges)
    bounds = hour_bounds(hist, city.config.timezone)
    result = calibrate(city, hist, bounds=bounds)
    print_tables(hist, result, bounds, source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
