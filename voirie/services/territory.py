"""The territory check: reports outside the city are refused, with a reason that says
when swapping latitude and longitude would put them in (a frequent mistake of sources).
The bulk path quarantines such rows; the per-report path refuses the report."""

from __future__ import annotations

import pandas as pd

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.ingest.validate import QUARANTINE_COLUMNS
from voirie.model import Flag


def _words(city: City, swapped_inside: bool, lon: float, lat: float) -> str:
    name = city.config.name
    if swapped_inside:
        return f"latitude and longitude look swapped (swapped, the point falls in {name})"
    # The place after a colon: a summary counts reasons by what comes before it.
    return f"outside the territory of {name}: ({lon:.6f}, {lat:.6f})"


def outside_quarantine(city: City, gis: CityGIS, reports: pd.DataFrame, field: str) -> pd.DataFrame:
    """Quarantine rows of enriched reports outside the city (``QUARANTINE_COLUMNS``),
    naming ``field`` (the source's position columns)."""
    out = reports[reports["outside_territory"]]
    if out.empty:  # the usual case: skip an enrichment of nothing
        return pd.DataFrame(columns=QUARANTINE_COLUMNS)
    swapped = gis.enrich(out["lat"].to_numpy(), out["lon"].to_numpy())
    inside_if_swapped = ~swapped["outside_territory"].to_numpy()
    reason = [
        _words(city, swap, lon, lat)
        for swap, lon, lat in zip(inside_if_swapped, out["lon"], out["lat"], strict=True)
    ]
    return pd.DataFrame(
        {
            "row": out["row"].to_numpy(),
            "external_id": out["external_id"].to_numpy(),
            "field": field,
            "reason": reason,
        }
    )


def outside_reason(city: City, gis: CityGIS, lon: float, lat: float) -> str:
    """Why a point outside the city is refused (the reason an import quarantines it)."""
    swapped = gis.enrich_one(lat, lon, None)
    return _words(city, not swapped[Flag.OUTSIDE_TERRITORY], lon, lat)
