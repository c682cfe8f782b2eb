"""``voirie dedupe``: what a city's duplicate scores mean, learned on its labelled history."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd
from rich.console import Console
from rich.table import Table

from voirie.city import load_city
from voirie.cli.common import fail_cleanly
from voirie.cli.data import history_options, read_source
from voirie.cli.dedupe_calibration import (
    Calibration,
    calibrate,
    labelled_history,
    read_labels,
    write_calibration,
)
from voirie.errors import InvalidInput

NO_LABELS = (
    "--labels: no duplicate labels given. A calibration says what share of candidate pairs "
    "staff marked as one problem, so it needs those marks: a CSV with columns child,parent "
    "(external ids of a duplicate report and of the report it repeats). Sources without such "
    "marks (a DansMaRue export has none) cannot be calibrated; the city's scores then stay "
    "an uncalibrated resemblance and its merges follow the rule alone."
)
BRIER = ("calibrated", "raw score", "current rule", "past share")


@click.group()
def dedupe() -> None:
    """Duplicate detection: what its scores mean on a city's labelled history."""


@dedupe.command("calibrate")
@click.argument("city_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@history_options("Past reports of the city (the labelled history), in one of the import formats.")
@click.option(
    "--labels",
    "labels_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV (gzipped or not) of the duplicates staff marked: the external id of each and "
    "of the report it repeats (see --label-columns).",
)
@click.option(
    "--label-columns",
    default="child,parent",
    show_default=True,
    help="The two columns of --labels: a duplicate's external id, then the id of the report "
    "it repeats (a Chicago 311 export: sr_number,parent_sr_number). Rows without a parent "
    "are not labels.",
)
@click.option(
    "--folds",
    type=click.IntRange(min=2, max=24),
    default=4,
    show_default=True,
    help="Equal periods the history is cut into; each after the first is measured with "
    "what was learned before it.",
)
@click.option(
    "--write",
    is_flag=True,
    help="Write the calibration and threshold learned on the whole history into "
    "CITY_DIR/city.yaml (dedupe.calibration). Without it, nothing is written.",
)
@fail_cleanly
def dedupe_calibrate(
    city_dir: Path,
    reports_path: Path,
    fmt: str,
    mapping_file: Path | None,
    encoding: str,
    labels_file: Path | None,
    label_columns: str,
    folds: int,
    write: bool,
) -> None:
    """Calibrate CITY_DIR's duplicate scores on labelled past reports: print the folds
    (each period measured with what was learned before it), the reliability table and the
    merge threshold chosen; with --write, keep them in city.yaml."""
    if labels_file is None:
        raise InvalidInput(NO_LABELS, field="labels")
    columns = [c.strip() for c in label_columns.split(",")]
    if len(columns) != 2 or not all(columns):
        raise InvalidInput(
            f"--label-columns: two column names separated by a comma, not {label_columns!r}",
            field="label_columns",
        )
    city = load_city(city_dir)
    edges = read_labels(labels_file, (columns[0], columns[1]))
    table, mapping = read_source(reports_path, fmt, mapping_file, encoding)
    hist = labelled_history(city, table, mapping, edges)
    result = calibrate(city, hist, folds)
    click.echo(
        f"{len(hist.reports):,} reports, {len(hist.pairs):,} candidate pairs, "
        f"{int(hist.pairs['label'].sum())} labelled duplicates; labelled (child, parent) "
        f"with both in the file: {len(hist.labelled)}"
    )
    _print(result, city.config.timezone)
    learned_on = f"{reports_path.name} + {labels_file.name} (voirie dedupe calibrate)"
    if write:
        path = write_calibration(city_dir, result.section(learned_on))
        click.echo(f"written: dedupe.calibration in {path}")
    else:
        click.echo("not written (add --write to keep it in city.yaml)")


def _period(start: pd.Timestamp, end: pd.Timestamp, timezone: str) -> str:
    """A fold's period in the city's local time, its end's date left out when it is the
    start's."""
    start, end = start.tz_convert(timezone), end.tz_convert(timezone)
    same_day = start.date() == end.date()
    return (
        f"{start:%Y-%m-%d %H:%M}–{end:%H:%M}"
        if same_day
        else f"{start:%Y-%m-%d %H:%M}–{end:%Y-%m-%d %H:%M}"
    )


def _print(result: Calibration, timezone: str) -> None:
    """The folds, the reliability table and the chosen threshold, as tables."""
    console = Console(width=160)
    folds = Table(title="walk-forward folds: learned on the past, measured on the period")
    for column in (
        "period",
        "past pairs (labelled)",
        "pairs (labelled)",
        "Brier: calibrated",
        "raw",
        "rule",
        "past share",
        "threshold",
        "labelled recall",
        "merges (unsupported)",
        "rule: recall",
        "merges (unsupported)",
    ):
        folds.add_column(column)
    for fold in result.folds:
        brier = [f"{fold.brier[k]:.4f}" if fold.brier else "–" for k in BRIER]
        folds.add_row(
            _period(fold.start, fold.end, timezone),
            f"{fold.past_pairs} ({fold.past_labelled})",
            f"{fold.pairs} ({fold.labelled})",
            *brier,
            f"{fold.threshold:.1%}",
            fold.chosen.recall(),
            f"{fold.chosen.merges} ({fold.chosen.unsupported})",
            fold.rule.recall(),
            f"{fold.rule.merges} ({fold.rule.unsupported})",
        )
    console.print(folds)
    reliability = Table(title="reliability: the folds' out-of-time forecasts, pooled")
    for column in ("likelihood", "pairs", "mean forecast", "labelled share", "rule joined"):
        reliability.add_column(column)
    for interval, row in result.reliability.iterrows():
        if row["pairs"]:
            reliability.add_row(
                f"{interval.left:.0%}–{min(interval.right, 1.0):.0%}",  # type: ignore[attr-defined]
                str(int(row["pairs"])),
                f"{row['forecast']:.1%}",
                f"{row['observed']:.1%} ({round(row['observed'] * row['pairs'])})",
                str(int(row["joined"])),
            )
    console.print(reliability)
    whole = result.whole
    click.echo(
        f"whole history: threshold {result.threshold:.1%} (highest labelled recall, then "
        f"fewest unsupported merges, then lowest), labelled recall {whole.recall()}, "
        f"merges {whole.merges}, unsupported {whole.unsupported}"
    )
    click.echo(
        "calibration: "
        + ", ".join(
            f"{s:g} → {p:.0%}" for s, p in zip(result.knots[0], result.knots[1], strict=True)
        )
    )
