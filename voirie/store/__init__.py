"""Storage: the only code that speaks SQL. One interface, an sqlite and a PostGIS backend."""

from voirie.store.base import Store, UnitOfWork, open_store

__all__ = ["Store", "UnitOfWork", "open_store"]
