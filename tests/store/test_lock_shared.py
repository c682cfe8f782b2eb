"""``UnitOfWork.lock`` with shared keys on PostGIS: the per-report path holds its service
family in shared mode (reports of one family in cells apart write at once), and a writer
holding the family exclusively (an import, a merge, a staff edit) waits for them all."""

from __future__ import annotations

import psycopg

from voirie.settings import StoreSettings
from voirie.store import open_store
from voirie.store.postgis import lock_key


def _try(url: str, key: str, shared: bool) -> bool:
    """Whether another session could take ``key`` now, in that mode (without waiting)."""
    mode = "_shared" if shared else ""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(f"SELECT pg_try_advisory_lock{mode}(%s)", (lock_key(key),)).fetchone()
        assert row is not None
        return bool(row[0])


def test_shared_keys_admit_shared_holders_only(postgis_url: str) -> None:
    store = open_store(StoreSettings(database_url=postgis_url, pool_min_size=1, pool_max_size=2))
    try:
        store.upgrade()
        with store.transaction("j", pipelined=True) as uow:
            uow.lock(["j/family@122/3,4"], shared=["j/family"])
            assert uow.tokens.find_later("0" * 64)() is None  # read after the locks
            assert _try(postgis_url, "j/family", shared=True)
            assert not _try(postgis_url, "j/family", shared=False)
            assert not _try(postgis_url, "j/family@122/3,4", shared=True)
            assert _try(postgis_url, "j/family@122/3,5", shared=False)
        # Released with the transaction.
        assert _try(postgis_url, "j/family", shared=False)
        assert _try(postgis_url, "j/family@122/3,4", shared=False)
    finally:
        store.close()
