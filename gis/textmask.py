"""House numbers out of what a citizen wrote, for services whose exact place is not public.

A blurred service (``voirie.gis.blur``) shows the public a point moved away from the real
one; its description must not give the place back ("tag devant le 12 rue Oberkampf").
``mask_house_numbers`` replaces the house numbers of such a text by "…" and keeps the rest,
street names included (the street is public: the blurred point lies on or near it).

A number is a house number when it comes before a street-type word, French or English
("12 rue", "12 bis, avenue", "au 12 de la rue", "12-14 boulevard", "bd" and "av."
abbreviations; "1600 Pennsylvania Avenue", "1234 N Clark St"), or after "n°", "no",
"numéro", "number" or "#". Quantities, dates and times stay ("2 poubelles", "12/03/2024",
"le 12 mars", "14h30", "depuis 3 jours", "2 rues plus loin", "1 place de parking"): a
plural street-type word, or a common phrase that starts with one, is not a street.
Pure functions on strings; nothing here knows a city.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "…"

# Street-type words, French (with their usual abbreviations) then English. A word must end
# there ("rues", "places" are not streets), an abbreviation may end with a dot.
_FRENCH_TYPES = (
    r"rue|ruelle|avenue|av|ave|boulevards?|bd|bld|bvd|boul|place|pl|quai|impasse|imp|"
    r"all[ée]e|chemin|route|rte|passage|square|cours|villa|cit[ée]|rond-point|sentier|"
    r"voie|esplanade|parvis|promenade|galerie|hameau|faubourg|fg|chauss[ée]e|sente|"
    r"venelle|carrefour|cour|pont|port"
)
_ENGLISH_TYPES = (
    r"street|st|avenue|ave|av|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|"
    r"way|terrace|ter|parkway|pkwy|highway|hwy|square|sq|circle|cir|alley|row"
)
# Phrases that begin with a street-type word but name a thing, not a street.
_NOT_STREETS = (
    r"place\s+(?:de\s+)?(?:parking|stationnement|livraison|handicap[ée]e?|PMR|libre)|"
    r"passage\s+(?:pi[ée]ton|clout[ée])|voie\s+(?:de\s+bus|cyclable|r[ée]serv[ée]e)|"
    r"cours\s+(?:d'eau|d'[ée]cole)|route\s+barr[ée]e|"
    r"cour\s+(?:int[ée]rieure|d'[ée]cole|de\s+r[ée]cr[ée]ation|d'immeuble)"
)
# One house number: digits, then a suffix ("bis", "ter", a letter: "12 B", "157f", "58Z"),
# possibly a list or a range of them ("12-14", "12, 14 et 16", "63 65"). Never glued to a
# date, time or decimal.
_ONE = r"\d{1,5}(?:\s?(?:bis|ter|quater|[a-dA-D])\b|[a-zA-Z]\b)?"
_NUMBERS = rf"(?<![\d/:.,])\b{_ONE}(?:(?:\s*(?:-|–|,|\bet\b|\band\b|&)\s*|\s+){_ONE})*"

_BEFORE_FRENCH_TYPE = re.compile(
    rf"(?P<num>{_NUMBERS})"
    # "au 12 de la rue", but not "à 50m de la rue" (metres) nor "8h du boulevard" (time).
    rf"(?=(?:(?<![mMhH])\s*,?\s*(?:de\s+la|de\s+l'|du|des)\s+|\s*,?\s*)"
    rf"(?!(?:{_NOT_STREETS}))(?:{_FRENCH_TYPES})(?:\.|\b))",
    re.IGNORECASE,
)
# English puts the street's name between the number and the type: one to three words that
# start with a capital or a digit ("N", "Clark", "63rd"), then the type word.
_BEFORE_ENGLISH_NAME = re.compile(
    rf"(?P<num>{_NUMBERS})"
    rf"(?=,?\s+(?:[A-Z0-9][\w'.-]*\s+){{1,3}}(?i:{_ENGLISH_TYPES})(?:\.|\b))"
)
_AFTER_NUMBER_WORD = re.compile(
    rf"(?P<word>(?:\b(?:n°|n\s°|nº|no\.?|num[ée]ro|number)|#)\s*)(?P<num>{_ONE})(?!\s*[/:h]\d)",
    re.IGNORECASE,
)


def mask_house_numbers(text: str) -> str:
    """``text`` with every house number replaced by "…" (the street name kept)."""
    if not any(c.isdigit() for c in text):
        return text
    text = _AFTER_NUMBER_WORD.sub(lambda m: f"{m['word']}{MASK}", text)
    text = _BEFORE_FRENCH_TYPE.sub(MASK, text)
    return _BEFORE_ENGLISH_NAME.sub(MASK, text)


def mask_texts(texts: Iterable[object]) -> list[object]:
    """``mask_house_numbers`` on each text of a column, leaving missing values (None,
    NaN) and non-texts as they are."""
    return [mask_house_numbers(t) if isinstance(t, str) else t for t in texts]
