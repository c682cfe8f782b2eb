"""``voirie users``: the accounts staff sign in with at ``/staff/login`` (stored hashed)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click
from rich.console import Console
from rich.table import Table

from voirie.city import load_city
from voirie.cli.common import city_option, configured_store, console, fail_cleanly
from voirie.errors import InvalidInput
from voirie.services.auth import Action, Principal, Role
from voirie.services.staff_users import add_user, disable_user, list_users

# The roles that may sign in to the staff pages: those that read incidents at all.
STAFF_ROLES = [role.value for role in Role if Principal("", role).may(Action.READ)]


@click.group()
def users() -> None:
    """Staff accounts for the staff pages (/staff/): name, password, role and teams."""


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    typed: str = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return typed


@users.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(STAFF_ROLES),
    required=True,
    help="admin: everything; dispatcher: every incident; agent: their team(s) only; "
    "gis: read-only, no contact data.",
)
@click.option(
    "--team",
    "teams",
    multiple=True,
    help="Team code an agent works for (repeatable; required for agents).",
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of asking.",
)
@city_option
@fail_cleanly
def users_add(
    name: str, role: str, teams: tuple[str, ...], password_stdin: bool, city: str
) -> None:
    """Create a staff account NAME (the password is asked twice, never shown)."""
    loaded = load_city(city)
    password = _password(password_stdin)
    if not password:
        raise InvalidInput("password: empty", field="password")
    store = configured_store()
    try:
        add_user(
            store,
            loaded.jurisdiction_id,
            name,
            role,
            teams,
            password,
            city_teams=frozenset(loaded.teams),
        )
    finally:
        store.close()
    console.print(f"staff account {name!r} ({role}) created; sign in at /staff/login")


@users.command("list")
@city_option
@fail_cleanly
def users_list(city: str) -> None:
    """List the city's staff accounts (never the passwords): role, teams, state."""
    loaded = load_city(city)
    store = configured_store()
    try:
        records = list_users(store, loaded.jurisdiction_id)
    finally:
        store.close()
    now = datetime.now(UTC)
    table = Table(title=f"Staff accounts of {loaded.config.name}")
    for column in ("id", "name", "role", "teams", "created", "state"):
        table.add_column(column, overflow="fold")
    for user in records:
        if user.disabled_at is not None:
            state = f"disabled {user.disabled_at:%Y-%m-%d %H:%M}"
        elif user.locked_until is not None and user.locked_until > now:
            state = f"locked until {user.locked_until:%H:%M} UTC"
        else:
            state = "active"
        created = "-" if user.created_at is None else f"{user.created_at:%Y-%m-%d %H:%M}"
        table.add_row(
            str(user.id), user.name, user.role, ", ".join(user.teams) or "-", created, state
        )
    Console(width=max(console.width, 120)).print(table)


@users.command("disable")
@click.argument("name")
@city_option
@fail_cleanly
def users_disable(name: str, city: str) -> None:
    """Disable the account NAME: its sessions end at once; it cannot sign in again."""
    loaded = load_city(city)
    store = configured_store()
    try:
        disable_user(store, loaded.jurisdiction_id, name)
    finally:
        store.close()
    console.print(f"staff account {name!r} disabled")
