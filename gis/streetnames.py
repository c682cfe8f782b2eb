"""Street names as comparable keys, and the street named in a postal address.

``normalize_street`` folds the ways one street is written into one key: case, accents,
apostrophes (``'`` and ``’``), hyphens, dots and extra spaces are ignored, and the usual
French abbreviations are expanded (``Bd`` is ``boulevard``, ``St`` is ``saint``...).
``street_from_address`` reads the street of an address such as
``"12 bis Av. du Général Leclerc, 75014 PARIS"`` (house number, suffix, postcode and
city dropped) and returns its key. The ``*_many`` forms do the same over a whole column
with pandas string methods; the scalar forms are one-element calls of them, so the two
can never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

# Abbreviations expanded wherever they stand as a whole word (after accents are removed).
ABBREVIATIONS: dict[str, str] = {
    "all": "allee",
    "av": "avenue",
    "ave": "avenue",
    "bd": "boulevard",
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

_WORD_ABBREVIATION = re.compile(r"\b(" + "|".join(sorted(ABBREVIATIONS, key=len)[::-1]) + r")\b")
_LEADING_ABBREVIATION = re.compile(r"^(" + "|".join(LEADING_ABBREVIATIONS) + r")\b")

# A house number: "12", "12-14", "12bis", "12 bis", "13Z", "7b", "12 B" (not "12 R de...",
# where a detached R is the abbreviation of rue).
_HOUSE_NUMBER = re.compile(
    r"^\s*\d+(?:\s*[-/]\s*\d+)?"
    r"(?:\s*(?:bis|ter|quater|quinquies)\b|[a-z]\b|\s+[a-qs-z]\b)?[\s,.]*",
    re.IGNORECASE,
)
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


def _as_series(values: Iterable[object] | pd.Series | np.ndarray) -> pd.Series:
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    series = series.reset_index(drop=True).astype(object)
    return series.where(series.map(lambda v: isinstance(v, str)), None).astype("string")


def normalize_many(names: Iterable[object] | pd.Series | np.ndarray) -> pd.Series:
    """``normalize_street`` over a column: a ``string`` Series, ``<NA>`` for blank names."""
    text = _as_series(names)
    text = (
        text.str.replace(r"[\W_]+", " ", regex=True)
        .str.translate(_LIGATURES)
        .str.normalize("NFKD")
        .str.encode("ascii", errors="ignore")
        .str.decode("ascii")
        .astype("string")
        .str.lower()
        .str.replace(r"[^a-z0-9]+", " ", regex=True)
        .str.strip()
    )
    text = text.str.replace(
        _LEADING_ABBREVIATION, lambda m: LEADING_ABBREVIATIONS[m[1]], regex=True
    )
    text = text.str.replace(_WORD_ABBREVIATION, lambda m: ABBREVIATIONS[m[1]], regex=True)
    return text.where(text != "", pd.NA)


def streets_from_addresses(addresses: Iterable[object] | pd.Series | np.ndarray) -> pd.Series:
    """``street_from_address`` over a column: normalized street keys, ``<NA>`` if none."""
    text = _as_series(addresses)
    # The street is before the first comma; the postcode and city follow it.
    street = text.str.split(",", n=1).str[0].str.replace(_POSTCODE, "", regex=True).str.strip()
    numbered = street.str.match(r"\s*\d", na=False)
    street = street.str.replace(_HOUSE_NUMBER, "", regex=True)
    # Without a house number, the text may repeat the street ("Place X Place X") or name
    # a place before it ("Gare du Nord Place Napoléon III"): keep the street.
    unnumbered = street.where(~numbered).str.replace(_DOUBLED, r"\1", regex=True)
    unnumbered = unnumbered.str.replace(_POI_PREFIX, "", regex=True)
    street = street.where(numbered, unnumbered)
    key = normalize_many(street)
    # A key with no letter ("75011", "") names no street.
    return key.where(key.str.contains(r"[a-z]", na=False), pd.NA)


def key_array(keys: pd.Series) -> np.ndarray:
    """Keys as an object array, ``None`` where missing (``None == key`` is never true)."""
    return np.array([None if pd.isna(k) else str(k) for k in keys], dtype=object)


def normalize_street(name: str) -> str:
    """The comparison key of a street name (``""`` when the name is blank)."""
    key = normalize_many([name]).iloc[0]
    return "" if key is pd.NA else str(key)


def street_from_address(address: str) -> str | None:
    """The normalized street of a postal address, ``None`` when it names none."""
    key = streets_from_addresses([address]).iloc[0]
    return None if key is pd.NA else str(key)
