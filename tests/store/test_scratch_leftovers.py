"""The scratch databases a killed test run leaves on the server are dropped by a later run
(``databases.drop_stale_scratch``, called when the server is prepared): those older than
the given age that nobody is connected to, never one in use."""

from __future__ import annotations

import re
import secrets
import time

import psycopg
from databases import database_url, drop_stale_scratch
from psycopg import sql


def _exists(admin: psycopg.Connection[tuple[object, ...]], name: str) -> bool:
    found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return found is not None


def test_unused_old_scratch_databases_are_dropped_and_used_ones_kept(postgis_server: str) -> None:
    names = [f"voirie_test_{secrets.token_hex(6)}" for _ in range(2)]
    # Only this test's own databases: another worker's may be between CREATE and connect.
    pattern = "^(" + "|".join(re.escape(n) for n in names) + ")$"
    with psycopg.connect(postgis_server, autocommit=True) as admin:
        for name in names:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            with psycopg.connect(database_url(postgis_server, names[1])):
                assert drop_stale_scratch(admin, 3600, pattern) == []  # too young
                time.sleep(1.1)
                assert drop_stale_scratch(admin, 1, pattern) == [names[0]]
                assert not _exists(admin, names[0])
                assert _exists(admin, names[1])  # connected to: kept
        finally:
            for name in names:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
