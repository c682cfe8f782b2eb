"""Administration: ``voirie db``, ``voirie tokens``, ``voirie layers``, ``voirie incidents``."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from voirie.city import load_city
from voirie.cli.common import city_option, configured_store, console, fail_cleanly
from voirie.gis.check import LayerReport, check_city_layers
from voirie.services.auth import (
    Role,
    issue_token,
    parse_duration,
    parse_expiry,
    revoke_token,
    rotate_token,
    token_status,
)
from voirie.services.merging import recluster
from voirie.services.pipeline import Pipeline
from voirie.settings import StoreSettings
from voirie.store import open_store


@click.group()
def db() -> None:
    """Database maintenance (location from VOIRIE_DATABASE_URL)."""


@db.command("upgrade")
@fail_cleanly
def db_upgrade() -> None:
    """Apply pending schema migrations."""
    store = open_store(StoreSettings())
    applied = store.upgrade()
    click.echo(
        f"applied migrations {applied}"
        if applied
        else f"schema is up to date (version {store.schema_version()}, {store.backend})"
    )
    store.close()


@click.group()
def tokens() -> None:
    """API tokens for the staff API and Open311 clients (stored hashed)."""


EXPIRES_HELP = (
    "When the token stops working: a duration (90d, 12h, 4w), a date (2027-03-31: "
    "valid through that day, UTC) or a date-time. Default: until revoked."
)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


def _expiry(expires: str | None) -> datetime | None:
    return None if expires is None else parse_expiry(expires)


@tokens.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    required=True,
    help="admin: everything; dispatcher: every incident; agent: their team(s) only; "
    "gis: read-only, no contact data; client: an Open311 api_key.",
)
@click.option(
    "--team",
    "teams",
    multiple=True,
    help="Team code an agent works for (repeatable; required for agents).",
)
@click.option("--expires", help=EXPIRES_HELP)
@city_option
@fail_cleanly
def tokens_add(
    name: str, role: str, teams: tuple[str, ...], expires: str | None, city: str
) -> None:
    """Create an API token for NAME and print it once: it cannot be shown again."""
    loaded = load_city(city)
    expires_at = _expiry(expires)
    store = configured_store()
    try:
        token = issue_token(
            store,
            loaded.jurisdiction_id,
            name,
            role,
            teams,
            city_teams=loaded.teams,
            expires_at=expires_at,
        )
    finally:
        store.close()
    click.echo(token)
    until = f", valid until {_when(expires_at)} UTC" if expires_at else ""
    console.print(
        f"token for {name!r} ({role}{until}); store it now, it will not be shown again",
        highlight=False,
    )


@tokens.command("list")
@city_option
@fail_cleanly
def tokens_list(city: str) -> None:
    """List the city's tokens (never the secrets): id, holder, role, teams, dates, status.

    Times are UTC; "last used" is recorded at most once a minute.
    """
    loaded = load_city(city)
    store = configured_store()
    try:
        records = store.list_tokens(loaded.jurisdiction_id)
    finally:
        store.close()
    now = datetime.now(UTC)
    table = Table(title=f"API tokens of {loaded.config.name}")
    for column in ("id", "name", "role", "teams", "created", "expires", "last used", "status"):
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(
            str(record.id),
            record.name,
            record.role,
            ", ".join(record.teams) or "-",
            _when(record.created_at),
            _when(record.expires_at),
            _when(record.last_used_at),
            token_status(record, now)
            + (f" {_when(record.revoked_at)}" if record.revoked_at else ""),
        )
    Console(width=max(console.width, 120)).print(table)


@tokens.command("revoke")
@click.argument("token")
@city_option
@fail_cleanly
def tokens_revoke(token: str, city: str) -> None:
    """Revoke TOKEN (its id in `voirie tokens list`, or its holder's name): every server
    refuses it from the next request on."""
    loaded = load_city(city)
    store = configured_store()
    try:
        record = revoke_token(store, loaded.jurisdiction_id, token)
    finally:
        store.close()
    console.print(f"revoked token {record.id} of {record.name!r} ({record.role})", highlight=False)


@tokens.command("rotate")
@click.argument("token")
@click.option("--expires", help=EXPIRES_HELP + " Default: the old token's expiry.")
@click.option(
    "--grace",
    default="0h",
    show_default=True,
    help="Keep the old token working this long (e.g. 1h, 2d) while clients switch over; "
    "by default it is revoked at once.",
)
@city_option
@fail_cleanly
def tokens_rotate(token: str, expires: str | None, grace: str, city: str) -> None:
    """Replace TOKEN (id or holder's name) by a new token for the same holder, role and
    teams; print the new one once."""
    loaded = load_city(city)
    now = datetime.now(UTC)
    keep = parse_duration(grace)
    store = configured_store()
    try:
        old, new = rotate_token(
            store, loaded.jurisdiction_id, token, expires_at=_expiry(expires), grace=keep, now=now
        )
    finally:
        store.close()
    click.echo(new)
    ending = f"works until {_when(now + keep)} UTC" if keep else "is revoked"
    console.print(
        f"new token for {old.name!r} ({old.role}); the old one ({old.id}) {ending}; "
        "store the new one now, it will not be shown again",
        highlight=False,
    )


@click.group()
def layers() -> None:
    """Reference layers (streets, zones) of a city folder."""


@layers.command("check")
@click.argument("city_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@fail_cleanly
def layers_check(city_dir: Path) -> None:
    """Check every layer CITY_DIR's city.yaml names; exit code 1 if any has a problem."""
    reports = check_city_layers(city_dir)
    _print_layer_reports(reports)
    problems = [p for r in reports for p in r.problems]
    for problem in problems:
        console.print(f"[bold red]problem:[/] {problem}", highlight=False, soft_wrap=True)
    if problems:
        sys.exit(1)


def _print_layer_reports(reports: list[LayerReport]) -> None:
    out = Console()
    table = Table(title="reference layers")
    table.add_column("layer", no_wrap=True)
    table.add_column("file", overflow="fold")
    for column in ("features", "CRS", "empty", "repaired", "rejected"):
        table.add_column(column, no_wrap=True)
    for r in reports:
        stats = r.stats
        table.add_row(
            r.name,
            r.path.name,
            "-" if r.features is None else str(r.features),
            r.crs or "-",
            *(
                ("-",) * 3
                if stats is None
                else (str(stats.empty), str(stats.repaired), str(stats.rejected))
            ),
        )
    out.print(table)
    coverage = Table(title="attributes (share of features with a value) and extent")
    for column in ("layer", "attribute", "filled"):
        coverage.add_column(column, overflow="fold")
    for r in reports:
        for attr, share in r.coverage.items():
            coverage.add_row(r.name, attr, f"{share:.1%}")
        if r.bbox is not None:
            coverage.add_row(r.name, "extent", " ".join(f"{v:.0f}" for v in r.bbox))
    out.print(coverage)
    for r in reports:
        for note in r.notes:
            out.print(f"note: {note}", highlight=False, soft_wrap=True)
    if not any(r.problems for r in reports):
        out.print(f"{len(reports)} layers, no problem")


@click.group()
def incidents() -> None:
    """Incidents: the groups of reports of one problem."""


@incidents.command("recluster")
@city_option
@fail_cleanly
def incidents_recluster(city: str) -> None:
    """Regroup the reports of open incidents with the thresholds now in city.yaml (after
    changing a radius, a window or a group's match), as if they had arrived one by one.

    Incidents staff marked "not duplicates" stay apart; merges and splits are recorded in
    each incident's history.
    """
    store = configured_store()
    try:
        done = recluster(Pipeline(load_city(city), store))
    finally:
        store.close()
    console.print(
        f"re-clustered {done.reports} reports of {done.incidents_before} open incidents "
        f"into {done.incidents_after}: {done.merged} merged away, {done.opened} opened "
        f"by splits, {done.moved} reports moved",
        highlight=False,
        soft_wrap=True,
    )
