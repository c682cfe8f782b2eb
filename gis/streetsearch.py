"""Address search against the city's own street layer (no external service).

A citizen types "91 quai de Valmy", "bd voltaire" or "rue de rivolli": the text is
reduced to a street key with the same normalisation the snapping uses
(:mod:`voirie.gis.streetnames`: case, accents, particles, abbreviations such as ``bd``
and ``r.``), and its house number is read. Each word of the key then matches the words of
the streets' keys that equal it, that start with it (the last word, while the citizen is
still typing), or that differ from it by one typo (an edit, for words of four letters or
more; :mod:`rapidfuzz`). A street whose key holds a match of every word is a candidate.

Candidates are ranked: a street whose whole key the query names (``exact``, typos
forgiven) first, then fewer typos, then the longer street. The point is the house
number's when it is known or can be interpolated (:mod:`voirie.gis.housenumbers`), else
the point of the street nearest to its centre (on the street, never in a building block
between two branches). A street the layer lacks is found only by the numbers learned on
it, with its name spelt exactly (its key, that is).
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import shapely
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from voirie.gis.enrich import CityGIS
from voirie.gis.housenumbers import HouseNumbers, house_number
from voirie.gis.streetnames import address_street, normalize_street

# Words shorter than this must be typed exactly (or as the start of a word): one edit
# in "rue" or "bd" would match too much.
_TYPO_MIN_LETTERS = 4
Precision = Literal["address", "interpolated", "street"]


@dataclass(frozen=True)
class StreetMatch:
    """A place of the city that a query names, with a WGS84 point: the house number's
    (``precision`` ``address`` when known, ``interpolated`` between known neighbours) or
    the street's (``street``)."""

    street_name: str
    lon: float
    lat: float
    exact: bool
    house_number: int | None = None
    precision: Precision = "street"


@dataclass(frozen=True)
class _Candidate:
    street: int  # index in _StreetIndex.keys
    exact: bool
    typos: int


class _StreetIndex:
    """The distinct streets of a city's layer, their words, and a point on each."""

    def __init__(self, gis: CityGIS) -> None:
        assert gis.streets is not None
        named = np.flatnonzero(pd.notna(gis.street_keys))
        keys = gis.street_keys[named].astype(str)
        order = np.argsort(keys, kind="stable")
        named, keys = named[order], keys[order]
        self.keys, starts = (list(a) for a in np.unique(keys, return_index=True))
        self.segments = np.split(named, starts[1:])
        # The most common spelling of each street (the first in order on a tie).
        spellings = (
            pd.DataFrame({"key": keys, "name": gis.streets["street_name"].to_numpy()[named]})
            .value_counts()
            .rename("n")
            .reset_index()
            .sort_values(["key", "n", "name"], ascending=[True, False, True])
            .drop_duplicates("key")
        )
        self.names: list[str] = spellings["name"].astype(str).tolist()
        length = shapely.length(gis.streets_geometry)
        self.length = np.array([length[rows].sum() for rows in self.segments])
        self.words = [frozenset(k.split()) for k in self.keys]
        streets_of: defaultdict[str, set[int]] = defaultdict(set)
        for street, words in enumerate(self.words):
            for word in words:
                streets_of[word].add(street)
        self.vocabulary = sorted(streets_of)
        self.streets_of = dict(streets_of)
        self.points: dict[int, tuple[float, float]] = {}
        self.gis = gis

    def candidates(self, key: str) -> list[_Candidate]:
        """Streets whose words match every word of ``key``, best first."""
        words = key.split()
        typos_of: list[dict[int, int]] = []  # per query word: street -> fewest typos
        for position, word in enumerate(words):
            best: dict[int, int] = {}
            for other, typos in self._word_matches(word, last=position == len(words) - 1):
                for street in self.streets_of[other]:
                    best[street] = min(typos, best.get(street, typos))
            if not best:
                return []
            typos_of.append(best)
        common = set.intersection(*(set(best) for best in typos_of))
        found: list[_Candidate] = []
        for street in common:
            typos = sum(best[street] for best in typos_of)
            exact = len(self.words[street]) == len(set(words)) and self._names_all(street, words)
            found.append(_Candidate(street, exact, typos))
        found.sort(key=lambda c: (not c.exact, c.typos, -self.length[c.street], c.street))
        return found

    def _names_all(self, street: int, words: list[str]) -> bool:
        """Whether the query's words, typos forgiven, are all the street's words."""
        wanted = set(self.words[street])
        for word in words:
            hit = next(
                (w for w in wanted if w == word or self._one_typo(word, w)),
                None,
            )
            if hit is None:
                return False
            wanted.discard(hit)
        return not wanted

    @staticmethod
    def _one_typo(word: str, other: str) -> bool:
        return len(word) >= _TYPO_MIN_LETTERS and Levenshtein.distance(word, other) <= 1

    def _word_matches(self, word: str, last: bool) -> list[tuple[str, int]]:
        """Words of the streets matching ``word``: (word, typos)."""
        matches: list[tuple[str, int]] = []
        if word in self.streets_of:
            matches.append((word, 0))
        if last:
            start = np.searchsorted(self.vocabulary, word)
            for other in self.vocabulary[int(start) :]:
                if not other.startswith(word):
                    break
                if other != word:
                    matches.append((other, 0))
        if len(word) >= _TYPO_MIN_LETTERS:
            for other, distance, _ in process.extract(
                word, self.vocabulary, scorer=Levenshtein.distance, score_cutoff=1, limit=None
            ):
                if distance == 1:
                    matches.append((other, 1))
        return matches

    def street_point(self, street: int) -> tuple[float, float]:
        """The point of the street nearest to the centre of its segments (metric CRS)."""
        if street not in self.points:
            lines = shapely.union_all(self.gis.streets_geometry[self.segments[street]])
            centre = shapely.centroid(lines)
            _, point = shapely.shortest_line(centre, lines).coords
            self.points[street] = (point[0], point[1])
        return self.points[street]


