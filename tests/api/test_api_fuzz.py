"""Schemathesis fuzzes every other route of the app (staff and citizen API, OGC API
Features, downloads, tiles, health) against the app's own OpenAPI document.

Same checks and budget as the Open311 fuzz (``test_open311_fuzz.py``): no 5xx, no
undeclared status or media type, no body violating its declared schema. Half of the
generated requests carry a dispatcher's token, to get past authentication into validation.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from open311_support import Served, serve
from schemathesis import APIOperation, GenerationMode
from schemathesis.openapi import from_asgi
from test_open311_fuzz import CHECKS

from voirie.city import City
from voirie.gis.enrich import CityGIS

ROUTES = r"^/(api/v1|ogc|tiles|exports|healthz)"


@pytest.fixture
def served(tmp_path: Path, paris: City, paris_gis: CityGIS) -> Iterator[Served]:
    app = serve(f"sqlite:///{tmp_path / 'v.gpkg'}", paris, paris_gis, tmp_path / "media")
    yield app
    app.store.close()


def _fuzz(operation: APIOperation, mode: GenerationMode, token: str) -> None:
    """One Hypothesis run over one operation in one generation mode."""

    @given(case=operation.as_strategy(mode), authorized=st.booleans())
    @settings(max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def holds(case: schemathesis.Case, authorized: bool) -> None:
        if authorized:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        case.call_and_validate(checks=CHECKS)

    try:
        holds()
    except Unsatisfiable:
        # A route whose every parameter takes any string has no invalid request to make.
        assert mode is GenerationMode.NEGATIVE, operation.label


def test_every_other_route_holds_its_openapi_contract(served: Served) -> None:
    api = from_asgi("/openapi.json", served.client.app).include(path_regex=ROUTES)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 20
    for operation, mode in itertools.product(operations, GenerationMode):
        _fuzz(operation, mode, served.dispatcher_key)
