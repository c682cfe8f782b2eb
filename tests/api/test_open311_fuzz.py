"""Schemathesis fuzzes the Open311 routes against the app's own OpenAPI document.

Each operation gets a few dozen generated requests (valid and invalid); none may answer 5xx,
an undeclared status or media type, or a body that violates its declared schema. The
budget is short (well under a minute for every Open311 operation).
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
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.openapi import from_asgi

from voirie.city import City
from voirie.gis.enrich import CityGIS

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def served(tmp_path: Path, paris: City, paris_gis: CityGIS) -> Iterator[Served]:
    app = serve(f"sqlite:///{tmp_path / 'v.gpkg'}", paris, paris_gis, tmp_path / "media")
    yield app
    app.store.close()


def _fuzz(
    operation: APIOperation, mode: GenerationMode, key: str, codes: st.SearchStrategy[str]
) -> None:
    """One Hypothesis run over one operation in one generation mode."""

    @given(case=operation.as_strategy(mode), real_key=st.booleans(), code=codes)
    @settings(
        max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def holds(case: schemathesis.Case, real_key: bool, code: str) -> None:
        # Half of the bodies carry a real key (and service), to get past the api_key check
        # into the validation of every other field.
        if real_key and isinstance(case.body, dict) and "api_key" in case.body:
            case.body["api_key"] = key
            if "service_code" in case.body:
                case.body["service_code"] = code
        case.call_and_validate(checks=CHECKS)

    try:
        holds()
    except Unsatisfiable:
        # A route whose every parameter takes any string has no invalid request to make.
        assert mode is GenerationMode.NEGATIVE, operation.label


def test_open311_routes_hold_their_openapi_contract(served: Served, paris: City) -> None:
    # schemathesis.pytest.from_fixture fails under pytest 9 (it reads Function._nodeid),
    # so the operations are walked here, each with its own Hypothesis runs.
    api = from_asgi("/openapi.json", served.client.app).include(path_regex="^/open311/")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 10
    codes = st.sampled_from(sorted(paris.services))
    for operation, mode in itertools.product(operations, GenerationMode):
        staff = "updates" in operation.path
        _fuzz(operation, mode, served.dispatcher_key if staff else served.client_key, codes)
