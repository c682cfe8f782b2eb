"""Street names as comparable keys, and the street named in a postal address.

``normalize_street`` folds the ways one street is written into one key: case, accents,
apostrophes (``'`` and ``’``), hyphens, dots, extra spaces and the particles ``de``,
``du``, ``la``... are ignored, the usual French abbreviations are expanded (``Bd`` is
``boulevard``, ``St`` is ``saint``...) and numbers are written one way (``4`` and
``quatre``, ``1er`` and ``Ier``).
``street_from_address`` reads the street of an address such as
``"12 bis Av. du Général Leclerc, 75014 PARIS"`` (house number, suffix, postcode and
city dropped) and returns its key.

Both read the city's language (``city.yaml`` ``locale``): French by default; in English
(``en``, US addresses such as ``"8600 S SANGAMON ST"``) the house number is stripped,
directions are written out (``S`` is ``south``) and the street type is expanded where it
stands as the type, at the end (``ST`` is ``street`` there, ``saint`` before a name;
``DR`` is ``drive`` at the end, ``doctor`` before a name); German, Spanish, Italian,
Portuguese and Dutch have rules of their own (``gis.streetwords`` for the last four), and
any other language reads an address street first, house number after, its words as
written. Where a city has no street layer, deduplication compares reports' streets through
these keys (see ``gis/enrich.py``).

The column forms (``normalize_keys``, ``address_keys`` and their ``pandas`` twins) apply
the scalar forms once per *distinct* text, not once per row: a column of a million
reports holds far fewer distinct addresses, and one report (the API's path) costs a few
microseconds instead of a pandas pipeline. Both forms run the same function, so they can
never disagree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from voirie.gis.streetwords import LANGUAGES as OTHER_LANGUAGES
from voirie.gis.streetwords import Rules, other_address_street, other_key, rules_key

T = TypeVar("T")

# Abbreviations expanded wherever they stand as a whole word (after accents are removed).
ABBREVIATIONS: dict[str, str] = {
    "all": "allee",
    "av": "avenue",
    "ave": "avenue",
    "bd": "boulevard",
    "bv": "boulevard",
    "bld": "boulevard",
    "blvd": "boulevard",
    "bvd": "boulevard",
    "ch": "chemin",
    "che": "chemin",
    "crs": "cours",
    "fg": "faubourg",
    "fbg": "faubourg",
    "gal": "general",
    "gen": "general",
    "imp": "impasse",
    "pas": "passage",
    "pass": "passage",
    "pl": "place",
    "pte": "porte",
    "qu": "quai",
    "rte": "route",
    "sq": "square",
    "st": "saint",
    "ste": "sainte",
    "sts": "saints",
    "vla": "villa",
}
# Abbreviations that are only unambiguous as the street's first word (its type).
LEADING_ABBREVIATIONS: dict[str, str] = {"r": "rue", "q": "quai", "c": "cite"}

# Numbers written in words or as ordinals, folded into one form ("Rue des 4 Frères Peignot"
# is "Rue des Quatre-Frères-Peignot"; "Avenue Pierre 1er de Serbie", "Pierre Ier").
NUMBERS: dict[str, str] = {
    "premier": "1er",
    "premiere": "1er",
    "1re": "1er",
    "1ere": "1er",
    "ier": "1er",
    "deux": "2",
    "trois": "3",
    "quatre": "4",
    "cinq": "5",
    "six": "6",
    "sept": "7",
    "huit": "8",
    "dix": "10",
    "onze": "11",
    "douze": "12",
    "treize": "13",
    "quatorze": "14",
    "quinze": "15",
    "seize": "16",
    "vingt": "20",
}  # not "neuf": the Pont Neuf is new, not nine
# Articles and prepositions that writers add or drop ("Rue de Louvois" / "Rue Louvois",
# "Rue de la Vrillière" / "Rue La Vrillière"): not part of the key.
PARTICLES = frozenset({"de", "du", "des", "d", "la", "le", "les", "l"})


def _word_key(word: str) -> str:
    """A word of a street name as it stands in the key: its abbreviation expanded, then
    its number folded; ``""`` for a particle."""
    word = ABBREVIATIONS.get(word, word)
    word = NUMBERS.get(word, word)
    return "" if word in PARTICLES else word


# The words that the key changes (every other word stands as it is), looked up once.
_WORD_KEYS = {word: _word_key(word) for word in (*ABBREVIATIONS, *NUMBERS, *PARTICLES)}

# A house number: "12", "12-14", "12bis", "12 bis", "13Z", "7b", "12 B" (not "12 R de...",
# where a detached R is the abbreviation of rue).
_HOUSE_NUMBER = re.compile(
    r"^\s*\d+(?:\s*[-/]\s*\d+)?"
    r"(?:\s*(?:bis|ter|quater|quinquies)\b|[a-z]\b|\s+[a-qs-z]\b)?[\s,.]*",
    re.IGNORECASE,
)
_NUMBERED = re.compile(r"\s*\d")
# The first word of a street: a POI named before it ("Gare du Nord Place Napoléon III")
# is dropped by cutting at the last such word preceded by a capitalised word.
_STREET_TYPES = (
    "Allée|Avenue|Boulevard|Chemin|Cité|Cour|Cours|Impasse|Passage|Place|Port|Quai|Route|"
    "Rue|Square|Villa|Voie"
)
_POI_PREFIX = re.compile(
    r"^.*\b(?!(?:de|du|des|la|le|les|d|l|et|en|aux?)\s)\w[\w'’-]*\s+(?=(?:"
    + _STREET_TYPES
    + r")\s)"
)

# A French postcode and what follows it, when no comma separates it from the street.
_POSTCODE = re.compile(r"(?:^|\s)\d{5}(?:\s.*)?$")
# Letters that NFKD does not decompose into ASCII ones.
_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss"})
_DOUBLED = re.compile(r"^(.+?)\s+\1$")
_NON_WORD = re.compile(r"[\W_]+")
_WORD = re.compile(r"[a-z0-9]+")
_LETTER = re.compile(r"[a-z]")


# English (US) street types and directions, expanded where they stand as such (see
# ``_english_key``): types only as the street's last word (or before a trailing direction),
# directions as the first or last word; elsewhere a word stands as it is ("ST LOUIS AVE" is
# Saint Louis avenue, "DR MARTIN LUTHER KING JR DR" doctor ... drive).
EN_STREET_TYPES: dict[str, str] = {
    "al": "alley",
    "aly": "alley",
    "av": "avenue",
    "ave": "avenue",
    "blvd": "boulevard",
    "bl": "boulevard",
    "cir": "circle",
    "ct": "court",
    "dr": "drive",
    "expy": "expressway",
    "hwy": "highway",
    "ln": "lane",
    "pkwy": "parkway",
    "pky": "parkway",
    "pl": "place",
    "plz": "plaza",
    "rd": "road",
    "sq": "square",
    "st": "street",
    "ter": "terrace",
    "trl": "trail",
}
EN_DIRECTIONS: dict[str, str] = {
    "n": "north",
    "s": "south",
    "e": "east",
    "w": "west",
    "ne": "northeast",
    "nw": "northwest",
    "se": "southeast",
    "sw": "southwest",
}
# Words before a name: "ST" is saint, "DR" doctor, "MT" mount, "FT" fort.
EN_ABBREVIATIONS: dict[str, str] = {
    "st": "saint",
    "dr": "doctor",
    "mt": "mount",
    "ft": "fort",
    "jr": "junior",
}
# An English house number: "8600", "9129A", "1600-1610" (then the street).
_EN_HOUSE_NUMBER = re.compile(r"^\s*\d+[a-z]?(?:\s*-\s*\d+[a-z]?)?[\s,.]+", re.IGNORECASE)
# A US state and ZIP code that end an address without a comma ("... IL 60601").
_EN_ZIP = re.compile(r"\s+(?:[a-z]{2}\s+)?\d{5}(?:-\d{4})?\s*$", re.IGNORECASE)

# German: the street type is usually part of one word ("Hauptstraße", "Hauptstr.",
# "Haupt-Straße", "Haupt Straße" are one street), so the key joins the words after the
# abbreviations of types are expanded (a word ending in "str" is a "...strasse"); "ß" is
# folded to "ss" with the other letters NFKD cannot decompose. Articles are dropped
# ("Platz der Republik" / "Platz Republik"), "St." before a name is "Sankt".
DE_ABBREVIATIONS: dict[str, str] = {
    "str": "strasse",
    "pl": "platz",
    "st": "sankt",
    "alle": "allee",
}
DE_SUFFIXES: dict[str, str] = {"str": "strasse", "pl": "platz"}
DE_ARTICLES = frozenset({"der", "die", "das", "den", "dem", "des"})
GERMAN = Rules(DE_ABBREVIATIONS, DE_ARTICLES, DE_SUFFIXES, joined=True)
# A German address: the street, then its house number ("Hauptstraße 12a", "Am Markt 3-5").
_DE_HOUSE_NUMBER = re.compile(r"\s+\d+\s*[a-z]?(?:\s*[-/]\s*\d+\s*[a-z]?)?\s*$", re.IGNORECASE)
_DE_POSTCODE = re.compile(r"^\s*(?:d-)?\d{5}\s+\S.*$", re.IGNORECASE)
LANGUAGES = ("fr", "en", "de", *OTHER_LANGUAGES)
OTHER = "other"
"""The rules of a language with none of its own: an address read street first, house
number after (``gis.streetwords``), the words kept as written."""


def language_of(locale: str) -> str:
    """The street-name language of a city's ``locale`` (``"en_US"`` is ``"en"``, ``"es"``
    Spanish...); ``OTHER`` for a language without rules of its own here."""
    language = locale.replace("-", "_").split("_", 1)[0].lower()
    return language if language in LANGUAGES else OTHER


def _english_key(words: list[str]) -> str:
    """The key of an English street name's words: directions written out at either end,
    the type expanded at the end (or before a trailing direction), abbreviations of titles
    expanded elsewhere."""
    out = list(words)
    last = len(out) - 1
    if last > 0 and out[last] in EN_DIRECTIONS:
        out[last] = EN_DIRECTIONS[out[last]]
        last -= 1
    if out and out[0] in EN_DIRECTIONS and len(out) > 1:
        out[0] = EN_DIRECTIONS[out[0]]
    for k in range(len(out)):
        if k == last and k > 0 and out[k] in EN_STREET_TYPES:
            out[k] = EN_STREET_TYPES[out[k]]
        elif out[k] in EN_ABBREVIATIONS and k != last:
            out[k] = EN_ABBREVIATIONS[out[k]]
    return " ".join(out)


def normalize_street(name: str, language: str = "fr") -> str:
    """The comparison key of a street name (``""`` when the name is blank), by the rules
    of ``language`` (``"fr"``, ``"en"``, ``"de"``, ``gis.streetwords``' languages or
    ``OTHER``, see ``language_of``)."""
    if name.isascii():
        # Lowering ASCII text keeps it ASCII; its non-word characters split words below.
        text = name.lower()
    else:
        text = unicodedata.normalize("NFKD", _NON_WORD.sub(" ", name).translate(_LIGATURES))
        text = text.encode("ascii", errors="ignore").decode("ascii").lower()
    words = _WORD.findall(text)
    if language == "en":
        return _english_key(words)
    if language == "de":
        return rules_key(words, GERMAN)
    if language != "fr":
        return other_key(words, language)
    if words:
        words[0] = LEADING_ABBREVIATIONS.get(words[0], words[0])
    # Word by word (a dictionary look-up each) rather than a regular expression per rule;
    # particles map to "" and are dropped.
    return " ".join(filter(None, map(_WORD_KEYS.get, words, words)))


def street_from_address(address: str, language: str = "fr") -> str | None:
    """The normalized street of a postal address, ``None`` when it names none."""
    return street_key(address_street(address, language), language)


def address_street(address: str, language: str = "fr") -> str:
    """The street of a postal address as written: the text before the first comma without
    the house number, postcode and city (nor a place named before the street)."""
    if language == "en":
        return _EN_HOUSE_NUMBER.sub("", _EN_ZIP.sub("", address.split(",", 1)[0])).strip()
    if language == "de":
        parts = [p for p in address.split(",") if p.strip() and not _DE_POSTCODE.match(p)]
        return _DE_HOUSE_NUMBER.sub("", parts[0]).strip() if parts else ""
    if language != "fr":
        return other_address_street(address)
    # The street is before the first comma; the postcode and city follow it.
    street = _POSTCODE.sub("", address.split(",", 1)[0]).strip()
    numbered = _NUMBERED.match(street) is not None
    street = _HOUSE_NUMBER.sub("", street)
    if not numbered:
        # Without a house number, the text may repeat the street ("Place X Place X") or
        # name a place before it ("Gare du Nord Place Napoléon III"): keep the street.
        street = _POI_PREFIX.sub("", _DOUBLED.sub(r"\1", street))
    return street


def street_key(street: str, language: str = "fr") -> str | None:
    """``normalize_street`` of the street of an address (``address_street``), ``None``
    when the key has no letter ("75011", ""): such a text names no street."""
    key = normalize_street(street, language)
    return key if _LETTER.search(key) else None


def map_distinct(
    values: Iterable[object] | pd.Series | np.ndarray,
    function: Callable[[str], T],
    missing: T,
    dtype: npt.DTypeLike = object,
) -> np.ndarray:
    """``function`` of every text, computed once per distinct text; ``missing`` for blanks
    and values that are not text."""
    array = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else values
    array = np.asarray(array if isinstance(array, np.ndarray) else list(array), dtype=object)
    codes, distinct = pd.factorize(array)
    results = [function(text) if isinstance(text, str) else missing for text in distinct]
    # Code -1 (a missing value) picks the trailing ``missing``.
    return np.array([*results, missing], dtype=dtype)[codes]


def normalize_keys(
    names: Iterable[object] | pd.Series | np.ndarray, language: str = "fr"
) -> np.ndarray:
    """``normalize_street`` over a column, as an object array (``None`` for blank names)."""
    return map_distinct(names, lambda name: normalize_street(name, language) or None, None)


def address_keys(
    addresses: Iterable[object] | pd.Series | np.ndarray, language: str = "fr"
) -> np.ndarray:
    """``street_from_address`` over a column, as an object array (``None`` if no street)."""
    return map_distinct(addresses, lambda text: street_from_address(text, language), None)


def normalize_many(names: Iterable[object] | pd.Series | np.ndarray) -> pd.Series:
    """``normalize_street`` over a column: a ``string`` Series, ``<NA>`` for blank names."""
    return pd.Series(normalize_keys(names), dtype="string")


def streets_from_addresses(addresses: Iterable[object] | pd.Series | np.ndarray) -> pd.Series:
    """``street_from_address`` over a column: normalized street keys, ``<NA>`` if none."""
    return pd.Series(address_keys(addresses), dtype="string")
