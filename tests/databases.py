"""PostGIS test databases: the server, the template with every migration, scratch clones.

PostGIS tests run against a real server (``VOIRIE_TEST_POSTGRES_URL``, default the local
one). A template database with the extension and every migration is built once (again
whenever the migrations change); each test gets a fresh database cloned from it and
dropped afterwards. When the server or PostGIS is missing the test skips, except in CI
(``CI=true``) where it fails: a PostGIS test that silently skips in CI proves nothing.

A module of its own (not ``conftest``): test modules import ``BACKENDS`` and
``scratch_database`` from here, and the name ``conftest`` is taken by several files.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from voirie.settings import StoreSettings
from voirie.store import open_store
from voirie.store.base import migrations
from voirie.store.postgis import PostgisStore, describe, lock_key

POSTGRES_URL_ENV = "VOIRIE_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TEMPLATE_PREFIX = "voirie_test_template"
SCRATCH_PATTERN = "^voirie_test_[0-9a-f]{12}$"
"""Names of ``scratch_database``'s clones."""
STALE_AFTER_S = 3600
"""Age past which an unused scratch database is a run's leftover: a test holds its own
for seconds, a whole run takes minutes, and a run killed midway drops nothing."""
CONNECT_TIMEOUT_S = 5


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose external service is missing, or fail it in CI where it must exist."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: PostGIS tests must run, not skip)")
    pytest.skip(reason)


def database_url(server_url: str, dbname: str) -> str:
    """The server URL pointing at another database."""
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{dbname}"))


def _admin(server_url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(server_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)


def _drop(admin: psycopg.Connection[tuple[object, ...]], dbname: str) -> None:
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


def _fingerprint() -> str:
    """Identifies the migrations a template was built from."""
    digest = hashlib.sha256()
    for _, name, text in migrations(PostgisStore.backend):
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()[:16]


# One template per set of migrations: test runs at once on other versions of the schema
# (two checkouts, a branch) each get their own and never rebuild another's.
TEMPLATE_DB = f"{TEMPLATE_PREFIX}_{_fingerprint()}"
TEMPLATE_LOCK = lock_key(TEMPLATE_DB)


def _build_template(admin: psycopg.Connection[tuple[object, ...]], url: str, mark: str) -> None:
    """(Re)create the template database: PostGIS and every migration, then the mark."""
    template = sql.Identifier(TEMPLATE_DB)
    if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEMPLATE_DB,)).fetchone():
        admin.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(template))
        _drop(admin, TEMPLATE_DB)
    admin.execute(sql.SQL("CREATE DATABASE {}").format(template))
    template_url = database_url(url, TEMPLATE_DB)
    try:
        with _admin(template_url) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    except psycopg.Error as exc:
        unavailable(f"cannot create the PostGIS extension at {describe(url)}: {exc}")
    store = PostgisStore(template_url, min_size=1, max_size=1)
    try:
        store.upgrade()
    finally:
        store.close()
    admin.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE true").format(template))
    # Written last: a template whose build was interrupted has no mark and is rebuilt.
    admin.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(template, sql.Literal(mark)))
    _drop_other_templates(admin)


def _drop_other_templates(admin: psycopg.Connection[tuple[object, ...]]) -> None:
    """Drop the templates of other migration sets that no run is cloning right now (a run
    on such a schema takes their lock shared to clone, and rebuilds one that is gone):
    without this, every schema change would leave a database behind on the server."""
    names = admin.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE %s AND datname <> %s",
        (f"{TEMPLATE_PREFIX}_%", TEMPLATE_DB),
    ).fetchall()
    for (name,) in names:
        key = lock_key(name)
        (free,) = admin.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone() or (False,)
        if not free:
            continue
        try:
            admin.execute(
                sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(sql.Identifier(name))
            )
            _drop(admin, name)
        finally:
            admin.execute("SELECT pg_advisory_unlock(%s)", (key,))


def drop_stale_scratch(
    admin: psycopg.Connection[tuple[object, ...]],
    older_than_s: float,
    pattern: str = SCRATCH_PATTERN,
) -> list[str]:
    """Drop the scratch databases (names matching ``pattern``) created more than
    ``older_than_s`` ago that nobody is connected to (the leftovers of killed runs), and
    name them. Their age is that of their
    folder's ``PG_VERSION`` (``pg_stat_file``, for superusers: without the right, none is
    dropped)."""
    try:
        names = admin.execute(
            """
            SELECT d.datname FROM pg_database AS d
            WHERE d.datname ~ %s AND NOT d.datistemplate
              AND (pg_stat_file('base/' || d.oid || '/PG_VERSION')).modification
                  < now() - make_interval(secs => %s)
              AND NOT EXISTS (SELECT 1 FROM pg_stat_activity AS a WHERE a.datid = d.oid)
            """,
            (pattern, older_than_s),
        ).fetchall()
    except psycopg.errors.InsufficientPrivilege:
        return []
    for (name,) in names:
        _drop(admin, name)
    return [name for (name,) in names]


