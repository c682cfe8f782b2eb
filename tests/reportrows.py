"""A raw table's reports as the per-report path takes them (``Intake.submit``): the tests
that compare it with the bulk path (``Importer.import_table``) feed both the same rows."""

from __future__ import annotations

from voirie.city import City
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import RawTable
from voirie.ingest.validate import validate
from voirie.model import Report


def submitted_reports(table: RawTable, city: City) -> list[Report]:
    """The table's valid catalogued DansMaRue reports as ``Report``s, in the order an
    import takes them (time, then row)."""
    valid = validate(table, DANSMARUE, city).reports
    valid = valid[valid["service_code"].isin(list(city.services))]
    valid = valid.sort_values(["requested_at", "row"], kind="stable")
    return [
        Report(
            external_id=row.external_id,
            source=row.source,
            service_code=row.service_code,
            lon=row.lon,
            lat=row.lat,
            requested_at=row.requested_at.to_pydatetime(),
            address=row.address,
            channel=row.channel,
        )
        for row in valid.itertuples()
    ]
