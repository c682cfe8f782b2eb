"""PostGIS reads a point tile (z >= 14) without parallel workers, whatever the planner
would choose: for such a tile, workers take longer to start (30-60 ms) than the work they
share (bench/RESULTS.md, "z16 tiles 2-4x slower"). Cell tiles (z10, z12) keep the plan
the planner chooses: their work is large enough that workers shorten it.

The database here makes the planner want workers for any statement (parallel costs of
zero), and ``auto_explain`` sends the plan of every statement the store runs to the client
as a notice: the plans of the tile statements themselves, run by the store's own code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import morecantile
import psycopg
import pytest
from datafiles import SAMPLE_200
from psycopg import sql

from voirie.city import City
from voirie.codecs import mvt
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.services.pipeline import Pipeline
from voirie.store.postgis import PostgisStore

VALMY = (2.363114595220107, 48.87350463761569)  # 91 Quai de Valmy: a sample report's place
# Every statement of the database's sessions: workers wanted, plan sent to the client.
EAGER = (
    "parallel_setup_cost = 0",
    "parallel_tuple_cost = 0",
    "min_parallel_table_scan_size = 0",
    "min_parallel_index_scan_size = 0",
    "session_preload_libraries = 'auto_explain'",
    "auto_explain.log_min_duration = 0",
    "auto_explain.log_level = notice",
    "auto_explain.log_format = json",
)


@pytest.fixture
def eager_store(postgis_url: str, paris: City, paris_gis: CityGIS) -> Iterator[PostgisStore]:
    """A store of the 200 sample reports, on a database whose planner wants workers, with
    one pooled connection (the one the test listens to)."""
    dbname = psycopg.conninfo.conninfo_to_dict(postgis_url)["dbname"]
    with psycopg.connect(postgis_url, autocommit=True) as admin:
        for setting in EAGER:
            admin.execute(
                sql.SQL("ALTER DATABASE {} SET " + setting).format(sql.Identifier(str(dbname)))
            )
    store = PostgisStore(postgis_url, min_size=1, max_size=1)
    try:
        Pipeline(paris, store, paris_gis).imports.import_table(read_csv(SAMPLE_200), DANSMARUE)
        store.analyze()
        yield store
    finally:
        store.close()


def _nodes(plan: dict[str, Any]) -> Iterator[str]:
    yield str(plan["Node Type"])
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _tile_plans(store: PostgisStore, z: int, public: bool) -> list[list[str]]:
    """The node types of each plan of an MVT statement the store runs for the tile at ``z``
    holding ``VALMY``."""
    notices: list[str] = []

    def heard(notice: psycopg.errors.Diagnostic) -> None:
        notices.append(notice.message_primary or "")

    with store.pool.connection() as conn:  # the pool's one connection: the tile's
        conn.add_notice_handler(heard)
    try:
        tile = morecantile.tms.get("WebMercatorQuad").tile(*VALMY, z)
        assert store.incident_tile("paris.fr", z, tile.x, tile.y, public=public)
    finally:
        conn.remove_notice_handler(heard)
    plans = [json.loads(text.partition("plan:\n")[2]) for text in notices if "plan:" in text]
    return [list(_nodes(p["Plan"])) for p in plans if "ST_AsMVT(" in p["Query Text"]]


@pytest.mark.parametrize("public", [False, True])
@pytest.mark.parametrize("z", [14, 16])
def test_a_point_tile_is_read_without_parallel_workers(
    eager_store: PostgisStore, z: int, public: bool
) -> None:
    assert z >= mvt.CLUSTER_BELOW_ZOOM
    (nodes,) = _tile_plans(eager_store, z, public)
    assert "Bitmap Heap Scan" in nodes or "Index Scan" in nodes or "Seq Scan" in nodes
    assert not {"Gather", "Gather Merge"} & set(nodes), nodes


@pytest.mark.parametrize("z", [10, 12])
def test_a_cell_tile_keeps_the_planners_workers(eager_store: PostgisStore, z: int) -> None:
    """Also the proof that this database makes the planner want workers for a tile."""
    assert z < mvt.CLUSTER_BELOW_ZOOM
    (nodes,) = _tile_plans(eager_store, z, False)
    assert {"Gather", "Gather Merge"} & set(nodes), nodes
