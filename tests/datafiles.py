"""Paths of the real data files the tests read, and the columns the contract promises in
them (a module, not conftest: ``from conftest`` resolves to whichever conftest.py pytest
collected first)."""

from __future__ import annotations

from pathlib import Path

PARIS_REPORTS = Path(__file__).parents[1] / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
SAMPLE_200 = Path(__file__).parent / "data" / "dansmarue_200.csv"

REPORT_COLUMNS = (
    "report_id",
    "external_id",
    "service_code",
    "lon",
    "lat",
    "segment_id",
    "street_name",
    "snap_distance_m",
    "zone_arrondissement",
    "zone_quartier",
    "zone_espace_vert",
    "incident_id",
    "team",
    "status",
    "requested_at",
)
"""The columns DESIGN.md promises in every report row (exports, ``voirie export``), with
Paris's three zone layers: written out here, not imported, so that a drift fails."""
