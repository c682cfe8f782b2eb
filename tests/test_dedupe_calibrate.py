"""``voirie dedupe calibrate`` run as a user would, on a slice of the Chicago day with the
labels City staff gave it, and on Paris, which has none."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from clirunner import run_voirie

from voirie.city import City, DedupeCalibration, load_city
from voirie.cli.dedupe_calibration import (
    History,
    calibrate,
    labelled_history,
    read_labels,
    write_calibration,
)
from voirie.errors import InvalidInput
from voirie.ingest.mapping import OPEN311
from voirie.ingest.sources import read_open311_json

ROOT = Path(__file__).parents[1]
CHICAGO = ROOT / "cities" / "chicago"
PARIS = ROOT / "cities" / "paris"
REPORTS = ROOT / "tests" / "data" / "chicago_street_scale.json"
DANSMARUE = ROOT / "tests" / "data" / "dansmarue_200.csv"
# The staff labels (sr_number, parent_sr_number of the rows marked duplicate) of the
# reports in chicago_street_scale.json, from the 2021-01-01 Chicago 311 open data. Most
# parents are older than the day: children of one parent are still one problem.
LABELS = [
    ("SR21-00000247", "SR21-00000245"),
    ("SR21-00000573", "SR20-05726652"),
    ("SR21-00000576", "SR20-05726654"),
    ("SR21-00000577", "SR20-05726660"),
    ("SR21-00000582", "SR20-05726652"),
    ("SR21-00000586", "SR20-05726652"),
    ("SR21-00000723", "SR20-05720518"),
    ("SR21-00000926", "SR21-00000842"),
    ("SR21-00001061", "SR21-00001012"),
    ("SR21-00001281", "SR20-05720518"),
    ("SR21-00001329", "SR21-00001257"),
    ("SR21-00001415", "SR20-05725206"),
    ("SR21-00001527", "SR20-05724024"),
    ("SR21-00002077", "SR20-05721088"),
    ("SR21-00002495", "SR20-05726717"),
    ("SR21-00002726", "SR20-05727311"),
    ("SR21-00002870", "SR20-05728133"),
]


def _labels(folder: Path, rows: list[tuple[str, str]] = LABELS) -> Path:
    path = folder / "labels.csv"
    pd.DataFrame(rows, columns=["child", "parent"]).to_csv(path, index=False)
    return path


def _copy(city: Path, folder: Path) -> Path:
    target = folder / city.name
    shutil.copytree(city, target, ignore=shutil.ignore_patterns("reports"))
    return target


def _calibrate(folder: Path, city: Path, *extra: str) -> tuple[int, str, str]:
    result = run_voirie(folder, "dedupe", "calibrate", str(city), "--reports", str(REPORTS), *extra)
    return result.returncode, result.stdout, result.stderr


@pytest.fixture(scope="module")
def history() -> tuple[City, History]:
    """The slice imported once, with its candidate pairs and labels."""
    city = load_city(CHICAGO)
    return city, labelled_history(city, read_open311_json(REPORTS), OPEN311, LABELS)


def test_prints_the_folds_the_reliability_and_the_threshold_without_writing(
    tmp_path: Path,
) -> None:
    city = _copy(CHICAGO, tmp_path)
    before = (city / "city.yaml").read_bytes()
    code, out, err = _calibrate(tmp_path, city, "--labels", str(_labels(tmp_path)))
    assert code == 0, err
    assert "178 reports" in out
    assert "labelled (child, parent) with both in the file: 4" in out
    assert "walk-forward folds" in out
    assert "reliability" in out
    assert "whole history: threshold" in out
    assert "not written" in out
    assert (city / "city.yaml").read_bytes() == before


def test_write_replaces_the_calibration_and_keeps_every_other_line(tmp_path: Path) -> None:
    city = _copy(CHICAGO, tmp_path)
    before = (city / "city.yaml").read_text(encoding="utf-8")
    code, out, err = _calibrate(tmp_path, city, "--labels", str(_labels(tmp_path)), "--write")
    assert code == 0, err
    assert "written: dedupe.calibration" in out
    after = (city / "city.yaml").read_text(encoding="utf-8")
    calibration = load_city(city).config.dedupe.calibration
    assert calibration is not None
    assert (
        calibration.learned_on == "chicago_street_scale.json + labels.csv (voirie dedupe calibrate)"
    )
    assert calibration != load_city(CHICAGO).config.dedupe.calibration
    # Only the calibration block changed: comments and the other sections are as they were.
    kept = [line for line in before.splitlines() if not line.startswith("    ")]
    assert [line for line in after.splitlines() if not line.startswith("    ")] == kept


def test_write_adds_a_calibration_to_a_city_without_one(tmp_path: Path) -> None:
    city = _copy(PARIS, tmp_path)
    before = (city / "city.yaml").read_text(encoding="utf-8")
    section = DedupeCalibration(
        scores=[0.2, 0.9], likelihoods=[0.1, 0.8], threshold=0.5, learned_on="a: test"
    )
    write_calibration(city, section)
    after = (city / "city.yaml").read_text(encoding="utf-8")
    assert load_city(city).config.dedupe.calibration == section
    assert load_city(city).config.dedupe.same_street_factor == 2.0
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    assert added == [
        "  calibration:",
        "    scores: [0.2, 0.9]",
        "    likelihoods: [0.1, 0.8]",
        "    threshold: 0.5",
        "    learned_on: 'a: test'",
    ]


def test_a_one_line_dedupe_section_is_refused_and_left_alone(tmp_path: Path) -> None:
    city = _copy(PARIS, tmp_path)
    path = city / "city.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    text = path.read_text(encoding="utf-8").split("\ndedupe:\n")[0]
    path.write_text(text + f"\ndedupe: {{distance: {doc['dedupe']['distance']}}}\n")
    before = path.read_bytes()
    section = DedupeCalibration(scores=[0, 1], likelihoods=[0, 1], learned_on="x")
    with pytest.raises(InvalidInput, match="one line"):
        write_calibration(city, section)
    assert path.read_bytes() == before


def test_paris_has_no_labels_and_is_told_so(tmp_path: Path) -> None:
    result = run_voirie(
        tmp_path,
        "dedupe",
        "calibrate",
        str(PARIS),
        "--reports",
        str(DANSMARUE),
        "--format",
        "dansmarue",
    )
    assert result.returncode == 2
    assert "--labels: no duplicate labels given" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("sr,parent\nSR21-00000247,SR21-00000245\n", "no column child"),
        ("child,parent\n,SR21-00000245\n", "row 2 of labels.csv has a parent but no child"),
        ("child,parent\nSR99-1,SR99-2\n", "none of its children is a report of --reports"),
    ],
)
def test_bad_labels_name_the_field_and_the_reason(
    tmp_path: Path, content: str, reason: str
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text(content, encoding="utf-8")
    code, out, err = _calibrate(tmp_path, CHICAGO, "--labels", str(labels))
    assert code == 2
    assert "--labels" in out + err
    assert reason in out + err


def test_children_of_one_parent_outside_the_file_are_one_problem(
    history: tuple[City, History],
) -> None:
    _, hist = history
    ids = hist.reports["external_id"].astype(str).to_numpy()
    pairs = hist.pairs.assign(a=ids[hist.pairs["report"]], b=ids[hist.pairs["earlier"]])
    labelled = {frozenset((a, b)) for a, b in pairs.loc[pairs["label"] == 1, ["a", "b"]].to_numpy()}
    # SR21-00000582 and SR21-00000586 both repeat SR20-05726652, a request of the day before.
    assert frozenset(("SR21-00000586", "SR21-00000582")) in labelled
    assert frozenset(("SR21-00000247", "SR21-00000245")) in labelled
    unlabelled = pairs[pairs["label"] == 0]
    assert not any(
        {a, b} <= {"SR21-00000573", "SR21-00000582", "SR21-00000586"}
        for a, b in unlabelled[["a", "b"]].to_numpy()
    )


def test_each_fold_learns_on_its_past_only(history: tuple[City, History]) -> None:
    city, hist = history
    result = calibrate(city, hist, folds=4)
    assert [fold.start for fold in result.folds] == sorted(fold.start for fold in result.folds)
    for fold in result.folds:
        assert fold.past_pairs == int((hist.pairs["at"] < fold.start).sum())
        inside = (hist.pairs["at"] >= fold.start) & (hist.pairs["at"] < fold.end)
        assert fold.pairs == int(inside.sum())
        assert fold.labelled == int(hist.pairs.loc[inside, "label"].sum())
    assert sum(int(row["pairs"]) for _, row in result.reliability.iterrows()) == sum(
        fold.pairs for fold in result.folds
    )
    # The whole history's replay keeps the labelled pairs the rule keeps.
    assert result.whole.pairs == len(hist.labelled) == 4
    assert 0.0 <= result.threshold <= 1.0


def test_a_source_export_is_read_with_its_own_columns(tmp_path: Path) -> None:
    """Chicago 311's export lists every request; only duplicates have a parent."""
    rows = [(c, p, "True") for c, p in LABELS] + [("SR21-00000245", "", "False")]
    export = tmp_path / "export.csv"
    frame = pd.DataFrame(rows, columns=["sr_number", "parent_sr_number", "duplicate"])
    frame.to_csv(export, index=False)
    assert read_labels(export, ("sr_number", "parent_sr_number")) == LABELS
    code, out, err = _calibrate(
        tmp_path, CHICAGO, "--labels", str(export), "--label-columns", "sr_number,parent_sr_number"
    )
    assert code == 0, err
    assert "labelled (child, parent) with both in the file: 4" in out


def test_read_labels_strips_blanks(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("child,parent\n SR21-1 , SR21-2\n", encoding="utf-8")
    assert read_labels(path) == [("SR21-1", "SR21-2")]
