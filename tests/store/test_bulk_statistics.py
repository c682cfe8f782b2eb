"""The statistics a bulk load refreshes while it runs (``Store.analyze(quick=True)``): on
PostGIS a small sample (``QUICK_STATISTICS_TARGET``), then the full one at its end for a
table larger than ``SMALL_TABLE_BYTES`` (a small one keeps the small sample)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from databases import opened_postgis
from eventrows import events

from voirie.store import postgis
from voirie.store.postgis import QUICK_STATISTICS_TARGET, PostgisStore

J = "paris.fr"
ROWS = 6_000
"""More distinct ids than the quick sample's histogram has bounds, and than the full one's."""
pytestmark = pytest.mark.postgis


@pytest.fixture
def store(postgis_url: str) -> Iterator[PostgisStore]:
    yield from opened_postgis(postgis_url, pool_max_size=2)


def _id_bounds(url: str) -> int:
    """Bounds of the histogram of ``events.id`` (one more than its buckets)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT array_length(histogram_bounds::text::bigint[], 1) FROM pg_stats "
            "WHERE tablename = 'events' AND attname = 'id'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_quick_analyze_keeps_a_small_sample_and_a_full_one_replaces_it(
    store: PostgisStore, postgis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgis, "SMALL_TABLE_BYTES", 0)  # every table is large
    with store.transaction(J) as uow:
        uow.tables.insert("events", events(uow.tables.reserve_ids("events", ROWS), "bulk"))
    store.analyze(["events"], quick=True)
    assert _id_bounds(postgis_url) == QUICK_STATISTICS_TARGET + 1
    store.analyze(["events"])
    with psycopg.connect(postgis_url) as conn:
        (default,) = conn.execute("SHOW default_statistics_target").fetchone() or ("100",)
    assert _id_bounds(postgis_url) == int(default) + 1 > QUICK_STATISTICS_TARGET + 1


def test_a_small_table_gets_the_small_sample_from_a_full_analyze(
    store: PostgisStore, postgis_url: str
) -> None:
    with store.transaction(J) as uow:
        uow.tables.insert("events", events(uow.tables.reserve_ids("events", ROWS), "bulk"))
    store.analyze()
    assert _id_bounds(postgis_url) == QUICK_STATISTICS_TARGET + 1


def test_a_quick_analyze_leaves_the_session_target_alone(
    store: PostgisStore, postgis_url: str
) -> None:
    store.analyze(["events"], quick=True)
    with store.pool.connection() as conn:  # the pool's only idle connection: the one used
        (target,) = conn.execute("SHOW default_statistics_target").fetchone() or ("",)
    assert int(target) != QUICK_STATISTICS_TARGET
