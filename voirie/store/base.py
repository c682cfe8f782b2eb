"""The storage interface every backend implements, and the factory that picks one.

Stages never hold a connection: the pipeline opens a unit of work (one transaction),
asks it for what it needs as DataFrames and hands it DataFrames to write. Rows follow the
column lists of ``voirie.store.schema``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from importlib import resources
from typing import Protocol

import numpy as np
import pandas as pd

from voirie.errors import StoreError
from voirie.settings import StoreSettings

BBox = tuple[float, float, float, float]


class UnitOfWork(Protocol):
    """One transaction: everything written through it commits together or not at all."""

    def lock(self, keys: Sequence[str]) -> None:
        """Serialize writers that touch the same keys (e.g. one service in one city)."""

    def known_reports(self, source: str, external_ids: Sequence[str]) -> pd.DataFrame:
        """``external_id`` and ``content_hash`` of the given ids already stored for a source."""

    def open_incidents(
        self, bbox: BBox, service_codes: Sequence[str], since: datetime
    ) -> pd.DataFrame:
        """Open incidents of these services in a WGS84 bbox, last reported at or after ``since``.

        Columns: incident_id, lon, lat, service_code, last_reported_at.
        """

    def reserve_ids(self, table: str, n: int) -> np.ndarray:
        """``n`` fresh ids for ``table``, so rows written in this batch can refer to each other."""

    def insert(self, table: str, rows: pd.DataFrame) -> None:
        """Append rows (columns as in ``schema.COLUMNS[table]``)."""

    def add_to_incidents(self, rows: pd.DataFrame) -> None:
        """Count attached reports (columns incident_id, added, last_reported_at, updated_at)."""


class Store(Protocol):
    """A storage backend."""

    backend: str

    def upgrade(self) -> list[int]:
        """Apply pending numbered migrations; return the versions applied."""

    def schema_version(self) -> int:
        """The highest migration applied (0 for an empty database)."""

    def transaction(self, jurisdiction_id: str) -> AbstractContextManager[UnitOfWork]:
        """Open a unit of work for one jurisdiction."""

    def read(self, query: str, jurisdiction_id: str) -> pd.DataFrame:
        """Run one of the named read queries of ``voirie.store.queries`` for a jurisdiction."""

    def count(self, table: str, jurisdiction_id: str) -> int:
        """Number of rows of a table for a jurisdiction."""

    def close(self) -> None:
        """Release connections."""


def migrations(backend: str) -> Iterator[tuple[int, str, str]]:
    """(version, name, SQL) of every migration of a backend, in order."""
    folder = resources.files("voirie.store") / "migrations" / backend
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            yield version, entry.name, entry.read_text(encoding="utf-8")


def open_store(settings: StoreSettings) -> Store:
    """The backend named by the database URL: ``sqlite:///file`` or ``postgresql://...``."""
    url = settings.database_url
    if url.startswith(("postgresql://", "postgres://")):
        from voirie.store.postgis import PostgisStore

        return PostgisStore(url, min_size=settings.pool_min_size, max_size=settings.pool_max_size)
    if url.startswith("sqlite:///"):
        from voirie.store.sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite:///"))
    raise StoreError(
        f"VOIRIE_DATABASE_URL: unsupported URL {url!r}; "
        "use sqlite:///path/to/file.gpkg or postgresql://user@host:port/dbname"
    )
