"""Street-name keys and the street of a postal address."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from voirie.gis.streetnames import (
    language_of,
    normalize_many,
    normalize_street,
    street_from_address,
    streets_from_addresses,
)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Bd de Bonne Nouvelle", "Boulevard de Bonne-Nouvelle"),
        ("Rue de l'Église", "RUE DE L EGLISE"),
        ("Rue de l’Église", "rue de l'eglise"),
        ("Fg Saint-Antoine", "Faubourg Saint-Antoine"),
        ("Rue du Fg St-Antoine", "Rue du Faubourg Saint-Antoine"),
        ("R. Ste-Croix de la Bretonnerie", "Rue Sainte-Croix-de-la-Bretonnerie"),
        ("Av. du Gal Leclerc", "Avenue du Général Leclerc"),
        ("Pl. de la République", "Place de la République"),
        ("Imp. des Jardiniers", "Impasse des Jardiniers"),
        ("Pas. Brady", "Passage Brady"),
        ("Sq. d'Anvers", "Square d'Anvers"),
        ("  Quai   de  Valmy ", "quai de valmy"),
        ("Cité Riverin", "CITE RIVERIN"),
        ("Allée des Cygnes", "allee des cygnes"),
        ("Place du Général Kœnig", "Place du General Koenig"),
    ],
)
def test_same_street_same_key(a: str, b: str) -> None:
    assert normalize_street(a) == normalize_street(b)


def test_keys_are_plain_words() -> None:
    assert normalize_street("Boulevard de Bonne-Nouvelle") == "boulevard bonne nouvelle"
    assert normalize_street("Rue de l'Église") == "rue eglise"
    assert normalize_street("   ") == ""


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Rue de Louvois", "Rue Louvois"),
        ("Rue de la Vrillière", "Rue La Vrillière"),
        ("Passage de Abbesses", "Passage des Abbesses"),
        ("Rue des 4 Frères Peignot", "Rue des Quatre-Frères-Peignot"),
        ("Avenue Pierre 1er de Serbie", "Avenue Pierre Ier de Serbie"),
        ("Rue Albert Premier", "Rue Albert 1er"),
        ("Bv Voltaire", "Boulevard Voltaire"),
    ],
)
def test_particles_and_numbers_are_written_one_way(a: str, b: str) -> None:
    assert normalize_street(a) == normalize_street(b)


def test_r_is_rue_only_as_the_first_word() -> None:
    assert normalize_street("R de Rivoli") == "rue rivoli"
    assert normalize_street("Rue Jean R Bloch") == "rue jean r bloch"
    assert normalize_street("Villa St Michel") == "villa saint michel"


def test_different_streets_differ() -> None:
    assert normalize_street("Rue Saint-Denis") != normalize_street("Rue du Faubourg Saint-Denis")
    assert normalize_street("Rue de la Roquette") != normalize_street("Rue de la Raquette")


@pytest.mark.parametrize(
    ("address", "street"),
    [
        ("126 Rue Oberkampf, 75011 PARIS", "rue oberkampf"),
        ("12 bis Av. du Général Leclerc, 75014 PARIS", "avenue general leclerc"),
        ("12 Avenue du Général Leclerc, 75014 PARIS", "avenue general leclerc"),
        ("12-14 Rue du Commerce, 75015 PARIS", "rue commerce"),
        ("252 - 254 Rue de Crimée, 75019 PARIS", "rue crimee"),
        ("7b rue Damrémont, 75018 PARIS", "rue damremont"),
        ("13Z Rue Sorbier, 75020 PARIS", "rue sorbier"),
        ("11 ter Rue de Romainville, 75019 PARIS", "rue romainville"),
        ("12 B Rue Curial, 75019 PARIS", "rue curial"),
        ("12 R de Rivoli, 75001 PARIS", "rue rivoli"),
        ("3 Fg Saint-Antoine, 75011 PARIS", "faubourg saint antoine"),
        ("4 RUE DE L EGLISE, 75015 PARIS", "rue eglise"),
        ("16 Bd de Bonne Nouvelle, 75010 PARIS", "boulevard bonne nouvelle"),
        ("12 rue Oberkampf 75011 Paris", "rue oberkampf"),
        ("73 boulevard Auguste Blanqui, Paris, France, Paris, France", "boulevard auguste blanqui"),
        ("place de la Concorde, 75008 PARIS", "place concorde"),
        ("Place de la République Place de la République, 75003 PARIS", "place republique"),
        ("Gare du Nord Place Napoléon III, 75010 PARIS", "place napoleon iii"),
        ("Passerelle de Mornay Boulevard Bourdon, 75004 PARIS", "boulevard bourdon"),
        ("Rue du Pont Neuf, 75001 PARIS", "rue pont neuf"),
    ],
)
def test_street_from_address(address: str, street: str) -> None:
    assert street_from_address(address) == street


@pytest.mark.parametrize("address", ["", "   ", "75011 PARIS", "12, 75011 PARIS"])
def test_address_without_a_street(address: str) -> None:
    assert street_from_address(address) is None


def test_column_forms_match_the_scalar_forms() -> None:
    addresses = np.array(
        ["126 Rue Oberkampf, 75011 PARIS", None, "", np.nan, "3 Fg Saint-Antoine, 75011"],
        dtype=object,
    )
    keys = streets_from_addresses(addresses)
    assert len(keys) == len(addresses)
    assert keys.isna().tolist() == [False, True, True, True, False]
    assert keys[0] == street_from_address("126 Rue Oberkampf, 75011 PARIS")
    names = pd.Series(["Bd Voltaire", None, ""], index=[7, 8, 9])
    assert normalize_many(names).tolist() == ["boulevard voltaire", pd.NA, pd.NA]


@pytest.mark.parametrize(
    ("address", "key"),
    [
        # Real Chicago 311 addresses (2021-01-01): the house number goes, directions and
        # street types are written out, whatever the case or abbreviation.
        ("8600 S SANGAMON ST", "south sangamon street"),
        ("8500 S Sangamon Street", "south sangamon street"),
        ("2111 W Lexington ST", "west lexington street"),
        ("9129A S COTTAGE GROVE AVE", "south cottage grove avenue"),
        ("1600-1610 N St Louis Ave, Chicago, IL 60647", "north saint louis avenue"),
        ("3900 S DR MARTIN LUTHER KING JR DR", "south doctor martin luther king junior drive"),
        ("1150 N LAKE SHORE DR", "north lake shore drive"),
        ("100 W 71ST ST", "west 71st street"),
        ("5110 W LE MOYNE ST", "west le moyne street"),
        ("", None),
        ("8600", None),
    ],
)
def test_us_addresses_give_their_street_in_english(address: str, key: str | None) -> None:
    assert street_from_address(address, "en") == key


def test_one_chicago_street_written_two_ways_is_one_street_and_directions_differ() -> None:
    assert street_from_address("8700 S SANGAMON ST", "en") == street_from_address(
        "8500 South Sangamon St.", "en"
    )
    assert street_from_address("600 N CLARK ST", "en") != street_from_address(
        "600 S CLARK ST", "en"
    )
    # English rules where the city speaks English; French ones read "S" as a house suffix.
    assert street_from_address("8600 S SANGAMON ST") != "south sangamon street"


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("12 bis Av. du Général Leclerc, 75014 PARIS", "avenue general leclerc"),
        ("15 Bd de Bonne Nouvelle, 75002 Paris", "boulevard bonne nouvelle"),
        ("3 R. Ste-Croix de la Bretonnerie", "rue sainte croix bretonnerie"),
    ],
)
def test_french_addresses_keep_the_french_rules(address: str, key: str) -> None:
    assert street_from_address(address) == key
    assert street_from_address(address, "fr") == key


def test_a_citys_locale_picks_its_rules() -> None:
    locales = ("en", "en_US", "en-GB", "fr", "fr_FR", "de_DE", "it", "es_ES", "pt-BR", "nl", "sv")
    assert [language_of(x) for x in locales] == [
        "en",
        "en",
        "en",
        "fr",
        "fr",
        "de",
        "it",
        "es",
        "pt",
        "nl",
        "other",
    ]


@pytest.mark.parametrize(
    ("language", "same", "apart"),
    [
        (
            "it",
            ["Via Roma 12, 00184 Roma", "via Roma, 14", "V. Roma 3"],
            ["Viale Roma 12", "Piazza della Repubblica 1"],
        ),
        (
            "es",
            ["Calle de Alcalá, 20, 28014 Madrid", "C/ Alcalá 22", "calle Alcala s/n"],
            ["Avenida de Alcalá 5", "Calle Mayor, 5, 28013 Madrid"],
        ),
        ("pt", ["Rua Augusta 100, 1100-053 Lisboa", "R. Augusta, 12"], ["Praça do Comércio"]),
        (
            "nl",
            ["Kerkstraat 12, 1017 GM Amsterdam", "Kerkstr. 14", "Kerk straat 3"],
            ["Kerkplein 1"],
        ),
        ("other", ["Drottninggatan 5, 111 51 Stockholm", "Drottninggatan 7"], ["Vasagatan 3"]),
    ],
)
def test_streets_written_street_first_drop_the_house_number(
    language: str, same: list[str], apart: list[str]
) -> None:
    """Spanish, Italian, Portuguese, Dutch (and any other language's) addresses give the
    house number after the street: it is not part of the street, so "Via Roma 12" and
    "Via Roma 14" are one street (under the French rules they were two), and the
    abbreviations and articles of the language fold one street's ways of being written."""
    keys = {street_from_address(address, language) for address in same}
    assert len(keys) == 1, keys
    assert None not in keys
    others = {street_from_address(address, language) for address in apart}
    assert keys.isdisjoint(others)
    assert len(others) == len(apart)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Hauptstraße 12a, 10115 Berlin", "Hauptstr. 14"),
        ("Haupt-Straße 3", "HAUPTSTRASSE 3"),
        ("Karl-Marx-Allee 90", "Karl Marx Allee 1-3"),
        ("Platz der Republik 1, 11011 Berlin", "Platz Republik"),
        ("St.-Georg-Straße 4", "Sankt Georg Str. 4"),
        ("Marktpl. 1", "Marktplatz 1"),
    ],
)
def test_german_streets_written_two_ways_are_one_street(a: str, b: str) -> None:
    assert street_from_address(a, "de") == street_from_address(b, "de")
    assert street_from_address(a, "de") is not None


def test_german_streets_that_differ_stay_apart() -> None:
    keys = {
        street_from_address(address, "de")
        for address in ("Hauptstraße 1", "Hauptplatz 1", "Am Markt 2", "Marktstraße 2", "Ring 3")
    }
    assert len(keys) == 5
    assert street_from_address("Hauptstraße 12a, 10115 Berlin", "de") == "hauptstrasse"
    assert street_from_address("10115 Berlin", "de") is None
