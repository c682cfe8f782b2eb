"""Storage: the only code that speaks SQL. One interface, an sqlite and a PostGIS backend.

``open_store`` picks the backend named by the database URL; the backends are imported only
when chosen (psycopg is not needed for a GeoPackage, nor sqlite's GeoPackage code for PostGIS).
"""

from voirie.errors import StoreError
from voirie.settings import StoreSettings
from voirie.store.base import Store, UnitOfWork


def open_store(settings: StoreSettings) -> Store:
    """The backend named by the database URL: ``sqlite:///file`` or ``postgresql://...``."""
    url = settings.database_url
    if settings.read_urls():
        from voirie.store.replicas import replicated_store

        return replicated_store(settings)
    if url.startswith(("postgresql://", "postgres://")):
        from voirie.store.postgis import PostgisStore

        return PostgisStore(
            url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            pool_timeout_s=settings.pool_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
            statement_timeout_ms=settings.statement_timeout_ms,
        )
    if url.startswith("sqlite:///"):
        from voirie.store.sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite:///"))
    raise StoreError(
        f"VOIRIE_DATABASE_URL: unsupported URL {url!r}; "
        "use sqlite:///path/to/file.gpkg or postgresql://user@host:port/dbname"
    )


__all__ = ["Store", "UnitOfWork", "open_store"]
