"""The ids a POST prefetches come from a statement PostgreSQL plans once per connection.

Bound as two arrays, the prefetch was planned anew at every POST (a custom plan: a
generic one cannot know the arrays' lengths), a twentieth of the server's CPU for a
POST (issue 20). With the tables and counts in its text it has no parameter, so once
psycopg prepares it (from its sixth execution on a connection) PostgreSQL reuses one
generic plan; the ids it hands out stay those of the sequences, checked by
``test_write_round_trips``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from databases import opened_postgis

from voirie.store.postgis import PostgisStore

JURISDICTION = "paris.fr"
COUNTS = {"reports": 1, "events": 3, "incidents": 1, "assignments": 1}


@pytest.fixture
def store(postgis_url: str) -> Iterator[PostgisStore]:
    yield from opened_postgis(postgis_url, pool_max_size=1)


def test_the_prefetch_is_planned_once_per_connection(store: PostgisStore) -> None:
    drawn: list[int] = []
    for _ in range(12):  # one connection (pool of one), a pipelined transaction each
        with store.transaction(JURISDICTION, pipelined=True) as uow:
            uow.tables.prefetch_ids(COUNTS)
            drawn += uow.tables.reserve_ids("events", 3).tolist()
    with store.transaction(JURISDICTION) as uow:
        plans = uow.session.run(
            "SELECT parameter_types::text, generic_plans, custom_plans "
            "FROM pg_prepared_statements WHERE strpos(statement, 'pg_get_serial_sequence(c.t') > 0"
        ).fetchall()
    assert plans == [("{}", 12 - 5, 0)]  # prepared from its sixth execution
    assert len(set(drawn)) == len(drawn) == 36


def test_the_prefetch_refuses_a_table_without_ids(store: PostgisStore) -> None:
    with store.transaction(JURISDICTION) as uow, pytest.raises(KeyError, match="report_zones"):
        uow.session.prefetch_ids({"report_zones": 1})
