"""Open311 POSTs of one service family far apart write at once (each holds only the lock
cells near its point); a reused Idempotency-Key is still refused under concurrency,
wherever its bodies are placed: the report's external id is locked too."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from open311_support import API, CARTONS, VALMY, Served

pytestmark = pytest.mark.empty_store  # every report in the store is posted by the test


def test_one_key_with_bodies_far_apart_stores_one_report(served: Served) -> None:
    # Eight bodies of one service, 370 m apart (other lock cells), one Idempotency-Key.
    def post(k: int) -> int:
        long = float(str(VALMY["long"])) + 0.005 * (k - 4)
        place = {"lat": str(VALMY["lat"]), "long": str(long)}
        response = served.client.post(
            f"{API}/requests.json",
            data={"api_key": served.client_key, "service_code": CARTONS, **place},
            headers={"Idempotency-Key": "one-key-far-apart"},
        )
        assert response.status_code in (201, 422), response.text
        return response.status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(post, range(8)))
    assert statuses == [201] + [422] * 7
    assert served.store.count("reports", served.pipeline.city.jurisdiction_id) == 1
