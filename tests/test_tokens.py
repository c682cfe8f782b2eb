"""Token lifecycle: expiry, revoke, rotate, last use, on both backends and through the CLI.

A revoke must hold at once on every worker: each request reads its token from the store,
so two apps on one database (two workers) both refuse a token revoked by a third process.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clirunner import run_voirie
from fastapi.testclient import TestClient

from voirie.api.app import create_app
from voirie.city import City
from voirie.errors import InvalidInput, NotFound, Unauthorized
from voirie.gis.enrich import CityGIS
from voirie.services.auth import (
    Role,
    identify,
    issue_token,
    parse_expiry,
    revoke_token,
    rotate_token,
    token_status,
)
from voirie.services.pipeline import Pipeline
from voirie.settings import CitySettings, StoreSettings
from voirie.store import Store, open_store

J = "75"  # any jurisdiction: tokens are scoped to one
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _only(store: Store, name: str) -> int:
    (token_id,) = [t.id for t in store.list_tokens(J) if t.name == name]
    assert token_id is not None
    return token_id


def test_expiry_is_a_duration_a_date_or_a_date_time() -> None:
    assert parse_expiry("90d", NOW) == NOW + timedelta(days=90)
    assert parse_expiry("12h", NOW) == NOW + timedelta(hours=12)
    assert parse_expiry(" 4W ", NOW) == NOW + timedelta(weeks=4)
    # A date: valid through that day (UTC).
    assert parse_expiry("2026-03-31", NOW) == datetime(2026, 4, 1, tzinfo=UTC)
    assert parse_expiry("2026-03-31T18:00:00+02:00", NOW) == datetime(2026, 3, 31, 16, tzinfo=UTC)
    for bad in ("soon", "0d", "-3d", "2026-02-30", "90 jours", "٣d"):
        with pytest.raises(InvalidInput, match="expires") as caught:
            parse_expiry(bad, NOW)
        assert caught.value.field == "expires"
    with pytest.raises(InvalidInput, match="not in the future"):
        parse_expiry("2026-03-01", NOW)


def test_revoked_and_expired_tokens_are_refused_with_the_reason(store: Store) -> None:
    forever = issue_token(store, J, "back-office", Role.DISPATCHER)
    month = issue_token(store, J, "prestataire", Role.GIS, expires_at=NOW + timedelta(days=30))
    assert identify(store, J, forever, NOW).role is Role.DISPATCHER
    assert identify(store, J, month, NOW + timedelta(days=29)).name == "prestataire"
    with pytest.raises(Unauthorized, match="expired on 2026-04-01 09:30 UTC"):
        identify(store, J, month, NOW + timedelta(days=30))
    listed = {t.name: t for t in store.list_tokens(J)}
    assert token_status(listed["prestataire"], NOW + timedelta(days=31)) == "expired"
    assert listed["prestataire"].expires_at == NOW + timedelta(days=30)

    revoked = revoke_token(store, J, "back-office", NOW)
    assert revoked.name == "back-office"
    with pytest.raises(Unauthorized, match="revoked on 2026-03-02 09:30 UTC"):
        identify(store, J, forever, NOW + timedelta(seconds=1))
    with pytest.raises(Unauthorized, match="unknown API token"):
        identify(store, J, forever + "x", NOW)
    with pytest.raises(InvalidInput, match="already revoked"):
        revoke_token(store, J, str(revoked.id), NOW)
    with pytest.raises(NotFound, match="no token 'back-office'"):  # no active one left
        revoke_token(store, J, "back-office", NOW)
    # Kept for the record: the list still shows who had access and until when.
    kept = {t.name: t for t in store.list_tokens(J)}["back-office"]
    assert kept.revoked_at == NOW
    assert token_status(kept) == "revoked"


def test_last_use_is_written_at_most_once_a_minute(store: Store) -> None:
    token = issue_token(store, J, "appli-mobile", Role.CLIENT)
    token_id = _only(store, "appli-mobile")

    def last_used() -> datetime | None:
        return next(t.last_used_at for t in store.list_tokens(J) if t.id == token_id)

    assert last_used() is None
    identify(store, J, token, NOW)
    assert last_used() == NOW
    for seconds in (1, 30, 59):
        identify(store, J, token, NOW + timedelta(seconds=seconds))
    assert last_used() == NOW  # not one write per request
    identify(store, J, token, NOW + timedelta(seconds=61))
    assert last_used() == NOW + timedelta(seconds=61)


def test_rotate_replaces_a_token_at_once_or_after_a_grace(store: Store) -> None:
    old = issue_token(store, J, "agent-voirie", Role.AGENT, ["Voirie"])
    record, new = rotate_token(store, J, "agent-voirie", now=NOW)
    assert new != old
    with pytest.raises(Unauthorized, match="revoked"):
        identify(store, J, old, NOW)
    holder = identify(store, J, new, NOW)
    assert (holder.name, holder.role, holder.teams) == (
        "agent-voirie",
        Role.AGENT,
        frozenset({"Voirie"}),
    )
    assert record.name == "agent-voirie"

    # With a grace period both work until it ends; the new one keeps the old expiry.
    ends = NOW + timedelta(days=60)
    previous = issue_token(store, J, "partenaire", Role.CLIENT, expires_at=ends)
    _, following = rotate_token(store, J, "partenaire", grace=timedelta(hours=2), now=NOW)
    identify(store, J, previous, NOW + timedelta(hours=1))
    with pytest.raises(Unauthorized, match="expired"):
        identify(store, J, previous, NOW + timedelta(hours=2))
    both = [t for t in store.list_tokens(J) if t.name == "partenaire"]  # oldest first
    assert [t.expires_at for t in both] == [NOW + timedelta(hours=2), ends]
    identify(store, J, following, NOW + timedelta(days=59))
    with pytest.raises(InvalidInput, match="is revoked; only an active token"):
        rotate_token(store, J, str(record.id), now=NOW)


def test_a_name_held_by_several_active_tokens_needs_the_id(store: Store) -> None:
    issue_token(store, J, "sig", Role.GIS)
    issue_token(store, J, "sig", Role.GIS)
    with pytest.raises(InvalidInput, match=r"2 active tokens are named 'sig' \(ids"):
        revoke_token(store, J, "sig", NOW)
    first = min(t.id or 0 for t in store.list_tokens(J))
    revoke_token(store, J, str(first), NOW)
    revoke_token(store, J, "sig", NOW)  # the one left
    assert all(t.revoked_at for t in store.list_tokens(J))


def test_a_revoke_holds_at_once_on_every_worker(
    store_url: str, paris: City, paris_gis: CityGIS, tmp_path: Path
) -> None:
    """Two apps on one database (two workers); a third process revokes."""
    admin = open_store(StoreSettings(database_url=store_url, pool_max_size=2))
    admin.upgrade()
    workers: list[TestClient] = []
    stores = [admin]
    try:
        j = paris.jurisdiction_id
        staff = issue_token(admin, j, "back-office", Role.DISPATCHER)
        key = issue_token(admin, j, "appli-mobile", Role.CLIENT)
        for _ in range(2):
            app = create_app(StoreSettings(database_url=store_url), CitySettings(city="paris"))
            worker_store = open_store(StoreSettings(database_url=store_url, pool_max_size=2))
            stores.append(worker_store)
            app.state.pipeline = Pipeline(paris, worker_store, paris_gis)
            workers.append(TestClient(app))
        bearer = {"Authorization": f"Bearer {staff}"}
        post = {"api_key": key, "service_code": "nothing", "lat": 48.87, "long": 2.36}
        for client in workers:
            assert client.get("/api/v1/incidents", headers=bearer).status_code == 200
            # A known key gets past authentication to the service check.
            answer = client.post("/open311/v2/requests.json", data=post)
            assert "api_key" not in answer.text, answer.text

        revoke_token(admin, j, "back-office")
        revoke_token(admin, j, "appli-mobile")
        for client in workers:
            refused = client.get("/api/v1/incidents", headers=bearer)
            assert refused.status_code == 401
            assert "revoked" in refused.json()["detail"]
            answer = client.post("/open311/v2/requests.json", data=post)
            assert answer.status_code == 403
            assert "api_key" in answer.json()[0]["description"]
    finally:
        for client in workers:
            client.close()
        for opened in stores:
            opened.close()


def test_cli_add_list_revoke_rotate(tmp_path: Path) -> None:
    added = run_voirie(tmp_path, "tokens", "add", "sig-ville", "--role", "gis", "--expires", "90d")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip().startswith("voirie_")
    assert "valid until" in added.stderr + added.stdout
    run_voirie(tmp_path, "tokens", "add", "appli", "--role", "client")

    listed = run_voirie(tmp_path, "tokens", "list")
    assert listed.returncode == 0, listed.stderr
    assert "sig-ville" in listed.stdout
    assert "appli" in listed.stdout
    assert "voirie_" not in listed.stdout  # never the secrets
    assert listed.stdout.count("active") == 2

    rotated = run_voirie(tmp_path, "tokens", "rotate", "appli", "--grace", "1h")
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.strip().startswith("voirie_")
    revoked = run_voirie(tmp_path, "tokens", "revoke", "1")
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked token 1 of 'sig-ville'" in revoked.stdout + revoked.stderr

    listed = run_voirie(tmp_path, "tokens", "list").stdout
    assert "revoked" in listed
    assert listed.count("appli") == 2  # the old one (ending in an hour) and the new one

    for args, words in (
        (("add", "x", "--role", "gis", "--expires", "bientôt"), "expires:"),
        (("revoke", "99"), "no token '99'"),
        (("rotate", "appli", "--grace", "un jour"), "grace:"),
    ):
        run = run_voirie(tmp_path, "tokens", *args)
        assert run.returncode == 2, run.stdout + run.stderr
        assert words in run.stdout + run.stderr
        assert "Traceback" not in run.stdout + run.stderr
