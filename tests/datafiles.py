"""Paths of the real data files the tests read (a module, not conftest: ``from conftest``
resolves to whichever conftest.py pytest collected first)."""

from __future__ import annotations

from pathlib import Path

PARIS_REPORTS = Path(__file__).parents[1] / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
SAMPLE_200 = Path(__file__).parent / "data" / "dansmarue_200.csv"
