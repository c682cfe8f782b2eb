"""``store_upgraded_while``: a command's store upgraded on a thread while it loads the city
(issue 14: a new PostGIS database's schema is created while the city's GIS loads).

On both backends, from an empty database: what it returns is upgraded and usable, what
``load`` built is handed back, and a failure of ``load`` comes out once the upgrade has ended.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from databases import BACKENDS, store_urls

from voirie.cli.common import store_upgraded_while


@pytest.fixture(params=BACKENDS)
def empty_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """``VOIRIE_DATABASE_URL`` naming a store with no schema yet (no template)."""
    for url in store_urls(request, request.param, tmp_path, template=None):
        monkeypatch.setenv("VOIRIE_DATABASE_URL", url)
        yield url


def test_the_store_comes_back_upgraded_with_what_load_built(empty_url: str) -> None:
    store, loaded = store_upgraded_while(lambda: "city")
    try:
        assert loaded == "city"
        assert store.schema_version() > 0
        assert store.upgrade() == []  # nothing left to apply
        assert store.count("reports", "paris.fr") == 0
    finally:
        store.close()


def test_a_failing_load_raises_after_the_upgrade_ended(empty_url: str) -> None:
    def load() -> None:
        raise LookupError("no such city")

    with pytest.raises(LookupError, match="no such city"):
        store_upgraded_while(load)
    # The migrations ran to their end (committed) before the error came out.
    again, _ = store_upgraded_while(lambda: None)
    try:
        assert again.upgrade() == []
    finally:
        again.close()
