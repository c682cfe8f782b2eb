"""The public reads answer what they answered before the lean read path (issue 19).

``read_answers.py`` took the snapshots in ``tests/data/read_answers`` with the former read
path (DataFrames, GeoDataFrames, the standard JSON encoder); every request is asked again
of the app on the same 200 reports and compared structurally: same keys in the same order,
same values, floats within 1e-9.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from databases import BACKENDS
from fastapi.testclient import TestClient
from liveserver import sample_client
from read_answers import REQUESTS, SNAPSHOTS, answer

from voirie.city import City
from voirie.gis.enrich import CityGIS

TOLERANCE = 1e-9


@pytest.fixture(scope="module", params=BACKENDS)
def client(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    paris: City,
    paris_gis: CityGIS,
) -> Iterator[tuple[str, TestClient]]:
    for opened in sample_client(request, tmp_path_factory.mktemp("reads"), paris, paris_gis):
        yield str(request.param), opened


def differences(got: Any, want: Any, where: str = "") -> list[str]:
    """Where two JSON values differ: keys (and their order), types, values; floats at 1e-9."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{where}: {type(got).__name__} instead of an object"]
        if list(got) != list(want):
            return [f"{where}: keys {list(got)} instead of {list(want)}"]
        return [d for key in want for d in differences(got[key], want[key], f"{where}.{key}")]
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{where}: {got!r:.200} instead of {want!r:.200}"]
        return [d for i, w in enumerate(want) for d in differences(got[i], w, f"{where}[{i}]")]
    if isinstance(want, float) and isinstance(got, int | float) and not isinstance(got, bool):
        close = math.isclose(got, want, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
        return [] if close else [f"{where}: {got!r} instead of {want!r}"]
    if type(got) is not type(want) or got != want:
        return [f"{where}: {got!r:.200} instead of {want!r:.200}"]
    return []


def test_differences_sees_order_types_and_float_tolerance() -> None:
    assert differences({"a": 1.0, "b": [1, "x"]}, {"a": 1.0 + 1e-12, "b": [1, "x"]}) == []
    assert differences({"b": 1, "a": 2}, {"a": 2, "b": 1})  # order of keys
    assert differences({"a": 1.0}, {"a": 1.001})
    assert differences({"a": 1}, {"a": "1"})
    assert differences({"a": True}, {"a": 1})
    assert differences([1, 2], [1, 2, 3])


@pytest.mark.parametrize("path", REQUESTS)
def test_answer_is_the_snapshot(client: tuple[str, TestClient], path: str) -> None:
    backend, opened = client
    snapshot = json.loads((SNAPSHOTS / f"{backend}.json").read_text("utf-8"))
    found = differences(answer(opened, path), snapshot[path])
    assert not found, "\n".join(found[:20])
