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
from voirie.services.intake import Submission
from voirie.services.merging import split
from voirie.services.pipeline import Pipeline

# Cardboard left at 91 Quai de Valmy (10th arrondissement), a real DansMaRue report, and
# the same seen 5 m away; then places by the Étoile and the Nation, far from both.
VALMY = ((2.363114595220107, 48.87350463761569), (2.363170, 48.873530))
ETOILE = (2.2950, 48.8738)
NATION = (2.3958, 48.8484)
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
    joined an incident and, where the store reserves an incident id for every report (so
    the two still count alike), after a split that opened an incident without a report."""
    code = pipeline.city.services_by_name[SERVICE.casefold()].code
    when = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)

    def submit(n: int, lon: float, lat: float) -> Submission:
        report = Report(f"boundary-{n}", "app", code, lon, lat, when, address="Paris")
        return pipeline.intake.submit(report)

    opened, joined, last = (submit(n, *place) for n, place in enumerate((*VALMY, ETOILE)))
    assert joined.attached
    assert joined.incident_id == opened.incident_id
    assert not last.attached
    if last.incident_id == last.report_id:
        split(pipeline, joined.report_id, "test", "deux dépôts distincts", at=when)
        last = submit(3, *NATION)
        assert not last.attached
    assert last.incident_id != last.report_id
    return last.incident_id
