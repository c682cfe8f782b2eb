"""The import-string factory servers use with several workers (``--factory``)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from voirie.api.app import app_from_env


def test_app_from_env_serves_the_city_and_store_named_by_the_environment(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOIRIE_DATABASE_URL", store_url)
    monkeypatch.setenv("VOIRIE_CITY", "chicago")
    with TestClient(app_from_env()) as client:
        health = client.get("/healthz").json()
    assert health["city"] == "Chicago"
    assert health["store"] == ("postgis" if store_url.startswith("postgresql") else "sqlite")
