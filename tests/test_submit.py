"""One report through ``Intake.submit``: the API's path, the same code as a bulk import."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from voirie.city import City
from voirie.errors import IdempotencyKeyReused, InvalidInput
from voirie.gis.enrich import CityGIS
from voirie.model import Contact, Report
from voirie.services.intake import Retry
from voirie.services.pipeline import Pipeline
from voirie.store.sqlite import SqliteStore

# A real DansMaRue report: cardboard left at 91 Quai de Valmy, 75010.
SERVICE = "Cartons ou sacs de déchets ménagers"


def _report(paris: City, external_id: str, lon: float, lat: float) -> Report:
    return Report(
        external_id=external_id,
        source="app",
        lon=lon,
        lat=lat,
        service_code=paris.services_by_name[SERVICE.casefold()].code,
        requested_at=datetime(2024, 3, 4, 9, 30, tzinfo=UTC),
        address="91 Quai de Valmy, 75010 PARIS",
        contact=Contact(email="habitant@example.org"),
    )


@pytest.fixture
def pipeline(tmp_path: Path, paris: City, paris_gis: CityGIS) -> Iterator[Pipeline]:
    store = SqliteStore(tmp_path / "s.gpkg")
    store.upgrade()
    yield Pipeline(paris, store, paris_gis)
    store.close()


def test_submit_opens_attaches_and_is_idempotent(pipeline: Pipeline, paris: City) -> None:
    store = pipeline.store
    first = pipeline.intake.submit(_report(paris, "a-1", 2.363114595220107, 48.87350463761569))
    assert not first.attached
    # Same problem reported 5 m away by someone else: it joins the incident.
    second = pipeline.intake.submit(_report(paris, "a-2", 2.363170, 48.873530))
    assert second.attached
    assert second.incident_id == first.incident_id
    again = pipeline.intake.submit(_report(paris, "a-1", 2.363114595220107, 48.87350463761569))
    assert again.already_stored
    assert (again.report_id, again.incident_id) == (first.report_id, first.incident_id)
    assert store.count("reports", paris.jurisdiction_id) == 2
    layer = pipeline.reads.reports()
    assert "habitant@example.org" not in layer.drop(columns="geometry").to_csv()


def test_submit_refuses_a_point_outside_the_city(pipeline: Pipeline, paris: City) -> None:
    with pytest.raises(InvalidInput, match="outside the territory of Paris") as caught:
        pipeline.intake.submit(_report(paris, "atlantic", -8.0, 46.0))
    assert caught.value.field == "lat/lon"
    assert pipeline.store.count("reports", paris.jurisdiction_id) == 0


def test_a_retry_is_recognised_by_its_key_or_its_content_and_answered_as_first(
    pipeline: Pipeline, paris: City
) -> None:
    """Open311's idempotency, in intake: one stored report per retried request."""
    here = (2.363114595220107, 48.87350463761569)
    keyed = Retry("client-a", "key-1", 600)
    first = pipeline.intake.submit(_report(paris, "", *here), keyed)
    assert first.external_id.startswith("k-")
    assert not first.already_stored
    # The same key and submission: the first answer again, nothing stored.
    retried = pipeline.intake.submit(_report(paris, "", *here), keyed)
    assert retried == replace(first, already_stored=True)
    # The same key with other words is another request under a reused key: refused.
    with pytest.raises(IdempotencyKeyReused, match="Idempotency-Key"):
        pipeline.intake.submit(replace(_report(paris, "", *here), description="encore"), keyed)
    # No key: the same client, contact, place and words within the window are the same
    # request.
    by_content = Retry("client-a", None, 600)
    second = pipeline.intake.submit(_report(paris, "", 2.363170, 48.873530), by_content)
    assert second.external_id.startswith("f-")
    assert second.attached
    again = pipeline.intake.submit(_report(paris, "", 2.363170, 48.873530), by_content)
    assert again == replace(second, already_stored=True)
    # Another client is another request.
    other = pipeline.intake.submit(_report(paris, "", *here), Retry("client-b", None, 600))
    assert not other.already_stored
    assert pipeline.store.count("reports", paris.jurisdiction_id) == 3