def prepare_server() -> str:
    """URL of a PostgreSQL server with PostGIS, where ``TEMPLATE_DB`` is current (built, or
    rebuilt when the migrations changed)."""
    url = os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL)
    try:
        admin = _admin(url)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL not reachable at {describe(url)} (set {POSTGRES_URL_ENV}): {exc}")
    with admin:
        available = admin.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'"
        ).fetchone()
        if available is None:
            unavailable(f"PostGIS is not installed on the server at {describe(url)}")
        # Test runs may overlap (two terminals, an editor's runner): the template is only
        # rebuilt when the migrations changed, under an exclusive lock that waits for the
        # clones in progress (they hold it shared).
        admin.execute("SELECT pg_advisory_lock(%s)", (TEMPLATE_LOCK,))
        try:
            mark = admin.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                (TEMPLATE_DB,),
            ).fetchone()
            if mark is None or mark[0] != _fingerprint():
                _build_template(admin, url, _fingerprint())
            drop_stale_scratch(admin, STALE_AFTER_S)
        finally:
            admin.execute("SELECT pg_advisory_unlock(%s)", (TEMPLATE_LOCK,))
    return url


def _create(server_url: str, create: sql.Composed) -> None:
    """Run a CREATE DATABASE while no template is being rebuilt."""
    with _admin(server_url) as admin:
        admin.execute("SELECT pg_advisory_lock_shared(%s)", (TEMPLATE_LOCK,))
        try:
            admin.execute(create)
        finally:
            admin.execute("SELECT pg_advisory_unlock_shared(%s)", (TEMPLATE_LOCK,))


def scratch_database(server_url: str, template: str | None = TEMPLATE_DB) -> Iterator[str]:
    """A new database (a clone of ``template``, or empty) for one test, dropped afterwards."""
    name = f"voirie_test_{secrets.token_hex(6)}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        create = sql.SQL("{} TEMPLATE {}").format(create, sql.Identifier(template))
    try:
        _create(server_url, create)
    except psycopg.errors.InvalidCatalogName:
        if not template:
            raise
        # A run on other migrations (another checkout, an editor's runner) dropped this
        # run's template between two clones: build it again, then clone.
        prepare_server()
        _create(server_url, create)
    try:
        yield database_url(server_url, name)
    finally:
        with _admin(server_url) as admin:
            _drop(admin, name)


def store_urls(
    request: pytest.FixtureRequest, backend: str, folder: Path, template: str | None = TEMPLATE_DB
) -> Iterator[str]:
    """The URL of a store of ``backend`` for a test or a module, held while iterated: a
    file in ``folder`` on sqlite; on PostGIS a scratch database (a clone of ``template``,
    or empty) of the session's server, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'voirie.gpkg'}"
        return
    yield from scratch_database(str(request.getfixturevalue("postgis_server")), template)


def allow_connections(server_url: str, database: str, allowed: bool) -> None:
    """Refuse (or allow again) new connections to ``database`` and, when refusing, end the
    open ones: to its clients, the database is down (the server itself keeps running)."""
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(database), sql.SQL("true" if allowed else "false")
            )
        )
        if not allowed:
            # A connection the server was still starting when the database was closed
            # (a pool refilling in the background) is not yet listed: terminate until none
            # is left, or a test of a database down would be served by it.
            deadline = time.monotonic() + 10
            while admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchone() != (0,):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{database}: connections still open after 10 s")
                time.sleep(0.05)


BACKENDS = ["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)]


def opened_postgis(url: str, pool_max_size: int) -> Iterator[PostgisStore]:
    """The PostGIS store at ``url`` with a pool of at most ``pool_max_size`` connections,
    closed afterwards (a fixture's body, for tests of PostGIS-only behaviour)."""
    opened = open_store(
        StoreSettings(database_url=url, pool_min_size=1, pool_max_size=pool_max_size)
    )
    assert isinstance(opened, PostgisStore)
    yield opened
    opened.close()
