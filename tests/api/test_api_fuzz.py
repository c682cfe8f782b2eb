"""Schemathesis fuzzes every other route of the app (staff and citizen API, OGC API
Features, downloads, tiles, health) against the app's own OpenAPI document.

Same checks and budget as the Open311 fuzz (``test_open311_fuzz.py``): no 5xx, no
undeclared status or media type, no body violating its declared schema. Half of the
generated requests carry a dispatcher's token, to get past authentication into validation.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from open311_support import Served, serve
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import CHECKS as REGISTRY
from schemathesis.checks import load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.openapi import from_asgi

from voirie.city import City
from voirie.gis.enrich import CityGIS

ROUTES = r"^/(api/v1|ogc|tiles|exports|healthz)"
load_all_checks()
CHECKS = REGISTRY.get_all()
"""Every check schemathesis has (``--checks all``), never a chosen subset."""
_CITY_DATA = ["2xx", "3xx", "401", "403", "404", "409", "429", "400"]
CONFIG = SchemathesisConfig.from_dict(
    {
        "operations": [
            # Valid values that come from the city's data, which the static schema does not
            # list: zone layers (zone=layer:code), teams, service codes, a place inside the
            # city; a tile's x and y within 2^z. A request schema-valid otherwise may be
            # refused with 400 naming the field.
            {
                "include-path-regex": r"^/(exports/|api/v1/incidents$|tiles/|api/v1/reports$)",
                "checks": {"positive_data_acceptance": {"expected-statuses": _CITY_DATA}},
            },
            {
                "include-path-regex": r"/assignment$",
                "checks": {"positive_data_acceptance": {"expected-statuses": _CITY_DATA}},
            },
            # A photo is accepted only when its bytes are a real image within the limits.
            {
                "include-path-regex": r"^/api/v1/photos$",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "401", "403", "404", "413", "415", "429"]
                    }
                },
            },
        ]
    }
)


OGC_CONFIG = SchemathesisConfig.from_dict(
    {
        "operations": [
            # Items: zone codes, statuses and teams are the city's data; a bbox must be a
            # box of its CRS (min before max, latitudes within ±90) and bbox-crs comes
            # with a bbox, rules OpenAPI 3.0 parameters cannot state.
            {
                "include-path-regex": r"/items",
                "checks": {"positive_data_acceptance": {"expected-statuses": _CITY_DATA}},
            },
        ]
    }
)


@pytest.fixture
def served(tmp_path: Path, paris: City, paris_gis: CityGIS) -> Iterator[Served]:
    app = serve(f"sqlite:///{tmp_path / 'v.gpkg'}", paris, paris_gis, tmp_path / "media")
    yield app
    app.store.close()


def _fuzz(operation: APIOperation, mode: GenerationMode, token: str) -> None:
    """One Hypothesis run over one operation in one generation mode."""

    @given(case=operation.as_strategy(mode), authorized=st.booleans())
    @settings(
        max_examples=8,
        deadline=None,
        database=None,
        derandomize=True,  # the same examples every run: CI never fails by chance
        suppress_health_check=list(HealthCheck),
    )
    def holds(case: schemathesis.Case, authorized: bool) -> None:
        # Given as the run's own headers (not written into the case), so that the
        # authentication checks know these credentials are real and probe without them.
        headers = {"Authorization": f"Bearer {token}"} if authorized else None
        case.call_and_validate(checks=CHECKS, headers=headers)

    try:
        holds()
    except Unsatisfiable:
        # A route whose every parameter takes any string has no invalid request to make.
        assert mode is GenerationMode.NEGATIVE, operation.label


def test_every_other_route_holds_its_openapi_contract(served: Served) -> None:
    api = from_asgi("/openapi.json", served.client.app, config=CONFIG)
    # Filtered here: ``include`` is not applied together with per-operation settings.
    every = [result.ok() for result in api.get_all_operations()]
    operations = [operation for operation in every if re.match(ROUTES, operation.path)]
    assert len(operations) >= 20
    failures = []
    for operation, mode in itertools.product(operations, GenerationMode):
        try:
            _fuzz(operation, mode, served.dispatcher_key)
        except (Exception, BaseExceptionGroup) as error:  # every failing operation, not one
            failures.append(f"{operation.label} [{mode.value}]: {error}")
    assert not failures, "\n\n".join(failures)


def test_the_ogc_api_definition_holds_its_contract(served: Served) -> None:
    """The OGC API's own definition (``/ogc/api``, what GDAL and QGIS read) fuzzed the same
    way: every operation it declares, with every check."""
    api = from_asgi("/ogc/api", served.client.app, config=OGC_CONFIG)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 10
    failures = []
    for operation, mode in itertools.product(operations, GenerationMode):
        try:
            _fuzz(operation, mode, served.dispatcher_key)
        except (Exception, BaseExceptionGroup) as error:
            failures.append(f"{operation.label} [{mode.value}]: {error}")
    assert not failures, "\n\n".join(failures)
