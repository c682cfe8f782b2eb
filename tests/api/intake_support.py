"""Writes made beside a test client's app: what changes a public read's answer without
being a request the app answers (its caches must notice them all the same)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from voirie.model import Report
from voirie.services.pipeline import Pipeline
from voirie.store.selection import Selection


def pipeline_of(client: TestClient) -> Pipeline:
    """The pipeline the client's app serves."""
    pipeline: Pipeline = client.app.state.pipeline  # type: ignore[attr-defined]
    return pipeline


def report_nearby(pipeline: Pipeline, external_id: str) -> None:
    """A new report, through the intake, near the point the tests' nearby reads ask about
    (of the first stored report's service)."""
    service = str(pipeline.reads.reports(Selection(limit=1))["service_code"].iloc[0])
    pipeline.intake.submit(
        Report(
            external_id=external_id,
            source="test",
            service_code=service,
            lon=2.3633,
            lat=48.8736,
            requested_at=datetime(2024, 3, 1, 9, 30, tzinfo=UTC),
            description="Dépôt sauvage devant le 12",
        )
    )
