"""API tokens: issued once, stored hashed, scoped to a jurisdiction, checked by role and team.

Store tests run on both backends (``store`` fixture); the CLI tests run the installed
``voirie tokens add`` on an sqlite store, as an administrator would.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from clirunner import run_voirie

from voirie.city import TRIAGE_TEAM, City
from voirie.errors import Forbidden, InvalidInput
from voirie.services.auth import (
    PERMISSIONS,
    Action,
    Principal,
    Role,
    authenticate,
    issue_token,
    token_hash,
)
from voirie.store import Store

PARIS = "paris.fr"
TEAM_A, TEAM_B = "CIELIS", "CITEOS"


@pytest.mark.parametrize("role", list(Role))
def test_token_round_trip_for_every_role(store: Store, role: Role) -> None:
    teams = {TEAM_A, TEAM_B} if role is Role.AGENT else set()
    token = issue_token(store, PARIS, "Alice Martin", role, teams)
    assert authenticate(store, PARIS, token) == Principal("Alice Martin", role, frozenset(teams))


def test_tokens_are_random_hashed_and_jurisdiction_scoped(store: Store) -> None:
    first = issue_token(store, PARIS, "app", Role.CLIENT)
    second = issue_token(store, PARIS, "app", Role.CLIENT)
    assert first != second
    assert len(first) > 40
    assert store.find_token(PARIS, token_hash(first)) is not None
    # The token itself is not a key: only its hash finds it.
    assert store.find_token(PARIS, first) is None
    assert authenticate(store, "elsewhere.example", first) is None
    assert authenticate(store, PARIS, first + "x") is None
    assert authenticate(store, PARIS, "") is None


def test_team_codes_with_spaces_and_accents_survive(store: Store) -> None:
    team = "SECTION PROPRETÉ 13, EST"
    token = issue_token(store, PARIS, "agent", Role.AGENT, [team])
    principal = authenticate(store, PARIS, token)
    assert principal is not None
    assert principal.teams == {team}


def test_sqlite_keeps_only_the_hash(tmp_path: Path) -> None:
    from voirie.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "t.gpkg")
    store.upgrade()
    token = issue_token(store, PARIS, "gis officer", Role.GIS)
    store.close()
    with sqlite3.connect(tmp_path / "t.gpkg") as conn:
        dump = "\n".join(conn.iterdump())
    assert token_hash(token) in dump
    assert token not in dump
    assert token.removeprefix("voirie_") not in dump


@pytest.mark.parametrize(
    ("name", "role", "teams", "city_teams", "field", "words"),
    [
        ("x", "agent", [], None, "team", "at least one"),
        ("x", "dispatcher", [TEAM_A], None, "team", "only agent"),
        ("x", "agent", ["NOPE"], {TEAM_A}, "team", "'NOPE'"),
        ("x", "root", [], None, "role", "admin, dispatcher, agent, gis, client"),
        ("  ", "gis", [], None, "name", "printable"),
        ("a\nb", "gis", [], None, "name", "printable"),
    ],
)
def test_bad_token_requests_name_the_field(
    store: Store,
    name: str,
    role: str,
    teams: list[str],
    city_teams: set[str] | None,
    field: str,
    words: str,
) -> None:
    with pytest.raises(InvalidInput) as error:
        issue_token(store, PARIS, name, role, teams, city_teams=city_teams)
    assert error.value.field == field
    assert words in error.value.message


def test_permissions_of_each_role() -> None:
    admin = Principal("a", Role.ADMIN)
    dispatcher = Principal("d", Role.DISPATCHER)
    agent = Principal("t", Role.AGENT, frozenset({TEAM_A}))
    gis = Principal("g", Role.GIS)
    client = Principal("c", Role.CLIENT)
    for action in Action:
        assert admin.may(action, TEAM_B)
        assert dispatcher.may(action, TEAM_B)
        assert not client.may(action, TEAM_A)
    assert gis.may(Action.READ, TEAM_B)
    assert [a for a in Action if gis.may(a, TEAM_B)] == [Action.READ]
    assert {a for a in Action if agent.may(a, TEAM_A)} == {
        Action.READ,
        Action.CONTACTS,
        Action.STATUS,
        Action.COMMENT,
        Action.HAND_BACK,
    }
    assert not any(agent.may(a, TEAM_B) for a in Action)
    assert agent.may_assign(TEAM_A, TRIAGE_TEAM)
    assert not agent.may_assign(TEAM_A, TEAM_B)
    assert not agent.may_assign(TEAM_B, TRIAGE_TEAM)
    assert dispatcher.may_assign(TEAM_A, TEAM_B)
    assert agent.visible_teams == {TEAM_A}
    assert admin.visible_teams is None
    assert gis.visible_teams is None
    assert client.visible_teams == frozenset()
    with pytest.raises(Forbidden, match="CITEOS"):
        agent.check(Action.STATUS, TEAM_B)
    # Every action of the table names only known roles.
    assert all(set(roles) <= set(Role) for roles in PERMISSIONS.values())


def test_cli_prints_the_token_once_and_it_authenticates(tmp_path: Path, paris: City) -> None:
    from voirie.store.sqlite import SqliteStore

    added = run_voirie(
        tmp_path,
        "tokens",
        "add",
        "Agent Smith",
        "--role",
        "agent",
        "--team",
        TEAM_A,
        "--team",
        TEAM_B,
    )
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert token.startswith("voirie_")
    assert "\n" not in token
    assert "will not be shown again" in added.stderr
    store = SqliteStore(tmp_path / "t.gpkg")
    try:
        principal = authenticate(store, paris.jurisdiction_id, token)
    finally:
        store.close()
    assert principal == Principal("Agent Smith", Role.AGENT, frozenset({TEAM_A, TEAM_B}))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "agent"], "error: team: an agent token needs at least one --team"),
        (["--role", "agent", "--team", "NOPE"], "error: team: unknown team(s) 'NOPE'"),
        (["--role", "gis", "--team", TEAM_A], "error: team: only agent tokens"),
    ],
)
def test_cli_refuses_bad_requests_clearly(tmp_path: Path, args: list[str], message: str) -> None:
    run = run_voirie(tmp_path, "tokens", "add", "someone", *args)
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout == ""


def test_cli_rejects_an_unknown_role(tmp_path: Path) -> None:
    run = run_voirie(tmp_path, "tokens", "add", "someone", "--role", "root")
    assert run.returncode == 2
    assert "'root' is not one of 'admin', 'dispatcher', 'agent', 'gis', 'client'" in run.stderr
