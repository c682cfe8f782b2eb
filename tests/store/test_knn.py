"""The nearest rows within a radius (``voirie.store.knn``): exact answers, few projections.

``LocalMetric``'s error bound holds over the whole box of the largest search; the numpy
search (sqlite) gives the brute force's page and total on dense clouds with ties and rows
on the circle's edge while projecting a small share of them; on PostGIS the statement
projects the page's candidates and the edge only (its plan says how many rows it
measured) and still gives the total when the page is past the end.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import psycopg
import pytest
from datafiles import SAMPLE_200

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.gis.metric import bbox_around
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.model import OPEN_STATUSES
from voirie.services.citizens import MAX_RADIUS_M
from voirie.services.pipeline import Pipeline
from voirie.store.base import MetricCRS
from voirie.store.knn import LocalMetric, knn_sql, nearest_ids
from voirie.store.postgis import DIALECT, PostgisStore
from voirie.store.schema import COLUMNS
from voirie.store.selection import Selection

OPEN = tuple(sorted(status.value for status in OPEN_STATUSES))
VALMY = (2.3631, 48.8735)
Projection = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _brute(
    ids: np.ndarray, lon: np.ndarray, lat: np.ndarray, project: Projection, radius_m: float
) -> tuple[np.ndarray, np.ndarray]:
    x, y = project(np.array([VALMY[0]]), np.array([VALMY[1]]))
    px, py = project(lon, lat)
    distance = np.hypot(px - x[0], py - y[0])
    within = distance <= radius_m
    order = np.lexsort((ids[within], distance[within]))
    return ids[within][order], distance[within][order]


@pytest.mark.parametrize("radius_m", [5.0, 500.0, MAX_RADIUS_M])
def test_the_error_bound_holds_over_the_whole_box(paris_gis: CityGIS, radius_m: float) -> None:
    local = LocalMetric.around(VALMY, radius_m, paris_gis.project)
    west, south, east, north = bbox_around(*VALMY, radius_m)
    grid_lon, grid_lat = np.meshgrid(np.linspace(west, east, 201), np.linspace(south, north, 201))
    lon, lat = grid_lon.ravel(), grid_lat.ravel()
    x, y = paris_gis.project(np.array([VALMY[0]]), np.array([VALMY[1]]))
    px, py = paris_gis.project(lon, lat)
    error = np.abs(np.hypot(px - x[0], py - y[0]) - local.distance(lon, lat))
    assert error.max() <= local.error_m
    assert local.error_m < radius_m / 200  # narrow: the ring holds few rows


def _cloud(paris_gis: CityGIS, radius_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """20,000 points in the circle's box, a tenth of them on ten shared points (ties),
    and 300 within 2 cm of the circle (the ring)."""
    rng = np.random.default_rng(19)
    west, south, east, north = bbox_around(*VALMY, radius_m)
    lon = rng.uniform(west, east, 20_000)
    lat = rng.uniform(south, north, 20_000)
    lon[:2_000], lat[:2_000] = (
        lon[np.arange(2_000) % 10 + 5_000],
        lat[np.arange(2_000) % 10 + 5_000],
    )
    local = LocalMetric.around(VALMY, radius_m, paris_gis.project)
    angle = rng.uniform(0, 2 * np.pi, 300)
    reach = radius_m + rng.uniform(-0.02, 0.02, 300)
    mx, my = reach * np.cos(angle), reach * np.sin(angle)
    det = local.a * local.d - local.b * local.c
    lon[-300:] = VALMY[0] + (local.d * mx - local.b * my) / det
    lat[-300:] = VALMY[1] + (local.a * my - local.c * mx) / det
    ids = rng.permutation(20_000).astype(np.int64) + 1
    return ids, lon, lat


@pytest.mark.parametrize("radius_m", [50.0, 500.0])
def test_numpy_search_is_the_brute_force_and_projects_few(
    paris_gis: CityGIS, radius_m: float
) -> None:
    ids, lon, lat = _cloud(paris_gis, radius_m)
    want_ids, want_distance = _brute(ids, lon, lat, paris_gis.project, radius_m)
    projected = []

    def counting(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        projected.append(len(x))
        return paris_gis.project(x, y)

    for limit, offset in ((100, 0), (7, 3), (1, 0), (50, 2_000), (10, 50_000)):
        projected.clear()
        local = LocalMetric.around(VALMY, radius_m, counting)
        selection = Selection(limit=limit, offset=offset)
        got_ids, got_distance, total = nearest_ids(
            ids, lon, lat, local, radius_m, selection, counting
        )
        assert total == len(want_ids)
        assert got_ids.tolist() == want_ids[offset : offset + limit].tolist()
        assert got_distance.tolist() == want_distance[offset : offset + limit].tolist()
        if offset + limit < 1_000:
            assert sum(projected) < len(ids) / 10


@pytest.mark.postgis
def test_postgis_projects_the_candidates_and_the_edge_only(
    postgis_url: str, paris: City, paris_gis: CityGIS
) -> None:
    store = PostgisStore(postgis_url, max_size=1)
    try:
        store.upgrade()
        Pipeline(paris, store, paris_gis).imports.import_table(read_csv(SAMPLE_200), DANSMARUE)
        ids, lon, lat = _cloud(paris_gis, 500.0)
        ids += 1_000_000  # past the sample's own
        moved = {"id": "c.id", "lon": "c.lon", "lat": "c.lat", "status": "'new'"}
        columns = [*COLUMNS["incidents"], "geom"]
        values = [moved.get(name, f"t.{name}") for name in COLUMNS["incidents"]]
        values.append("ST_SetSRID(ST_MakePoint(c.lon, c.lat), 4326)")
        with psycopg.connect(postgis_url, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(  # the cloud: copies of the first incident moved to its points
                f"INSERT INTO incidents ({', '.join(columns)}) SELECT {', '.join(values)} "
                "FROM unnest(%s::bigint[], %s::float8[], %s::float8[]) AS c(id, lon, lat), "
                "(SELECT * FROM incidents ORDER BY id LIMIT 1) AS t",
                (ids.tolist(), lon.tolist(), lat.tolist()),
            )
            cur.execute("UPDATE incidents SET status = 'closed' WHERE id < 1000000")
            cur.execute("ANALYZE incidents")
        want_ids, want_distance = _brute(ids, lon, lat, paris_gis.project, 500.0)
        metric = MetricCRS(2154, paris_gis.project)
        box = bbox_around(*VALMY, 500.0)
        for limit, offset in ((100, 0), (7, 3), (10, 50_000)):
            selection = Selection(statuses=OPEN, bbox=box, limit=limit, offset=offset)
            page = store.nearest("incidents", "paris.fr", selection, VALMY, 500.0, metric)
            assert page["row_id"].tolist() == want_ids[offset : offset + limit].tolist()
            assert np.allclose(page["distance_m"], want_distance[offset : offset + limit])
            rows, total = store.nearby_rows("paris.fr", selection, VALMY, 500.0, metric)
            assert total == len(want_ids)
            assert [row[0] for row in rows] == page["row_id"].tolist()
        local = LocalMetric.around(VALMY, 500.0, paris_gis.project)
        selection = Selection(statuses=OPEN, bbox=box, limit=100)
        text, params = knn_sql("incidents", "paris.fr", selection, DIALECT, local, 500.0, 2154)
        plan = store.rows(f"EXPLAIN (ANALYZE, FORMAT JSON) {text}", params)[0][0]
        measured = _rows_of(plan, "measured")
        assert 100 <= measured < len(ids) / 20
    finally:
        store.close()


def _rows_of(plan: object, cte: str) -> int:
    """Rows the plan's node producing the CTE ``cte`` returned."""
    found: list[int] = []

    def walk(node: object) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if node.get("Subplan Name") == f"CTE {cte}":
                found.append(int(node["Actual Rows"]))
            for value in node.values():
                walk(value)

    walk(plan)
    assert found, f"no CTE {cte} in the plan"
    return found[0]


def test_an_offset_past_the_end_still_gives_the_total(pipeline: Pipeline) -> None:
    metric = pipeline.reads.metric
    box = bbox_around(*VALMY, 2_000.0)
    everything = Selection(statuses=OPEN, bbox=box, limit=None)
    j = pipeline.city.jurisdiction_id
    rows, total = pipeline.store.nearby_rows(j, everything, VALMY, 2_000.0, metric)
    assert total == len(rows) > 0
    past = Selection(statuses=OPEN, bbox=box, limit=5, offset=total + 10)
    assert pipeline.store.nearby_rows(j, past, VALMY, 2_000.0, metric) == ([], total)
