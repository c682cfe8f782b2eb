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

ABBREVIATIONS: dict[str, dict[str, str]] = {
    "es": {
        "c": "calle",
        "cl": "calle",
        "avda": "avenida",
        "av": "avenida",
        "pza": "plaza",
        "pl": "plaza",
        "pso": "paseo",
        "ctra": "carretera",
        "cno": "camino",
        "ronda": "ronda",
    },
    "it": {"v": "via", "vle": "viale", "pza": "piazza", "pzza": "piazza", "cso": "corso"},
    "pt": {"r": "rua", "av": "avenida", "pc": "praca", "pca": "praca", "trav": "travessa"},
    "nl": {"str": "straat", "pl": "plein", "ln": "laan"},
}
ARTICLES: dict[str, frozenset[str]] = {
    "es": frozenset({"de", "del", "la", "las", "los", "el", "y"}),
    "it": frozenset(
        {"di", "del", "della", "dello", "dei", "degli", "delle", "d", "la", "il", "lo", "le"}
    ),
    "pt": frozenset({"de", "da", "do", "dos", "das", "d", "e"}),
    "nl": frozenset({"de", "het", "t", "van", "der", "den"}),
}
LANGUAGES = tuple(ABBREVIATIONS)
_SUFFIXES = {"nl": {"str": "straat"}}  # "Kerkstr." is Kerkstraat
_JOINED = frozenset({"nl"})

# A part of an address that is a postcode and what follows it: "28013 Madrid",
# "1017 GM Amsterdam", "1100-053 Lisboa", "00184 Roma".
_POSTCODE = re.compile(r"^\d{4,5}(?:[- ]\d{3}|\s?[a-z]{2}(?=\s|$))?(?:\s.*)?$", re.IGNORECASE)
_LEADING_NUMBER = re.compile(r"^\d+\s*[a-z]?(?:\s*[-/]\s*\d+\s*[a-z]?)?[\s,.]+", re.IGNORECASE)
_TRAILING_NUMBER = re.compile(
    r"[\s,]+(?:n[º°o.]?\s*|num\.?\s*)?(?:\d+\s*[a-z]?(?:\s*[-/]\s*\d+\s*[a-z]?)?|s/n)\s*$",
    re.IGNORECASE,
)
_LETTER = re.compile(r"[^\W\d_]")


def other_key(words: list[str], language: str) -> str:
    """The key of a street name's (lower-case, ASCII) words in ``language``: its
    abbreviations expanded (as words, or as the end of a Dutch compound), its articles
    dropped, the words joined with spaces (into one word in Dutch)."""
    abbreviations = ABBREVIATIONS.get(language, {})
    articles = ARTICLES.get(language, frozenset())
    suffixes = _SUFFIXES.get(language, {})
    out = []
    for word in words:
        if word in articles and len(words) > 1:
            continue
        word = abbreviations.get(word, word)
        for short, full in suffixes.items():
            if word.endswith(short) and len(word) > len(short) + 2:
                word = word[: -len(short)] + full
        out.append(word)
    return ("" if language in _JOINED else " ").join(out)


def other_address_street(address: str) -> str:
    """The street of an address written street first: the first comma-separated part
    that holds a letter and is no postcode, without a house number at either end."""
    parts = [p.strip() for p in address.split(",")]
    named = [p for p in parts if _LETTER.search(p) and not _POSTCODE.match(p)]
    if not named:
        return ""
    return _TRAILING_NUMBER.sub("", _LEADING_NUMBER.sub("", named[0])).strip()
