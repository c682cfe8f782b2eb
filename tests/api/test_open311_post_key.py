"""The Open311 POST checks its api_key in the transaction that stores the report (issue
20): no round trip or connection of its own, no cache, so a key revoked between two
requests is refused at the second; a refused key still goes before every other refusal.
On both storage backends; the round trips of one POST on PostGIS, where they cost."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx2
import pytest
from open311_support import API, CARTONS, VALMY, Served, assert_error, serve

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.services.auth import issue_token, revoke_token
from voirie.services.pipeline import Pipeline
from voirie.settings import StoreSettings
from voirie.store import open_store
from voirie.store.postgis import PostgisStore

HERE = {"lat": str(VALMY["lat"]), "long": str(VALMY["long"])}

pytestmark = pytest.mark.empty_store  # every report in the store is posted by the test


def _post(served: Served, api_key: str, **fields: str) -> httpx2.Response:
    form = {"api_key": api_key, "service_code": CARTONS, **HERE, **fields}
    return served.client.post(f"{API}/requests.json", data=form)


def _reports(served: Served) -> int:
    return served.store.count("reports", served.pipeline.city.jurisdiction_id)


def test_a_key_revoked_between_two_posts_is_refused_at_the_second(served: Served) -> None:
    j = served.pipeline.city.jurisdiction_id
    key = issue_token(served.store, j, "appli-quartier", "client")
    first = served.client.post(
        f"{API}/requests.json", data={"api_key": key, "service_code": CARTONS, **HERE}
    )
    assert first.status_code == 201, first.text
    (stored,) = served.store.rows(
        "SELECT channel FROM reports WHERE id = " + str(int(first.json()[0]["service_request_id"])),
        (),
    )
    assert stored == ("appli-quartier",)  # the holder the transaction admitted
    revoke_token(served.store, j, "appli-quartier")
    second = served.client.post(
        f"{API}/requests.json",
        data={"api_key": key, "service_code": CARTONS, **HERE, "description": "encore"},
    )
    assert_error(second, 403, "api_key: API token revoked on ")
    assert _reports(served) == 1


def test_a_refused_key_goes_before_the_forms_refusals(served: Served) -> None:
    url = f"{API}/requests.json"
    unknown = {"api_key": "voirie_nope", **HERE}
    assert_error(served.client.post(url, data={**unknown, "service_code": "nope"}), 403, "unknown")
    outside = {"api_key": "voirie_nope", "service_code": CARTONS, "lat": "48.0", "long": "2.0"}
    assert_error(served.client.post(url, data=outside), 403, "api_key", "unknown")
    staff = {"api_key": served.dispatcher_key, "service_code": "nope", **HERE}
    assert_error(served.client.post(url, data=staff), 403, "api_key", "dispatcher")
    # A good key with a bad form: the form's refusal.
    good = {"api_key": served.client_key, "service_code": "nope", **HERE}
    assert_error(served.client.post(url, data=good), 400, "service_code")
    assert _reports(served) == 0


def _round_trips(trace: str) -> list[list[str]]:
    """The statements of a libpq trace, grouped by round trip (a group ends where the
    client, having sent, reads the server's answer)."""
    trips: list[list[str]] = []
    sent: list[str] = []
    reading = False
    for line in trace.splitlines():
        direction = next((part for part in line.split("\t") if part in ("F", "B")), None)
        if direction == "F":
            if reading:
                trips.append(sent)
                sent, reading = [], False
            if match := re.search(r'\t(?:Query|Parse)\t+ ?(?:"[^"]*" )?"([^"]*)"', line):
                sent.append(match.group(1))
        elif direction == "B":
            reading = True
    if reading:
        trips.append(sent)
    return trips


def test_a_post_reads_its_key_with_its_other_reads(
    postgis_url: str, paris: City, paris_gis: CityGIS, tmp_path: Path
) -> None:
    served = serve(postgis_url, paris, paris_gis, tmp_path / "media", load=False)
    served.store.close()
    # One connection, every statement sent as text: the whole POST in one trace.
    store = open_store(StoreSettings(database_url=postgis_url, pool_min_size=1, pool_max_size=1))
    try:
        assert isinstance(store, PostgisStore)
        served.client.app.state.pipeline = Pipeline(paris, store, paris_gis)  # type: ignore[attr-defined]
        assert _post(served, served.client_key).status_code == 201
        trace = tmp_path / "libpq.trace"
        descriptor = os.open(trace, os.O_WRONLY | os.O_CREAT)
        with store.pool.connection() as conn:
            conn.prepare_threshold = None
            conn.pgconn.trace(descriptor)
        try:
            answer = _post(served, served.client_key, description="tracée")
        finally:
            with store.pool.connection() as conn:
                conn.pgconn.untrace()
            os.close(descriptor)
        assert answer.status_code == 201
        trips = _round_trips(trace.read_text())
        # BEGIN with every read (the key, with the lock, the retry look-up, the
        # candidates and the ids); the writes with COMMIT.
        assert len(trips) == 2, trips
        (begin, *reads), (*writes, commit) = trips
        assert begin == "BEGIN"
        assert commit == "COMMIT"
        for part in ("FROM api_tokens", "pg_advisory_xact_lock", "FROM incidents", "nextval"):
            assert any(part in statement for statement in reads), (part, reads)
        assert writes
        # It joins the first POST's incident: rows added, the incident's count updated.
        # A report's rows of every table go as one statement (``gathered``: WITH … INSERT).
        assert all(s.startswith(("INSERT", "UPDATE", "WITH")) for s in writes), [
            s[:40] for s in writes
        ]
    finally:
        store.close()
