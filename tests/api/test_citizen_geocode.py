"""Address search against the Paris street layer (what the citizens' search boxes and
Open311 ``address_string`` use): abbreviations, accents, one typo, words begun while
typing, and house numbers learned from the reports already stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import Point

from voirie.api.app import create_app
from voirie.city import City, load_city
from voirie.gis.enrich import CityGIS
from voirie.gis.streetsearch import geocode_street
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import RawTable, read_csv
from voirie.services.pipeline import Pipeline
from voirie.settings import CitySettings, StoreSettings
from voirie.store.sqlite import SqliteStore

CHICAGO = Path(__file__).parents[2] / "cities" / "chicago"
REPORTS = Path(__file__).parents[2] / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"


@pytest.mark.parametrize(
    ("query", "street"),
    [
        ("91 Quai de Valmy, 75010 PARIS", "Quai de Valmy"),
        ("bd voltaire", "Boulevard Voltaire"),
        ("12 bis Av. du Général Leclerc, 75014 Paris", "Avenue du Général Leclerc"),
        ("RUE OBERKAMPF", "Rue Oberkampf"),
        ("r. oberkampf", "Rue Oberkampf"),
        ("rue de rivolli", "Rue de Rivoli"),  # one typo
        ("boulevard voltair", "Boulevard Voltaire"),  # a letter missing
        ("avenue du general lecler", "Avenue du Général Leclerc"),
    ],
)
def test_an_address_finds_its_street(paris_gis: CityGIS, query: str, street: str) -> None:
    best = geocode_street(paris_gis, query)[0]
    assert (best.street_name, best.exact, best.precision) == (street, True, "street")
    # The point lies on the street itself (within a metre of one of its segments).
    x, y = paris_gis.project(np.array([best.lon]), np.array([best.lat]))
    segments = paris_gis.streets[paris_gis.streets["street_name"] == street]
    assert segments.distance(Point(x[0], y[0])).min() < 1


def test_a_word_offers_the_streets_containing_it(paris_gis: CityGIS) -> None:
    matches = geocode_street(paris_gis, "rivoli", limit=5)
    assert [m.exact for m in matches] == [False] * len(matches)
    assert "Rue de Rivoli" in [m.street_name for m in matches]
    assert matches[0].street_name == "Rue de Rivoli"  # the longest street first


def test_suggestions_while_typing(paris_gis: CityGIS) -> None:
    """A word begun is the start of a street's word; typo-free streets rank first."""
    names = [m.street_name for m in geocode_street(paris_gis, "rue de riv", limit=5)]
    assert names[0] == "Rue de Rivoli"
    assert all(n.startswith("Rue ") for n in names)
    assert geocode_street(paris_gis, "bd volt")[0].street_name == "Boulevard Voltaire"


@pytest.mark.parametrize("query", ["Allée des Nuages Roses", "75011", "  ", "rue xq"])
def test_nothing_matches(paris_gis: CityGIS, query: str) -> None:
    assert geocode_street(paris_gis, query) == []


def test_a_short_word_is_not_corrected(paris_gis: CityGIS) -> None:
    """One edit in a word of three letters would match too much: "ruf" is not "rue"."""
    assert geocode_street(paris_gis, "ruf oberkampf") == []


def test_a_city_without_street_layer_finds_nothing() -> None:
    assert geocode_street(CityGIS(load_city(CHICAGO)), "Michigan Avenue") == []


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, paris: City, paris_gis: CityGIS
) -> Iterator[TestClient]:
    """The app on a store holding Quai de Valmy's reports, but none at number 91."""
    raw = read_csv(REPORTS)
    valmy = raw.rows["adresse"].str.contains("Quai de Valmy", case=False, na=False)
    sample = raw.rows[valmy & ~raw.rows["adresse"].str.startswith("91 ")]
    path = tmp_path_factory.mktemp("geocode") / "voirie.gpkg"
    store = SqliteStore(path)
    store.upgrade()
    Pipeline(paris, store, paris_gis).imports.import_table(
        RawTable(sample.reset_index(drop=True), raw.columns), DANSMARUE
    )
    app = create_app(StoreSettings(database_url=f"sqlite:///{path}"), CitySettings(city="paris"))
    with TestClient(app) as test_client:
        yield test_client
    store.close()


def test_the_api_lands_on_the_house_number(client: TestClient, paris_gis: CityGIS) -> None:
    """``91 quai de Valmy`` lands within 50 m of where its reports were placed, though no
    stored report is at 91: between its stored neighbours, not mid-quai."""
    raw = read_csv(REPORTS).rows
    at_91 = raw[raw["adresse"].str.startswith("91 Quai de Valmy")]
    rx, ry = paris_gis.project(
        pd.to_numeric(at_91["longitude"]).to_numpy(), pd.to_numeric(at_91["latitude"]).to_numpy()
    )
    response = client.get("/api/v1/geocode", params={"q": "91 quai de valmy"})
    assert response.status_code == 200, response.text
    best = response.json()["matches"][0]
    assert (best["street_name"], best["house_number"], best["precision"]) == (
        "Quai de Valmy",
        91,
        "interpolated",
    )
    x, y = paris_gis.project(np.array([best["lon"]]), np.array([best["lat"]]))
    assert np.hypot(rx - x[0], ry - y[0]).max() < 50
    # The street alone (no number) is far from there: mid-quai.
    street = client.get("/api/v1/geocode", params={"q": "quai de valmy"}).json()["matches"][0]
    assert street["precision"] == "street"
    sx, sy = paris_gis.project(np.array([street["lon"]]), np.array([street["lat"]]))
    assert np.hypot(rx - sx[0], ry - sy[0]).min() > 200


def test_the_api_forgives_a_typo_and_names_the_field(client: TestClient) -> None:
    found = client.get("/api/v1/geocode", params={"q": "rue de rivolli"})
    assert found.json()["matches"][0]["street_name"] == "Rue de Rivoli"
    nothing = client.get("/api/v1/geocode", params={"q": "Allée des Nuages Roses"})
    assert (nothing.status_code, nothing.json()["field"]) == (404, "q")
