"""Street search against the Paris street layer (what the citizen page's address box uses)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import Point

from voirie.city import load_city
from voirie.gis.enrich import CityGIS
from voirie.gis.streetsearch import geocode_street

CHICAGO = Path(__file__).parents[2] / "cities" / "chicago"


@pytest.mark.parametrize(
    ("query", "street"),
    [
        ("91 Quai de Valmy, 75010 PARIS", "Quai de Valmy"),
        ("bd voltaire", "Boulevard Voltaire"),
        ("12 bis Av. du Général Leclerc, 75014 Paris", "Avenue du Général Leclerc"),
        ("RUE OBERKAMPF", "Rue Oberkampf"),
    ],
)
def test_an_address_finds_its_street(paris_gis: CityGIS, query: str, street: str) -> None:
    best = geocode_street(paris_gis, query)[0]
    assert (best.street_name, best.exact) == (street, True)
    # The point lies on the street itself (within a metre of one of its segments).
    x, y = paris_gis.project(np.array([best.lon]), np.array([best.lat]))
    segments = paris_gis.streets[paris_gis.streets["street_name"] == street]
    assert segments.distance(Point(x[0], y[0])).min() < 1


def test_a_word_offers_the_streets_containing_it(paris_gis: CityGIS) -> None:
    matches = geocode_street(paris_gis, "rivoli", limit=5)
    assert [m.exact for m in matches] == [False] * len(matches)
    assert "Rue de Rivoli" in [m.street_name for m in matches]
    assert matches[0].street_name == "Rue de Rivoli"  # the longest street first


@pytest.mark.parametrize("query", ["Allée des Nuages Roses", "75011", "  "])
def test_nothing_matches(paris_gis: CityGIS, query: str) -> None:
    assert geocode_street(paris_gis, query) == []


def test_a_city_without_street_layer_finds_nothing() -> None:
    assert geocode_street(CityGIS(load_city(CHICAGO)), "Michigan Avenue") == []
