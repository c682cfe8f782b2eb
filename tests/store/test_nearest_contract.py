"""``Reads.nearby`` (through ``Store.nearest``) on both backends against a brute force.

The 200 real reports of ``tests/data`` are imported; a few incidents are moved onto
another one's point (ties in distance, broken by id) and one in five is closed. The
brute force measures every stored incident in the city's metric projection, keeps the
open ones within the radius, sorts by distance then id and cuts the page: the store,
which stops at the page (a top-N sort on PostGIS, the R*Tree box then distances on
sqlite), must give the same incidents in the same order, the same distances within
1e-6 m and the same columns as the layer read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from voirie.gis.enrich import CityGIS
from voirie.model import OPEN_STATUSES, Status
from voirie.services.pipeline import Pipeline
from voirie.store.selection import Selection

OPEN = tuple(sorted(status.value for status in OPEN_STATUSES))


@pytest.fixture
def layer(pipeline: Pipeline) -> pd.DataFrame:
    """The sample's incidents with ties and closed ones; the stored layer, by id."""
    incidents = pipeline.reads.incidents().sort_values("incident_id", ignore_index=True)
    anchor = incidents.iloc[len(incidents) // 2]
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        for incident_id in incidents["incident_id"].iloc[1:40:6]:  # six share one point
            point = {"lon": float(anchor["lon"]), "lat": float(anchor["lat"])}
            uow.incidents.update(int(incident_id), point)
        for incident_id in incidents["incident_id"].iloc[::5]:
            uow.incidents.update(int(incident_id), {"status": Status.CLOSED.value})
    return pipeline.reads.incidents().sort_values("incident_id", ignore_index=True)


def _brute_force(
    layer: pd.DataFrame, gis: CityGIS, lon: float, lat: float, radius_m: float
) -> pd.DataFrame:
    """Every open incident within the radius, measured one by one, by distance then id."""
    x, y = gis.project(np.array([lon]), np.array([lat]))
    px, py = gis.project(layer["lon"].to_numpy(float), layer["lat"].to_numpy(float))
    found = layer.assign(distance_m=np.hypot(px - x[0], py - y[0]))
    found = found[found["status"].isin(OPEN) & (found["distance_m"] <= radius_m)]
    return found.sort_values(["distance_m", "incident_id"], kind="stable", ignore_index=True)


def test_nearby_is_the_brute_force_page(
    pipeline: Pipeline, layer: pd.DataFrame, paris_gis: CityGIS
) -> None:
    ties = layer.groupby(["lon", "lat"])["incident_id"].transform("size") > 1
    tied = layer[ties & layer["status"].isin(OPEN)].iloc[0]
    centres = [(float(tied["lon"]) + 2e-4, float(tied["lat"]))]  # ~15 m from the ties
    centres += [(float(r["lon"]), float(r["lat"])) for _, r in layer.iloc[3::23].iterrows()]
    cut = tie_cut = 0
    for lon, lat in centres:
        for radius_m in (50.0, 400.0, 2000.0):
            expected_all = _brute_force(layer, paris_gis, lon, lat, radius_m)
            for limit, offset in ((None, 0), (1, 0), (5, 0), (7, 3), (200, 0)):
                selection = Selection(statuses=OPEN, limit=limit, offset=offset)
                found = pipeline.reads.nearby(lon, lat, radius_m, selection)
                stop = None if limit is None else offset + limit
                expected = expected_all.iloc[offset:stop].reset_index(drop=True)
                assert found["incident_id"].tolist() == expected["incident_id"].tolist()
                assert np.allclose(found["distance_m"], expected["distance_m"], rtol=0, atol=1e-6)
                assert list(found.columns) == list(expected.columns)
                # A zone column that the page leaves empty is typed by the page alone.
                columns = [c for c in expected.columns if c != "distance_m"]
                pd.testing.assert_frame_equal(
                    pd.DataFrame(found[columns]), pd.DataFrame(expected[columns]), check_dtype=False
                )
                if stop is not None and len(expected_all) > stop:
                    cut += 1
                    at_cut = expected_all["distance_m"]
                    tie_cut += int(at_cut.iloc[stop - 1] == at_cut.iloc[stop])
    assert cut > 20  # the limit cut the list often
    assert tie_cut > 0  # and at least once between incidents at the same distance


def test_nearby_with_nothing_around_is_empty_with_the_columns(
    pipeline: Pipeline, layer: pd.DataFrame
) -> None:
    found = pipeline.reads.nearby(2.35, 48.85, 1.0, Selection(statuses=("no-such",), limit=5))
    assert found.empty
    assert list(found.columns) == [*layer.columns, "distance_m"]
