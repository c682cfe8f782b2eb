"""Schemathesis fuzzes every other route of the app (staff and citizen API, OGC API
Features, downloads, tiles, health) against the app's own OpenAPI document.

Same checks and budget as the Open311 fuzz (``test_open311_fuzz.py``): no 5xx, no
undeclared status or media type, no body violating its declared schema. Half of the
generated requests carry a dispatcher's token, to get past authentication into validation.
"""

from __future__ import annotations

import itertools
import os
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from open311_support import SQLITE_ONLY, Served
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import CHECKS as REGISTRY
from schemathesis.checks import load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.openapi import from_asgi

pytestmark = [pytest.mark.slow, SQLITE_ONLY]  # slow: left out by scripts/test -m "not slow"

ROUTES = r"^/(api/v1|ogc|tiles|exports|healthz)"
DERANDOMIZE = "VOIRIE_FUZZ_RANDOM" not in os.environ
"""The same examples every run, so that CI never fails by chance; set VOIRIE_FUZZ_RANDOM
to search new ones locally (repeat the run a few times) for mismatches to fix."""
load_all_checks()
CHECKS = REGISTRY.get_all()
"""Every check schemathesis has (``--checks all``), never a chosen subset."""
_NOT_STATED = ["2xx", "3xx", "401", "403", "404", "409", "429", "400"]
CONFIG = SchemathesisConfig.from_dict(
    {
        "operations": [
            # The city's values (teams, services, statuses, zone layers, CRS) are in the
            # schema (``voirie.api.openapi_city``); what is left are rules OpenAPI 3.1 cannot
            # state, refused with 400 naming the field: a bbox's minimum before its maximum
            # (downloads and the incident list), a download's start and end as ISO 8601 text
            # (Python's reading, wider than the date-time format), a tile's x and y below
            # 2^z, a report's place inside the city.
            {
                "include-path-regex": r"^/(exports/|api/v1/incidents$|tiles/|api/v1/reports$)",
                "checks": {"positive_data_acceptance": {"expected-statuses": _NOT_STATED}},
            },
            # The other incident is not this one: the path's id against the body's, a
            # dependency OpenAPI has no way to state.
            {
                "include-path-regex": r"/(merge|not-duplicate)$",
                "checks": {"positive_data_acceptance": {"expected-statuses": _NOT_STATED}},
            },
            # A due date within VOIRIE_DUE_HORIZON_DAYS of now: a window that moves with
            # the clock and the setting (the team is in the schema).
            {
                "include-path-regex": r"/assignment$",
                "checks": {"positive_data_acceptance": {"expected-statuses": _NOT_STATED}},
            },
            # A moderator hides photos the report has (its data), by their names.
            {
                "include-path-regex": r"^/api/v1/moderation/reports/",
                "checks": {"positive_data_acceptance": {"expected-statuses": _NOT_STATED}},
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
                "checks": {"positive_data_acceptance": {"expected-statuses": _NOT_STATED}},
            },
        ]
    }
)


def _fuzz(operation: APIOperation, mode: GenerationMode, token: str) -> None:
    """One Hypothesis run over one operation in one generation mode."""

    @given(case=operation.as_strategy(mode), authorized=st.booleans())
    @settings(
        max_examples=8,
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
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
