"""Schemathesis fuzzes the Open311 routes against the app's own OpenAPI document.

Each operation gets a few dozen generated requests (valid and invalid); none may answer 5xx,
an undeclared status or media type, or a body that violates its declared schema. The
budget is short (well under a minute for every Open311 operation).
"""

from __future__ import annotations

import itertools
import os

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

from voirie.city import City

pytestmark = [pytest.mark.slow, SQLITE_ONLY]  # slow: left out by scripts/test -m "not slow"

DERANDOMIZE = "VOIRIE_FUZZ_RANDOM" not in os.environ
"""The same examples every run, so that CI never fails by chance; set VOIRIE_FUZZ_RANDOM
to search new ones locally (repeat the run a few times) for mismatches to fix."""
load_all_checks()
CHECKS = REGISTRY.get_all()
"""Every check schemathesis has (``--checks all``), never a chosen subset."""
_ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429"]
CONFIG = SchemathesisConfig.from_dict(
    {
        "operations": [
            {
                # A photo is accepted only when its bytes are a real image within the size
                # and pixel limits, sent as one ``media`` part among at most 8 fields:
                # content rules no schema states (400, 413, 415).
                "include-path-regex": r"/media\.",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": [*_ACCEPTED, "400", "413", "415"]
                    }
                },
            },
            {
                # Rules the schema documents in words but cannot state (the city's service
                # codes, statuses and jurisdiction are in it: ``voirie.api.openapi_city``):
                # a place inside the city or an address_string naming one of its streets,
                # a status the workflow allows from the current one; lat and long together,
                # an end_date after the start_date (OpenAPI has no dependencies between
                # query parameters). Such a request is refused with 400 naming the field.
                "include-path-regex": r"/(requests|servicerequestupdates)\.",
                "checks": {"positive_data_acceptance": {"expected-statuses": [*_ACCEPTED, "400"]}},
            },
        ]
    }
)


def _fuzz(
    operation: APIOperation, mode: GenerationMode, key: str, codes: st.SearchStrategy[str]
) -> None:
    """One Hypothesis run over one operation in one generation mode."""

    @given(case=operation.as_strategy(mode), real_key=st.booleans(), code=codes)
    @settings(
        max_examples=10,
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        suppress_health_check=list(HealthCheck),
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
    api = from_asgi("/openapi.json", served.client.app, config=CONFIG)
    # Filtered here: ``include`` is not applied together with per-operation settings.
    every = [result.ok() for result in api.get_all_operations()]
    operations = [operation for operation in every if operation.path.startswith("/open311/")]
    assert len(operations) >= 10
    codes = st.sampled_from(sorted(paris.services))
    failures = []
    for operation, mode in itertools.product(operations, GenerationMode):
        staff = "updates" in operation.path
        key = served.dispatcher_key if staff else served.client_key
        try:
            _fuzz(operation, mode, key, codes)
        except (Exception, BaseExceptionGroup) as error:  # every failing operation, not one
            failures.append(f"{operation.label} [{mode.value}]: {error}")
    assert not failures, "\n\n".join(failures)
