"""Paris and Chicago in one store, for the tests of a multi-city deployment: both
cities' real samples, and per city an Open311 client key, a dispatcher token and a
dispatcher account."""

from __future__ import annotations

from pathlib import Path

from datafiles import SAMPLE_200
from staffworld import PASSWORD

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE, OPEN311
from voirie.ingest.sources import read_csv, read_open311_json
from voirie.services.auth import Role, issue_token
from voirie.services.pipeline import Pipeline
from voirie.services.staff_users import add_user
from voirie.settings import StoreSettings
from voirie.store import open_store

# 100 real Chicago requests of 2021-01-01 (scripts/chicago_to_open311.py).
CHICAGO_REQUESTS = Path(__file__).parents[1] / "data" / "chicago_100.json"
# lon/lat bounds each city's data lies in (the two are 7,000 km apart).
BOUNDS = {"paris": (2.2, 48.8, 2.5, 48.95), "chicago": (-88.0, 41.6, -87.5, 42.1)}
# Open311 windows holding each city's sample (at most 90 days each).
WINDOWS = {
    "paris": {"start_date": "2023-07-01T00:00:00Z", "end_date": "2023-09-01T00:00:00Z"},
    "chicago": {"start_date": "2020-12-31T00:00:00Z", "end_date": "2021-01-03T00:00:00Z"},
}
JURISDICTIONS = {"paris": "paris.fr", "chicago": "chicago.gov"}
GRAFFITI_CHICAGO = "GRAF"
LEXINGTON = {"lat": "41.871831", "long": "-87.679846"}  # a real Chicago request's place


def load_both(
    url: str, paris: City, paris_gis: CityGIS, chicago: City, chicago_gis: CityGIS
) -> tuple[dict[str, set[int]], dict[str, set[int]], dict[str, str], dict[str, str]]:
    """Both cities' samples, an Open311 client key, a dispatcher token and a dispatcher
    account (``dispatch``, ``PASSWORD``) for each, in the one store at ``url``."""
    store = open_store(StoreSettings(database_url=url, pool_min_size=1, pool_max_size=2))
    incidents: dict[str, set[int]] = {}
    reports: dict[str, set[int]] = {}
    keys: dict[str, str] = {}
    dispatchers: dict[str, str] = {}
    try:
        store.upgrade()
        for slug, city, gis, table, mapping in (
            ("paris", paris, paris_gis, read_csv(SAMPLE_200), DANSMARUE),
            ("chicago", chicago, chicago_gis, read_open311_json(CHICAGO_REQUESTS), OPEN311),
        ):
            pipeline = Pipeline(city, store, gis)
            assert pipeline.imports.import_table(table, mapping).imported > 50
            incidents[slug] = {int(i) for i in pipeline.reads.incidents()["incident_id"]}
            reports[slug] = {int(i) for i in pipeline.reads.reports()["report_id"]}
            j = city.jurisdiction_id
            keys[slug] = issue_token(store, j, "open311 client", Role.CLIENT)
            dispatchers[slug] = issue_token(store, j, "dispatcher", Role.DISPATCHER)
            add_user(store, j, "dispatch", Role.DISPATCHER, (), PASSWORD)
    finally:
        store.close()
    assert not incidents["paris"] & incidents["chicago"]
    return incidents, reports, keys, dispatchers
