"""``voirie rules check|test|learn`` run as a user would."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from clirunner import run_voirie

from voirie.city import load_city

ROOT = Path(__file__).parents[2]
PARIS = ROOT / "cities" / "paris"
DATA = ROOT / "tests" / "data" / "dansmarue_200.csv"


def _copy_paris(tmp_path: Path) -> Path:
    target = tmp_path / "paris"
    shutil.copytree(PARIS, target, ignore=shutil.ignore_patterns("reports"))
    return target


def _edit(city_dir: Path, change: Any) -> None:
    path = city_dir / "city.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_check_shipped_paris_is_ok(tmp_path: Path) -> None:
    result = run_voirie(tmp_path, "rules", "check", str(PARIS))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")
    assert "warning" not in result.stderr


def test_check_warns_about_a_rule_that_never_fires(tmp_path: Path) -> None:
    city_dir = _copy_paris(tmp_path)

    def duplicate(doc: dict[str, Any]) -> None:
        rule = dict(doc["routing"]["rules"][0], id="svc-shadowed")
        doc["routing"]["rules"].append(rule)

    _edit(city_dir, duplicate)
    result = run_voirie(tmp_path, "rules", "check", str(city_dir))
    assert result.returncode == 0, result.stderr
    assert "svc-shadowed" in result.stderr
    assert "never fires" in result.stderr


def test_check_exits_1_on_an_unknown_team(tmp_path: Path) -> None:
    city_dir = _copy_paris(tmp_path)
    _edit(city_dir, lambda doc: doc["routing"]["rules"][0].update(team="no-such-team"))
    result = run_voirie(tmp_path, "rules", "check", str(city_dir))
    assert result.returncode == 1
    assert "no-such-team" in result.stderr
    assert "city.yaml" in result.stderr


def test_test_prints_the_figures(tmp_path: Path) -> None:
    result = run_voirie(
        tmp_path,
        "rules",
        "test",
        str(PARIS),
        "--reports",
        str(DATA),
        "--truth-column",
        "intervenant",
        "--since",
        "2023-07-01",
    )
    assert result.returncode == 0, result.stderr
    for label in ("accuracy", "wrong team", "triage", "rules that fired"):
        assert label in result.stdout


def test_test_rejects_a_missing_truth_column(tmp_path: Path) -> None:
    result = run_voirie(
        tmp_path, "rules", "test", str(PARIS), "--reports", str(DATA), "--truth-column", "nope"
    )
    assert result.returncode == 2
    assert "nope" in result.stderr


@pytest.mark.parametrize("min_support", ["5", "1"])
def test_learned_draft_loads_in_a_city(tmp_path: Path, min_support: str) -> None:
    draft = tmp_path / "draft.yaml"
    result = run_voirie(
        tmp_path,
        "rules",
        "learn",
        "--city",
        str(PARIS),
        "--reports",
        str(DATA),
        "--truth-column",
        "intervenant",
        "-o",
        str(draft),
        "--min-support",
        min_support,
    )
    assert result.returncode == 0, result.stderr
    text = draft.read_text(encoding="utf-8")
    assert "confidence" in text
    rules = yaml.safe_load(text)
    assert rules
    city_dir = _copy_paris(tmp_path)
    _edit(city_dir, lambda doc: doc["routing"].update(rules=rules))
    city = load_city(city_dir)
    assert len(city.config.routing.rules) == len(rules)
    check = run_voirie(tmp_path, "rules", "check", str(city_dir))
    assert check.returncode == 0, check.stderr


def test_check_exits_1_on_a_rule_naming_a_missing_layer(tmp_path: Path) -> None:
    city_dir = _copy_paris(tmp_path)
    _edit(city_dir, lambda doc: doc["routing"]["rules"][0].update(zones={"parcs": "*"}))
    result = run_voirie(tmp_path, "rules", "check", str(city_dir))
    assert result.returncode == 1
    assert "routing.rules[0]" in result.stderr
    assert "zones.parcs: no zone layer named 'parcs'" in result.stderr
    assert str(city_dir / "city.yaml") in result.stderr


def test_test_learns_on_early_months_and_compares_with_the_baseline(tmp_path: Path) -> None:
    result = run_voirie(
        tmp_path,
        "rules",
        "test",
        str(PARIS),
        "--reports",
        str(DATA),
        "--truth-column",
        "intervenant",
        "--learn-until",
        "2023-12-31",
    )
    assert result.returncode == 0, result.stderr
    assert "learned from reports up to 2023-12-31" in result.stdout
    assert "baseline" in result.stdout
    assert "learned" in result.stdout


def test_evaluate_walks_forward_month_by_month(tmp_path: Path) -> None:
    result = run_voirie(
        tmp_path,
        "rules",
        "evaluate",
        str(PARIS),
        "--reports",
        str(DATA),
        "--truth-column",
        "intervenant",
        "--warmup",
        "1",
    )
    assert result.returncode == 0, result.stderr
    assert "walk-forward" in result.stdout
    # The sample holds 2023-07 and 2023-08: July is only learned from, August is tested.
    assert "2023-07" not in result.stdout
    assert "2023-08" in result.stdout
    again = run_voirie(
        tmp_path,
        "rules",
        "evaluate",
        str(PARIS),
        "--reports",
        str(DATA),
        "--truth-column",
        "intervenant",
    )
    assert again.returncode == 2
    assert "no month to test" in again.stderr


def test_proposals_lists_what_reassignments_propose(tmp_path: Path) -> None:
    result = run_voirie(tmp_path, "rules", "proposals", "--city", str(PARIS), "-o", "p.yaml")
    assert result.returncode == 0, result.stderr
    assert "0 rules proposed by dispatchers' reassignments" in result.stdout
    assert yaml.safe_load((tmp_path / "p.yaml").read_text(encoding="utf-8")) == []
