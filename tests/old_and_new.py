"""Two graffiti reports imported in one batch, one from the sample's past and one of today,
far apart: what an import does with a city's history (no notice, no escalation) and what
it does with news. Both are real DansMaRue rows of the sample, graffiti on street
furniture (``GRAFFITI``), with their dates, ids and places rewritten."""

from __future__ import annotations

from datetime import UTC, datetime

from datafiles import SAMPLE_200

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import RawTable, read_csv
from voirie.services.pipeline import Pipeline
from voirie.store import Store

GRAFFITI = "graffitis-tags-a-914fea"  # graffiti on street furniture: the service of the rows


def import_old_and_new(city: City, store: Store, gis: CityGIS) -> tuple[int, int]:
    """Import a report of 2023-07-19 (``OLD-1``) and one of today (``NEW-1``); the ids of
    their incidents (two: the reports are 2 km apart)."""
    rows = read_csv(SAMPLE_200).rows
    first = rows.index[rows["soustype"].str.startswith("Affiches, autocollants ou graffitis")][0]
    graffiti = rows.loc[[first, first]].copy()
    graffiti["datedecl"] = ["2023-07-19", datetime.now(UTC).date().isoformat()]
    graffiti["id_dmr"] = ["OLD-1", "NEW-1"]
    graffiti["latitude"] = ["48.8661", "48.8500"]
    graffiti["longitude"] = ["2.3800", "2.3300"]
    summary = Pipeline(city, store, gis).imports.import_table(
        RawTable(graffiti.reset_index(drop=True), list(rows.columns)), DANSMARUE
    )
    assert summary.imported == 2
    incident_of = store.read("reports", city.jurisdiction_id).set_index("external_id")[
        "incident_id"
    ]
    old, new = int(incident_of["OLD-1"]), int(incident_of["NEW-1"])
    assert old != new
    return old, new
