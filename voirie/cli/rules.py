"""``voirie rules``: check, replay and learn the routing rules of a city."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from voirie.city import load_city
from voirie.cli.common import city_option, configured_store, console, fail_cleanly
from voirie.cli.data import read_source
from voirie.errors import CityConfigError
from voirie.gis.enrich import CityGIS
from voirie.ingest.sources import RawTable
from voirie.routing.table import is_conditional, unreachable_rules
from voirie.services.rules_replay import (
    Replay,
    corrections_from,
    draft_yaml,
    learn,
    replay,
    split_test,
)


@click.group()
def rules() -> None:
    """The routing table: check it, test it on past reports, draft rules from them."""


def _day(value: datetime | None) -> date | None:
    return value.date() if value else None


reports_option = click.option(
    "--reports",
    "reports_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Past reports with the team that really handled each one.",
)
truth_option = click.option(
    "--truth-column", required=True, help="Column of the real team (DansMaRue: intervenant)."
)
source_format_option = click.option(
    "--format", "fmt", type=click.Choice(["dansmarue"]), default="dansmarue", show_default=True
)
since_option = click.option(
    "--since", type=click.DateTime(["%Y-%m-%d"]), help="Only reports declared on or after."
)
until_option = click.option(
    "--until", type=click.DateTime(["%Y-%m-%d"]), help="Only reports declared on or before."
)


@rules.command("check")
@click.argument("city_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@fail_cleanly
def rules_check(city_dir: Path) -> None:
    """Check CITY_DIR's routing table: exit 1 on errors; rules that never fire are warnings."""
    try:
        city = load_city(city_dir, check_files=False)
    except CityConfigError as exc:
        console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
        sys.exit(1)
    for warning in unreachable_rules(city):
        console.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    routes = city.config.routing.rules
    conditional = sum(1 for r in routes if is_conditional(r))
    by_service = sum(1 for r in routes if r.service and not is_conditional(r))
    click.echo(
        f"ok: {len(routes)} rules ({conditional} conditional, {by_service} service, "
        f"{len(routes) - conditional - by_service} group), "
        f"{len(city.services)} services, {len(city.teams)} teams, "
        f"default team {city.config.routing.default_team}"
    )


@rules.command("test")
@click.argument("city_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@reports_option
@truth_option
@source_format_option
@since_option
@until_option
@click.option(
    "--learn-until",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Instead of CITY_DIR's rules: learn rules from the reports declared up to "
    "this day, test them on the later ones, next to the majority-per-service "
    "baseline.",
)
@fail_cleanly
def rules_test(
    city_dir: Path,
    reports_file: Path,
    truth_column: str,
    fmt: str,
    since: datetime | None,
    until: datetime | None,
    learn_until: datetime | None,
) -> None:
    """Route past reports with CITY_DIR's table and compare with where they really went."""
    city = load_city(city_dir)
    table, mapping = read_source(reports_file, fmt, None)
    _require_column(table, truth_column)
    gis = CityGIS(city)
    if learn_until is not None:
        results = split_test(city, gis, table, mapping, truth_column, learn_until.date())
        _print_replay(results["learned"])
        _print_split(results, learn_until.date())
        return
    result = replay(city, gis, table, mapping, truth_column, since=_day(since), until=_day(until))
    _print_replay(result)


def _print_split(results: dict[str, Replay], learn_until: date) -> None:
    table = Table(title=f"learned from reports up to {learn_until}, tested on the later ones")
    for column in ("rules", "reports", "accuracy", "wrong team", "triage"):
        table.add_column(column)
    for label, result in results.items():
        table.add_row(
            label,
            str(result.n),
            f"{result.accuracy:.2%}",
            f"{result.wrong_team_rate:.2%}",
            f"{result.triage_rate:.2%}",
        )
    Console().print(table)


def _require_column(table: RawTable, column: str) -> None:
    if column not in table.columns:
        raise click.UsageError(f"--truth-column {column!r} is not a column of the file")


def _print_replay(result: Replay) -> None:
    out = Console()
    summary = Table(title="routing replay", show_header=False)
    summary.add_row("reports compared", str(result.n))
    summary.add_row("accuracy", f"{result.accuracy:.1%} ({result.correct})")
    summary.add_row("wrong team", f"{result.wrong_team_rate:.1%} ({result.wrong_team})")
    summary.add_row("triage", f"{result.triage_rate:.1%} ({result.triaged})")
    for reason, count in result.skipped.items():
        summary.add_row(f"left out: {reason}", str(count))
    out.print(summary)
    for title, pairs in (
        ("most frequent (truth, predicted) pairs", result.top_pairs(10)),
        ("most frequent mistakes", result.top_pairs(10, errors_only=True)),
    ):
        table = Table(title=title)
        for column in ("truth", "predicted", "count"):
            table.add_column(column, overflow="fold")
        for truth, predicted, count in pairs.itertuples(index=False, name=None):
            table.add_row(str(truth), str(predicted), str(count))
        out.print(table)
    fired = Table(title="rules that fired")
    for column in ("rule", "team", "reports", "correct"):
        fired.add_column(column, overflow="fold")
    for rule, team, count, correct in result.rules.head(20).itertuples(index=False, name=None):
        fired.add_row(str(rule), str(team), str(count), f"{correct / count:.0%}")
    out.print(fired)
    if len(result.rules) > 20:
        out.print(f"… and {len(result.rules) - 20} more rules")


@rules.command("learn")
@city_option
@reports_option
@truth_option
@source_format_option
@since_option
@until_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--min-support",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Fewest reports of a service to draft a rule for it.",
)
@click.option(
    "--zones/--no-zones",
    default=True,
    show_default=True,
    help="Also draft zone rules where location changes the team (reads the layers).",
)
@click.option(
    "--corrections",
    is_flag=True,
    help="Also count dispatchers' reassignments stored in VOIRIE_DATABASE_URL.",
)
@fail_cleanly
def rules_learn(
    city: str,
    reports_file: Path,
    truth_column: str,
    fmt: str,
    since: datetime | None,
    until: datetime | None,
    output: Path,
    min_support: int,
    zones: bool,
    corrections: bool,
) -> None:
    """Draft routing.rules entries: the majority team of each service, and of a service or
    group inside a zone where that differs, with support and confidence, as YAML to review."""
    loaded = load_city(city, check_files=zones)
    table, mapping = read_source(reports_file, fmt, None)
    _require_column(table, truth_column)
    fixes = None
    if corrections:
        store = configured_store()
        try:
            fixes = corrections_from(store, loaded)
        finally:
            store.close()
        console.print(f"counting {len(fixes)} reassignments by dispatchers")
    learned = learn(
        loaded,
        table,
        mapping,
        truth_column,
        gis=CityGIS(loaded) if zones else None,
        since=_day(since),
        until=_day(until),
        min_support=min_support,
        corrections=fixes,
    )
    output.write_text(draft_yaml(learned, source=reports_file.name), encoding="utf-8")
    console.print(
        f"wrote {len(learned.rules)} rules to {output} from {learned.n} reports; "
        f"{len(learned.left_out)} services left out (below --min-support or not in city.yaml)",
        highlight=False,
        soft_wrap=True,
    )
