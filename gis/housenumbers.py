"""Forward geocoding of house numbers: where "91 quai de Valmy" stands on its street.

A street layer rarely carries house numbers. Known positions of numbers come from two
honest sources: the city's address points (``addresses`` in city.yaml), and the
city's own past reports, whose postal address was written with the pin the reporter
placed (:meth:`HouseNumbers.learn`). A learned position is the median of the pins of one
number, kept only when they lie near the street the address names, so that a report
placed elsewhere than its address does not teach a wrong position.

A street missing from the street layer (a new street, a private way) is learned all the
same, from its reports' pins alone: its numbers can be found although its street cannot.

A number without a known position is interpolated between the nearest known numbers of
the same parity on either side (French and most numbering put odd and even numbers on
opposite sides): linearly between their two points. Beyond the last known number, the
nearest known one stands for it. A street without known numbers has no answer here; the
caller falls back to the street.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from voirie.gis.enrich import CityGIS
from voirie.gis.streetnames import address_keys, address_street

# The house number of an address: leading ("91 quai de Valmy", "8600 S Sangamon St") or,
# in German, trailing the street ("Hauptstraße 12, 10115 Berlin").
_LEADING = re.compile(r"^\s*(\d{1,5})(?!\d)")
_TRAILING = re.compile(r"(\d{1,5})\s*[a-z]?(?:\s*[-/]\s*\d+\s*[a-z]?)?\s*$", re.IGNORECASE)
# A learned pin farther than this from the street its address names is not used.
LEARN_MAX_DISTANCE_M = 40.0


def house_number(address: str, language: str = "fr") -> int | None:
    """The house number an address starts with (ends with, in German), or ``None``."""
    first = address.split(",", 1)[0]
    found = (_TRAILING.search(first) if language == "de" else None) or _LEADING.match(first)
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class HouseNumbers:
    """Known positions of house numbers (metric CRS), sorted by street key then number,
    and the street's name as most often written."""

    key: np.ndarray
    number: np.ndarray
    x: np.ndarray
    y: np.ndarray
    names: dict[str, str]

    @classmethod
    def from_points(
        cls,
        key: np.ndarray,
        number: np.ndarray,
        x: np.ndarray,
        y: np.ndarray,
        street: np.ndarray,
    ) -> HouseNumbers:
        """One position per (street key, number): the median of the points given for it;
        ``street`` is each point's street as written."""
        frame = pd.DataFrame(
            {"key": key, "number": number, "x": x, "y": y, "street": street}
        ).dropna()  # unnamed streets, unreadable numbers
        medians = frame.groupby(["key", "number"], sort=True)[["x", "y"]].median().reset_index()
        names = frame.groupby("key")["street"].agg(lambda s: s.value_counts().index[0])
        return cls(
            key=medians["key"].to_numpy(dtype=object),
            number=medians["number"].to_numpy(dtype=np.int64),
            x=medians["x"].to_numpy(dtype=float),
            y=medians["y"].to_numpy(dtype=float),
            names={str(k): str(v) for k, v in names.items()},
        )

    @classmethod
    def learn(
        cls,
        gis: CityGIS,
        address: np.ndarray,
        lon: np.ndarray,
        lat: np.ndarray,
        max_distance_m: float = LEARN_MAX_DISTANCE_M,
    ) -> HouseNumbers:
        """Positions of numbers learned from reports: their postal address and WGS84 pin.

        A pin counts when a segment of the street its address names lies within
        ``max_distance_m``, or when that street is not in the street layer at all; the
        city's address points (if any) are added as they are.
        """
        address = np.asarray(address, dtype=object)
        text = pd.Series(address, dtype=object).where(pd.notna(address), "")
        number = text.map(lambda a: house_number(str(a), gis.language)).to_numpy(dtype=float)
        key = address_keys(address, gis.language)
        x, y = gis.project(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
        keep = np.zeros(len(address), dtype=bool)
        if gis.street_tree is not None and len(address):
            point, segment = gis.street_tree.query(
                shapely.points(x, y), predicate="dwithin", distance=max_distance_m
            )
            same = gis.street_keys[segment] == key[point]
            keep[point[same]] = True
            keep |= ~pd.Series(key).isin(set(gis.street_keys)).to_numpy()
        keep &= np.isfinite(number) & pd.notna(key)
        street = text.map(lambda a: address_street(str(a), gis.language)).to_numpy(dtype=object)
        keys, numbers, xs, ys, streets = (
            [key[keep]],
            [number[keep]],
            [x[keep]],
            [y[keep]],
            [street[keep]],
        )
        if gis.addresses is not None:
            points = gis.addresses
            keys.append(points.key)
            numbers.append(points.number)
            xs.append(shapely.get_x(points.points))
            ys.append(shapely.get_y(points.points))
            streets.append(points.key)
        return cls.from_points(
            *(np.concatenate(parts) for parts in (keys, numbers, xs, ys, streets))
        )

    def __len__(self) -> int:
        return len(self.key)

    def locate(self, street_key: str, number: int) -> tuple[float, float, bool] | None:
        """(x, y, known) of a number of a street: its known position (``known``), or one
        interpolated between its known neighbours of the same parity; ``None`` when the
        street has no known number."""
        start, end = np.searchsorted(self.key, [street_key, street_key + "\0"])
        if start == end:
            return None
        numbers = self.number[start:end]
        same = numbers % 2 == number % 2
        rows = np.flatnonzero(same) if same.any() else np.arange(len(numbers))
        numbers = numbers[rows]
        rows = rows + start
        at = int(np.searchsorted(numbers, number))
        if at < len(numbers) and numbers[at] == number:
            return float(self.x[rows[at]]), float(self.y[rows[at]]), True
        if at == 0 or at == len(numbers):
            nearest = rows[min(at, len(numbers) - 1)]
            return float(self.x[nearest]), float(self.y[nearest]), False
        low, high = rows[at - 1], rows[at]
        share = (number - numbers[at - 1]) / (numbers[at] - numbers[at - 1])
        x = self.x[low] + share * (self.x[high] - self.x[low])
        y = self.y[low] + share * (self.y[high] - self.y[low])
        return float(x), float(y), False
