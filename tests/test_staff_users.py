"""Staff accounts and password sign-in on both backends: hashes only, lockout, session
idle and absolute expiry, disabling, and the ``voirie users`` commands."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clirunner import run_voirie, voirie_executable

from voirie.errors import InvalidInput, NotFound, Unauthorized
from voirie.services.auth import Role
from voirie.services.staff_users import (
    REFUSED,
    StaffSettings,
    add_user,
    csrf_matches,
    csrf_token,
    disable_user,
    list_users,
    session_hash,
    session_principal,
    sign_in,
    sign_out,
)
from voirie.store import Store

J = "75"
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PASSWORD = "correct horse battery"
SETTINGS = StaffSettings(
    session_idle_minutes=30, session_max_hours=8, max_failures=3, lockout_minutes=15
)


def test_password_and_session_are_stored_only_as_hashes(store: Store) -> None:
    user = add_user(store, J, "alice", Role.DISPATCHER, (), PASSWORD, now=NOW)
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    signed = sign_in(store, J, "alice", PASSWORD, SETTINGS, NOW)
    assert signed.principal.role is Role.DISPATCHER
    assert signed.principal.name == "alice"
    rows = store.rows("SELECT session_hash FROM staff_sessions", ())
    assert rows == [(session_hash(signed.session_id),)]
    assert session_principal(store, J, signed.session_id, SETTINGS, NOW) == signed.principal
    assert session_principal(store, "other", signed.session_id, SETTINGS, NOW) is None


def test_agent_scope_and_roles_are_checked(store: Store) -> None:
    with pytest.raises(InvalidInput) as no_team:
        add_user(store, J, "bob", "agent", (), PASSWORD)
    assert no_team.value.field == "team"
    with pytest.raises(InvalidInput) as client:
        add_user(store, J, "bob", "client", (), PASSWORD)
    assert client.value.field == "role"
    with pytest.raises(InvalidInput) as short:
        add_user(store, J, "bob", "gis", (), "short")
    assert short.value.field == "password"
    with pytest.raises(InvalidInput) as unknown:
        add_user(store, J, "bob", "agent", ("X",), PASSWORD, city_teams=frozenset({"Y"}))
    assert unknown.value.field == "team"
    add_user(store, J, "bob", "agent", ("Y", "Z W"), PASSWORD, city_teams=frozenset({"Y", "Z W"}))
    with pytest.raises(InvalidInput) as twice:
        add_user(store, J, "bob", "gis", (), PASSWORD)
    assert twice.value.field == "name"
    signed = sign_in(store, J, "bob", PASSWORD, SETTINGS, NOW)
    assert signed.principal.teams == frozenset({"Y", "Z W"})


def test_lockout_after_repeated_failures_then_unlock(store: Store) -> None:
    add_user(store, J, "carol", Role.ADMIN, (), PASSWORD, now=NOW)
    for attempt in range(SETTINGS.max_failures):
        with pytest.raises(Unauthorized) as wrong:
            sign_in(
                store, J, "carol", "wrong password!", SETTINGS, NOW + timedelta(seconds=attempt)
            )
        assert wrong.value.message == REFUSED
    # Locked: even the right password is refused, with the same words.
    with pytest.raises(Unauthorized) as locked:
        sign_in(store, J, "carol", PASSWORD, SETTINGS, NOW + timedelta(minutes=1))
    assert locked.value.message == REFUSED
    later = NOW + timedelta(minutes=SETTINGS.lockout_minutes, seconds=5)
    assert sign_in(store, J, "carol", PASSWORD, SETTINGS, later).principal.name == "carol"
    # A success resets the count: two more failures do not lock.
    for _ in range(SETTINGS.max_failures - 1):
        with pytest.raises(Unauthorized):
            sign_in(store, J, "carol", "wrong password!", SETTINGS, later)
    assert sign_in(store, J, "carol", PASSWORD, SETTINGS, later).principal.name == "carol"


def test_unknown_name_is_refused_like_a_wrong_password(store: Store) -> None:
    with pytest.raises(Unauthorized) as unknown:
        sign_in(store, J, "nobody", PASSWORD, SETTINGS, NOW)
    assert unknown.value.message == REFUSED


def test_session_idle_and_absolute_expiry(store: Store) -> None:
    add_user(store, J, "dave", Role.GIS, (), PASSWORD, now=NOW)
    idle = sign_in(store, J, "dave", PASSWORD, SETTINGS, NOW)
    step = timedelta(minutes=SETTINGS.session_idle_minutes - 1)
    assert session_principal(store, J, idle.session_id, SETTINGS, NOW + step) is not None
    # Used at NOW + step: idle expiry counts from there.
    assert session_principal(store, J, idle.session_id, SETTINGS, NOW + 2 * step) is not None
    assert session_principal(store, J, idle.session_id, SETTINGS, NOW + 4 * step) is None
    # Ended for good: it does not come back.
    assert session_principal(store, J, idle.session_id, SETTINGS, NOW + 2 * step) is None

    kept = sign_in(store, J, "dave", PASSWORD, SETTINGS, NOW)
    moment = NOW
    while moment < NOW + timedelta(hours=SETTINGS.session_max_hours - 1):
        moment += step
        assert session_principal(store, J, kept.session_id, SETTINGS, moment) is not None
    end = NOW + timedelta(hours=SETTINGS.session_max_hours)
    assert session_principal(store, J, kept.session_id, SETTINGS, end) is None


def test_sign_out_and_disable_end_sessions(store: Store) -> None:
    add_user(store, J, "erin", Role.DISPATCHER, (), PASSWORD, now=NOW)
    first = sign_in(store, J, "erin", PASSWORD, SETTINGS, NOW)
    second = sign_in(store, J, "erin", PASSWORD, SETTINGS, NOW)
    sign_out(store, J, first.session_id)
    assert session_principal(store, J, first.session_id, SETTINGS, NOW) is None
    assert session_principal(store, J, second.session_id, SETTINGS, NOW) is not None
    disable_user(store, J, "erin", NOW)
    assert session_principal(store, J, second.session_id, SETTINGS, NOW) is None
    with pytest.raises(Unauthorized):
        sign_in(store, J, "erin", PASSWORD, SETTINGS, NOW)
    with pytest.raises(InvalidInput):
        disable_user(store, J, "erin", NOW)
    with pytest.raises(NotFound):
        disable_user(store, J, "nobody", NOW)
    assert [(u.name, u.disabled_at is not None) for u in list_users(store, J)] == [("erin", True)]


def test_csrf_token_belongs_to_its_session() -> None:
    assert csrf_matches("session-a", csrf_token("session-a"))
    assert not csrf_matches("session-b", csrf_token("session-a"))
    assert not csrf_matches("session-a", "")


def _with_password(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``voirie users add ARGS --password-stdin`` with the password typed on stdin."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOIRIE_")}
    env |= {"VOIRIE_DATABASE_URL": f"sqlite:///{folder / 't.gpkg'}", "NO_COLOR": "1"}
    return subprocess.run(
        [voirie_executable(), "users", "add", *args, "--password-stdin"],
        input=PASSWORD + "\n",
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


def test_users_commands(tmp_path: Path) -> None:
    added = _with_password(tmp_path, "Agnès", "--role", "agent", "--team", "graffitis")
    assert added.returncode == 0, added.stderr
    assert PASSWORD not in added.stdout + added.stderr
    unknown = _with_password(tmp_path, "Bob", "--role", "agent", "--team", "nope")
    assert unknown.returncode == 2
    assert "team: unknown team(s) 'nope'" in unknown.stderr
    listed = run_voirie(tmp_path, "users", "list")
    assert "Agnès" in listed.stdout
    assert "active" in listed.stdout
    assert run_voirie(tmp_path, "users", "disable", "Agnès").returncode == 0
    assert "disabled" in run_voirie(tmp_path, "users", "list").stdout
    assert run_voirie(tmp_path, "users", "disable", "Agnès").returncode == 2
