"""Helpers of the tests that move an incident across a zone boundary (issue 16): a point
in the neighbouring zone, and an incident whose id is not its first report's id (so a
read that confused the two would be seen).

A module of its own (not ``conftest``): the service and API tests both import it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import geopandas as gpd
import numpy as np
import shapely

from voirie.gis.enrich import CityGIS
from voirie.model import Report
from voirie.services.pipeline import Pipeline

# Cardboard left at 91 Quai de Valmy (10th arrondissement), a real DansMaRue report, and
# the same seen 5 m away; then a place by the Étoile, far from both.
VALMY = ((2.363114595220107, 48.87350463761569), (2.363170, 48.873530))
ETOILE = (2.2950, 48.8738)
SERVICE = "Cartons ou sacs de déchets ménagers"


def across_the_boundary(gis: CityGIS, layer: str, lon: float, lat: float) -> tuple[float, float]:
    """A point (WGS84) in the zone of ``layer`` next to the one of (lon, lat), within 1 km
    of it: inside the neighbour, near the boundary the pin crosses."""
    zones = gis.zones[layer].zones.to_crs(2154)
    x, y = gis.project(np.array([lon]), np.array([lat]))
    here = shapely.Point(float(x[0]), float(y[0]))
    others = zones[~zones.contains(here)]
    neighbour = others.loc[others.distance(here).idxmin(), "geometry"]
    inside = neighbour.intersection(here.buffer(1000)).representative_point()
    point = gpd.GeoSeries([inside], crs=2154).to_crs(4326).iloc[0]
    return float(point.x), float(point.y)


def unaligned_incident(pipeline: Pipeline) -> int:
    """A new incident whose id is not its first report's: submitted after a report that
    joined an incident (reports and incidents no longer count alike)."""
    code = pipeline.city.services_by_name[SERVICE.casefold()].code
    when = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)
    places = (*VALMY, ETOILE)
    found = [
        pipeline.intake.submit(
            Report(f"boundary-{n}", "app", code, lon, lat, when, address="Paris")
        )
        for n, (lon, lat) in enumerate(places)
    ]
    opened, joined, last = found
    assert joined.attached
    assert joined.incident_id == opened.incident_id
    assert not last.attached
    assert last.incident_id != last.report_id
    return last.incident_id
