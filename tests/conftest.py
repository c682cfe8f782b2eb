"""Shared fixtures: the Paris city and its GIS, and stores of every backend.

PostGIS tests run against a real server (``VOIRIE_TEST_POSTGRES_URL``, default the local
one). A template database with the extension and every migration is built once (again
whenever the migrations change); each test gets a fresh database cloned from it and
dropped afterwards. When the
server or PostGIS is missing the test skips, except in CI (``CI=true``) where it fails:
a PostGIS test that silently skips in CI proves nothing.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd
import psycopg
import pytest
from psycopg import sql

from voirie.city import City, load_city
from voirie.gis.enrich import CityGIS
from voirie.ingest.sources import read_csv
from voirie.settings import StoreSettings
from voirie.store import Store, open_store
from voirie.store.base import migrations
from voirie.store.postgis import PostgisStore, describe, lock_key

POSTGRES_URL_ENV = "VOIRIE_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TEMPLATE_PREFIX = "voirie_test_template"
CONNECT_TIMEOUT_S = 5
PARIS_REPORTS = Path(__file__).parents[1] / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"


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
    admin.execute(
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
    )


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
            admin.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(
                sql.Identifier(name)))
            _drop(admin, name)
        finally:
            admin.execute("SELECT pg_advisory_unlock(%s)", (key,))


@pytest.fixture(scope="session")
def postgis_server() -> str:
    """URL of a PostgreSQL server with PostGIS, where ``voirie_test_template`` is current."""
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
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                "WHERE datname = %s",
                (TEMPLATE_DB,),
            ).fetchone()
            if mark is None or mark[0] != _fingerprint():
                _build_template(admin, url, _fingerprint())
        finally:
            admin.execute("SELECT pg_advisory_unlock(%s)", (TEMPLATE_LOCK,))
    return url


def scratch_database(server_url: str, template: str | None = TEMPLATE_DB) -> Iterator[str]:
    """A new database (a clone of ``template``, or empty) for one test, dropped afterwards."""
    name = f"voirie_test_{secrets.token_hex(6)}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        create = sql.SQL("{} TEMPLATE {}").format(create, sql.Identifier(template))
    with _admin(server_url) as admin:
        admin.execute("SELECT pg_advisory_lock_shared(%s)", (TEMPLATE_LOCK,))
        try:
            admin.execute(create)
        finally:
            admin.execute("SELECT pg_advisory_unlock_shared(%s)", (TEMPLATE_LOCK,))
    try:
        yield database_url(server_url, name)
    finally:
        with _admin(server_url) as admin:
            _drop(admin, name)


@pytest.fixture
def postgis_url(postgis_server: str) -> Iterator[str]:
    """A fresh database with PostGIS and the current schema, for this test only."""
    yield from scratch_database(postgis_server)


@pytest.fixture
def empty_postgis_url(postgis_server: str) -> Iterator[str]:
    """A fresh empty database (no extension, no schema), for this test only."""
    yield from scratch_database(postgis_server, None)


BACKENDS = ["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """``VOIRIE_DATABASE_URL`` of the store of each backend (``store`` upgrades it)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'voirie.gpkg'}"
    return str(request.getfixturevalue("postgis_url"))


@pytest.fixture(params=BACKENDS)
def empty_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """``VOIRIE_DATABASE_URL`` of a store of each backend that was never upgraded."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.gpkg'}"
    return str(request.getfixturevalue("empty_postgis_url"))


def _connect(url: str) -> Store:
    """A store for a URL, through the same factory the CLI and the API use."""
    return open_store(StoreSettings(database_url=url, pool_min_size=1, pool_max_size=4))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An upgraded store of each backend (``[sqlite]`` and ``[postgis]``), closed afterwards."""
    opened = _connect(store_url)
    opened.upgrade()
    yield opened
    opened.close()


@pytest.fixture(params=BACKENDS)
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Two fresh upgraded stores of one backend (the same ids will be reserved in both)."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            urls = [f"sqlite:///{tmp_path / f'{name}.gpkg'}" for name in ("a", "b")]
        else:
            server = request.getfixturevalue("postgis_server")
            urls = [stack.enter_context(contextmanager(scratch_database)(server))
                    for _ in range(2)]
        stores = [open_store(StoreSettings(database_url=u, pool_min_size=1, pool_max_size=2))
                  for u in urls]
        for opened in stores:
            stack.callback(opened.close)
            opened.upgrade()
        yield stores[0], stores[1]


@pytest.fixture(scope="session")
def paris() -> City:
    """The reference city, from its folder in ``cities/``."""
    return load_city("paris")


@pytest.fixture(scope="session")
def paris_gis(paris: City) -> CityGIS:
    """Paris's reference layers with their indexes (about 2 s to build: built once)."""
    return CityGIS(paris)


@pytest.fixture(scope="session")
def paris_report_points(paris_gis: CityGIS) -> tuple[np.ndarray, np.ndarray]:
    """Metric x/y of every bundled Paris report that has coordinates."""
    raw = read_csv(PARIS_REPORTS).rows
    lon = pd.to_numeric(raw["longitude"], errors="coerce").to_numpy()
    lat = pd.to_numeric(raw["latitude"], errors="coerce").to_numpy()
    keep = np.isfinite(lon) & np.isfinite(lat)
    return paris_gis.project(lon[keep], lat[keep])
