"""Street names and addresses of the languages ``streetnames`` has no rules of its own for.

Spanish, Italian, Portuguese and Dutch addresses give the street first and its house number
after it (``"Calle Mayor, 5"``, ``"Via Roma 12"``, ``"Rua Augusta 100"``,
``"Kerkstraat 12"``), the postcode and city in a later part. Read by the French rules they
had been before, a house number after the street stayed in the key: ``"via roma 12"`` and
``"via roma 14"`` were two streets, so reports of one street never met. Here, for each of
these languages, its usual abbreviations of street types are expanded and its articles and
prepositions dropped (``"C/ de Alcalá"`` and ``"Calle Alcalá"`` are one street); Dutch
names, compounds like German ones (``"Kerkstraat"``, ``"Kerk straat"``), are joined into one
word. Any other language gets the same address reading with its words kept as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rules:
    """How one language writes a street name's words."""

    abbreviations: Mapping[str, str] = field(default_factory=dict)
    """Abbreviated words and the word each stands for (``"c"``: ``"calle"``)."""
    articles: frozenset[str] = frozenset()
    """Articles and prepositions, dropped from a name of several words."""
    suffixes: Mapping[str, str] = field(default_factory=dict)
    """Abbreviated ends of compound words (Dutch ``"kerkstr"``: ``"kerkstraat"``)."""
    joined: bool = False
    """Whether the words make one compound key (German, Dutch)."""


RULES: dict[str, Rules] = {
    "es": Rules(
        {
            "c": "calle",
            "cl": "calle",
            "avda": "avenida",
            "av": "avenida",
            "pza": "plaza",
            "pl": "plaza",
            "pso": "paseo",
            "ctra": "carretera",
            "cno": "camino",
        },
        frozenset({"de", "del", "la", "las", "los", "el", "y"}),
    ),
    "it": Rules(
        {"v": "via", "vle": "viale", "pza": "piazza", "pzza": "piazza", "cso": "corso"},
        frozenset(
            {"di", "del", "della", "dello", "dei", "degli", "delle", "d", "la", "il", "lo", "le"}
        ),
    ),
    "pt": Rules(
        {"r": "rua", "av": "avenida", "pc": "praca", "pca": "praca", "trav": "travessa"},
        frozenset({"de", "da", "do", "dos", "das", "d", "e"}),
    ),
    "nl": Rules(
        {"str": "straat", "pl": "plein", "ln": "laan"},
        frozenset({"de", "het", "t", "van", "der", "den"}),
        {"str": "straat"},  # "Kerkstr." is Kerkstraat
        joined=True,
    ),
}
LANGUAGES = tuple(RULES)

# A part of an address that is a postcode and what follows it: "28013 Madrid",
# "1017 GM Amsterdam", "1100-053 Lisboa", "00184 Roma".
_POSTCODE = re.compile(r"^\d{4,5}(?:[- ]\d{3}|\s?[a-z]{2}(?=\s|$))?(?:\s.*)?$", re.IGNORECASE)
_LEADING_NUMBER = re.compile(r"^\d+\s*[a-z]?(?:\s*[-/]\s*\d+\s*[a-z]?)?[\s,.]+", re.IGNORECASE)
_TRAILING_NUMBER = re.compile(
    r"[\s,]+(?:n[º°o.]?\s*|num\.?\s*)?(?:\d+\s*[a-z]?(?:\s*[-/]\s*\d+\s*[a-z]?)?|s/n)\s*$",
    re.IGNORECASE,
)
_LETTER = re.compile(r"[^\W\d_]")


def rules_key(words: list[str], rules: Rules) -> str:
    """The key of a street name's (lower-case, ASCII) words by ``rules``: abbreviations
    expanded (as words, or as the end of a compound), articles dropped from a name of
    several words, the words joined with spaces or into one compound."""
    out = []
    for word in words:
        if word in rules.articles and len(words) > 1:
            continue
        word = rules.abbreviations.get(word, word)
        for short, full in rules.suffixes.items():
            if word.endswith(short) and len(word) > len(short) + 2:
                word = word[: -len(short)] + full
        out.append(word)
    return ("" if rules.joined else " ").join(out)


def other_key(words: list[str], language: str) -> str:
    """``rules_key`` by the rules of ``language`` (none: the words as written)."""
    return rules_key(words, RULES.get(language, Rules()))


def other_address_street(address: str) -> str:
    """The street of an address written street first: the first comma-separated part
    that holds a letter and is no postcode, without a house number at either end."""
    parts = [p.strip() for p in address.split(",")]
    named = [p for p in parts if _LETTER.search(p) and not _POSTCODE.match(p)]
    if not named:
        return ""
    return _TRAILING_NUMBER.sub("", _LEADING_NUMBER.sub("", named[0])).strip()
