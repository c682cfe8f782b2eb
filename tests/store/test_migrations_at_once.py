"""The migration runner applies every pending migration in one transaction (one commit on
a new database, not one per migration) and reads an up-to-date database without taking
the migration lock. The schema it leaves is the one the migrations applied one by one
(each in its own transaction, as the runner did before) leave; a migration that fails
leaves nothing applied and its error names its file."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import psycopg
import pytest
from databases import BACKENDS, scratch_database

from voirie.settings import StoreSettings
from voirie.store import Store, gpkg, open_store
from voirie.store.base import migrations
from voirie.store.postgis import _MIGRATION_LOCK, PostgisStore
from voirie.store.schema import POINT_TABLES
from voirie.store.sqlite import SqliteStore

# Every object of the public schema as PostgreSQL describes it (PostGIS's own left out).
_PG_SCHEMA = [
    """SELECT table_name, column_name, data_type, column_default, is_nullable
       FROM information_schema.columns WHERE table_schema = 'public'
       AND table_name NOT IN ('spatial_ref_sys', 'geometry_columns', 'geography_columns')""",
    "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
       WHERE connamespace = 'public'::regnamespace AND conrelid <> 0""",
    "SELECT tgrelid::regclass::text, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal",
    """SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p
       WHERE p.pronamespace = 'public'::regnamespace AND NOT EXISTS (
         SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')""",
    "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public'",
    "SELECT version, name FROM voirie_migrations",
]


@contextmanager
def _empty_url(
    backend: str, request: pytest.FixtureRequest, folder: Path, name: str = "voirie"
) -> Iterator[str]:
    """A store URL of ``backend`` that was never upgraded (``name``: its file on sqlite),
    held for the block."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / f'{name}.gpkg'}"
        return
    yield from scratch_database(str(request.getfixturevalue("postgis_server")), None)


def _open(url: str) -> Store:
    return open_store(StoreSettings(database_url=url, pool_min_size=1, pool_max_size=2))


def _schema(url: str) -> list[object]:
    """A sorted description of every table, index, trigger, constraint, function and view,
    and of the migrations recorded."""
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
            rows += conn.execute("SELECT version, name FROM voirie_migrations").fetchall()
            rows += [
                conn.execute(f"PRAGMA {p}").fetchone() for p in ("application_id", "user_version")
            ]
        return sorted(map(repr, rows))
    with psycopg.connect(url) as conn:
        return sorted(repr(row) for query in _PG_SCHEMA for row in conn.execute(query))


def _one_by_one(url: str) -> None:
    """Each migration in its own transaction, recorded as the runner records it."""
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)) as conn:
            gpkg.register_functions(conn)
            conn.execute(
                "CREATE TABLE voirie_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DATETIME NOT NULL)"
            )
            for version, name, text in migrations("sqlite"):
                rtrees = "".join(gpkg.rtree_sql(t) for t in sorted(POINT_TABLES))
                conn.executescript(
                    f"BEGIN;\n{text}\n{rtrees if version == 1 else ''}\n"
                    f"INSERT INTO voirie_migrations VALUES ({version}, '{name}', 'now');\nCOMMIT;"
                )
        return
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE voirie_migrations (version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, name, text in migrations("postgis"):
            with conn.transaction():
                conn.execute(text)  # a packaged migration file, run as a script
                conn.execute("INSERT INTO voirie_migrations VALUES (%s, %s)", (version, name))


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_schema_as_one_migration_at_a_time(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with (
        _empty_url(backend, request, tmp_path, "at_once") as at_once,
        _empty_url(backend, request, tmp_path, "one_by_one") as one_by_one,
    ):
        store = _open(at_once)
        try:
            applied = store.upgrade()
        finally:
            store.close()
        _one_by_one(one_by_one)
        assert applied == [version for version, _, _ in migrations(backend)]
        assert _schema(at_once) == _schema(one_by_one)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failed_migration_leaves_none_applied(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Migration 0002 fails (its table already exists): 0001, applied in the same
    transaction, is rolled back with it, and the error names 0002's file."""
    with _empty_url(backend, request, tmp_path) as url:
        _execute(url, "CREATE TABLE api_tokens (id integer)")
        store = _open(url)
        try:
            with pytest.raises(Exception, match="api_tokens") as failed:
                store.upgrade()
            assert store.schema_version() == 0
            notes = getattr(failed.value, "__notes__", [])
            assert "while applying migration 0002_api_tokens.sql" in notes
        finally:
            store.close()
        assert _tables(url) - {"voirie_migrations"} == {"api_tokens"}


def test_an_up_to_date_store_upgrades_without_the_migration_lock(store: Store) -> None:
    """While another process holds the lock migrations take (sqlite's write lock, the
    PostGIS advisory lock), upgrading a store already up to date returns at once."""
    done: list[list[int]] = []
    upgrading = threading.Thread(target=lambda: done.append(store.upgrade()), daemon=True)
    holder: sqlite3.Connection | psycopg.Connection[tuple[object, ...]]
    if isinstance(store, SqliteStore):  # another connection holds the write lock
        holder = sqlite3.connect(store.path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    else:
        assert isinstance(store, PostgisStore)
        holder = psycopg.connect(store.url, autocommit=True)
        holder.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
    try:
        upgrading.start()
        upgrading.join(timeout=30)  # not a speed bound: the old runner waits for the lock
        assert done == [[]]
    finally:
        holder.close()
        upgrading.join()


def _tables(url: str) -> set[str]:
    """The names of the tables of the store's own schema."""
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    else:
        with psycopg.connect(url) as pg:
            rows = pg.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'spatial_ref_sys'"
            ).fetchall()
    return {str(name) for (name,) in rows}


def _execute(url: str, statement: str) -> None:
    """One statement on a connection of its own, committed."""
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)) as conn:
            conn.execute(statement)
        return
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(statement.encode())