_INDEXES: weakref.WeakKeyDictionary[CityGIS, _StreetIndex] = weakref.WeakKeyDictionary()


def _index(gis: CityGIS) -> _StreetIndex:
    """The street index of a city's GIS, built on first use."""
    index = _INDEXES.get(gis)
    if index is None:
        index = _INDEXES[gis] = _StreetIndex(gis)
    return index


def geocode_street(
    gis: CityGIS, query: str, limit: int = 5, numbers: HouseNumbers | None = None
) -> list[StreetMatch]:
    """Places matching ``query`` (a street name or a postal address), best first; with
    ``numbers``, a house number of the query is located on its street.

    Empty when the city has no street layer or nothing matches.
    """
    if gis.streets is None:
        return []
    key = normalize_street(address_street(query, gis.language), gis.language)
    if not key or not any(c.isalpha() for c in key):
        return []
    index = _index(gis)
    number = house_number(query, gis.language)
    candidates = index.candidates(key)[:limit]
    if not candidates and numbers is not None and number is not None:
        return _unmapped(gis, numbers, key, number)
    matches = []
    for candidate in candidates:
        precision: Precision = "street"
        located = (
            numbers.locate(index.keys[candidate.street], number)
            if numbers is not None and number is not None
            else None
        )
        if located is not None:
            x, y, known = located
            precision = "address" if known else "interpolated"
        else:
            x, y = index.street_point(candidate.street)
        lon, lat = gis.to_wgs84.transform(x, y)
        matches.append(
            StreetMatch(
                street_name=index.names[candidate.street],
                lon=round(float(lon), 6),
                lat=round(float(lat), 6),
                exact=candidate.exact,
                house_number=number,
                precision=precision,
            )
        )
    return matches


def _unmapped(gis: CityGIS, numbers: HouseNumbers, key: str, number: int) -> list[StreetMatch]:
    """The number of a street that the street layer lacks, when its numbers are known."""
    located = numbers.locate(key, number)
    if located is None:
        return []
    x, y, known = located
    lon, lat = gis.to_wgs84.transform(x, y)
    return [
        StreetMatch(
            street_name=numbers.names[key],
            lon=round(float(lon), 6),
            lat=round(float(lat), 6),
            exact=True,
            house_number=number,
            precision="address" if known else "interpolated",
        )
    ]
