"""Street geocoding against the city's own street layer (no external service).

A citizen types "12 rue de Rivoli" or "bd Voltaire": the text is reduced to a street key
with the same normalisation the snapping uses (:mod:`voirie.gis.streetnames`), then
matched against the keys of the street segments. An exact key wins; otherwise streets
whose key contains every word of the query are offered, longest first. A street's
position is the point of its segments nearest to their centre (on the street, never in a
building block between two branches).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from voirie.gis.enrich import CityGIS
from voirie.gis.streetnames import normalize_street, street_from_address


@dataclass(frozen=True)
class StreetMatch:
    """A street of the city that a query names, with a WGS84 point on it."""

    street_name: str
    lon: float
    lat: float
    exact: bool


def geocode_street(gis: CityGIS, query: str, limit: int = 5) -> list[StreetMatch]:
    """Streets matching ``query`` (a street name or a postal address), best first.

    Empty when the city has no street layer or nothing matches.
    """
    if gis.streets is None:
        return []
    key = street_from_address(query) or normalize_street(query)
    if not key:
        return []
    keys = pd.Series(gis.street_keys, dtype=object)
    exact = (keys == key).to_numpy()
    words = key.split()
    partial = (
        keys.map(lambda k: isinstance(k, str) and all(w in k.split() for w in words)).to_numpy(bool)
        & ~exact
    )
    matches: list[StreetMatch] = []
    for mask, is_exact in ((exact, True), (partial, False)):
        if not mask.any():
            continue
        found = pd.DataFrame(
            {
                "key": keys[mask].to_numpy(),
                "name": gis.streets["street_name"].to_numpy()[mask],
                "length": shapely.length(gis.streets_geometry[mask]),
                "index": np.flatnonzero(mask),
            }
        )
        totals = found.groupby("key")["length"].sum().sort_values(ascending=False, kind="stable")
        for street_key in totals.index[: limit - len(matches)]:
            rows = found[found["key"] == street_key]
            matches.append(_match(gis, rows, is_exact))
        if len(matches) >= limit:
            break
    return matches


def _match(gis: CityGIS, rows: pd.DataFrame, exact: bool) -> StreetMatch:
    """One street: its most common spelling and the point of it nearest its centre."""
    lines = shapely.union_all(gis.streets_geometry[rows["index"].to_numpy()])
    centre = shapely.centroid(lines)
    _, point = shapely.shortest_line(centre, lines).coords
    lon, lat = gis.to_wgs84.transform(point[0], point[1])
    name = str(rows["name"].mode().iloc[0])
    return StreetMatch(
        street_name=name, lon=round(float(lon), 6), lat=round(float(lat), 6), exact=exact
    )
