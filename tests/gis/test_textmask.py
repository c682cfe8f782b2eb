"""House numbers masked in what citizens write (``voirie.gis.textmask``): descriptions as
DansMaRue reporters write them, on the real addresses of the Paris sample, and the numbers
that are not house numbers (quantities, dates, times, distances) left alone."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import pytest

from voirie.gis.textmask import MASK, mask_house_numbers, mask_texts

SAMPLE = Path(__file__).parents[1] / "data" / "dansmarue_200.csv"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Tag devant le 12 rue Oberkampf", "Tag devant le … rue Oberkampf"),
        (
            "Graffitis sur la façade du 126 Rue Oberkampf, au niveau de la porte cochère",
            "Graffitis sur la façade du … Rue Oberkampf, au niveau de la porte cochère",
        ),
        (
            "Affiches collées au 12 bis, avenue Jean Jaurès",
            "Affiches collées au …, avenue Jean Jaurès",
        ),
        (
            "12, rue de la Roquette : tags sur le rideau",
            "…, rue de la Roquette : tags sur le rideau",
        ),
        ("au 40 de la rue de Rivoli, côté pair", "au … de la rue de Rivoli, côté pair"),
        (
            "entre le 12-14 boulevard Voltaire et le 3 bis rue Saint-Maur",
            "entre le … boulevard Voltaire et le … rue Saint-Maur",
        ),
        ("tags aux 12, 14 et 16 rue de Charonne", "tags aux … rue de Charonne"),
        ("devant le n° 45 de la rue des Pyrénées", "devant le n° … de la rue des Pyrénées"),
        ("au numéro 7, impasse Truillot", "au numéro …, impasse Truillot"),
        ("157f Quai de Valmy", "… Quai de Valmy"),
        ("3ter av. Foch et 12 B bd. Magenta", "… av. Foch et … bd. Magenta"),
        ("sur le pont, au 10 place de la République", "sur le pont, au … place de la République"),
        (
            "Tag outside 1234 N Clark St. near the bus stop",
            "Tag outside … N Clark St. near the bus stop",
        ),
        ("graffiti at no. 7 Baker Street", "graffiti at no. … Baker Street"),
        ("flyers on 1600 Pennsylvania Avenue", "flyers on … Pennsylvania Avenue"),
    ],
)
def test_house_numbers_are_masked_and_streets_kept(text: str, masked: str) -> None:
    assert mask_house_numbers(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "2 poubelles renversées depuis 3 jours",
        "Signalé le 12/03/2024 à 14h30, toujours là le 15 mars",
        "vers 8:30 ce matin, 3 sacs et 2 cartons",
        "2 rues plus loin, 1 place de parking occupée, 3 passages piétons effacés",
        "1 place de livraison, 1 passage piéton, 1 voie de bus bloquée",
        "à 50m de la rue, depuis 8h",
        "environ 150 m de tags, surface supérieure à 1 m²",
        "Mobilier d'accroche 2 roues détérioré",
        "Affiches A4 ou A3 à traiter par la DT",
        "1 cour intérieure sale",
        "graffiti on 2 walls, 3 doors",
        "",
    ],
)
def test_other_numbers_stay(text: str) -> None:
    assert mask_house_numbers(text) == text


def test_every_house_numbered_address_of_the_paris_sample_is_masked() -> None:
    """A reporter repeating their report's own address (the 196 house-numbered DansMaRue
    addresses of the sample, suffixes and oddities included): no digit is left before the
    street, whose name stays."""
    with SAMPLE.open(encoding="utf-8") as rows:
        streets = [row["adresse"].split(",")[0] for row in csv.DictReader(rows)]
    numbered = [s for s in streets if s[:1].isdigit()]
    assert len(numbered) > 150
    for street in numbered:
        masked = " ".join(mask_house_numbers(f"Tag devant le {street}, côté rue").split())
        name = re.sub(
            r"^(?:\d\w*\s+(?:(?:bis|ter|[A-D])\s+)?)+", "", street
        )  # the street without its number
        assert masked == " ".join(f"Tag devant le {MASK} {name}, côté rue".split()), street


def test_columns_keep_missing_values() -> None:
    nan = float("nan")
    out = mask_texts(["au 3 rue X", None, nan, "2 sacs"])
    assert out[:2] == ["au … rue X", None]
    assert isinstance(out[2], float)
    assert math.isnan(out[2])
    assert out[3] == "2 sacs"
