"""``voirie rules``: check, replay, evaluate walk-forward and learn the routing rules of a
city, and list the rules dispatchers' reassignments propose."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path

import click
import yaml
from rich.console import Console
from rich.table import Table

from voirie.city import City, load_city
from voirie.cli.common import (
    city_option,
    configured_store,
    console,
    fail_cleanly,
    store_opened,
)
from voirie.cli.data import read_source
from voirie.errors import CityConfigError
from voirie.gis.enrich import CityGIS
from voirie.ingest.sources import RawTable
from voirie.routing.table import is_conditional, unreachable_rules
from voirie.services import learned_routing
from voirie.services.live_learning import proposals
from voirie.services.rules_learning import Learning
from voirie.services.rules_replay import (
    Replay,
    corrections_from,
    decisions_from,
    draft_yaml,
    history,
    learn,
    replay,
)
from voirie.services.walkforward import Fold, split_test, walk_forward
from voirie.store.base import LearnedRuleRecord


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


@rules.command("evaluate")
@click.argument("city_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@reports_option
@truth_option
@source_format_option
@click.option(
    "--warmup",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="First months only learned from, never tested.",
)
@click.option(
    "--live-support",
    type=click.IntRange(min=1),
    help="Also replay each month with the rules learned from dispatchers' corrections "
    "(fed back the next day) once this many agree.",
)
@click.option(
    "--live-triage-support",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="With --live-support: dispatchers' answers to reports left to triage that make a "
    "rule for their sub-category.",
)
@fail_cleanly
def rules_evaluate(
    city_dir: Path,
    reports_file: Path,
    truth_column: str,
    fmt: str,
    warmup: int,
    live_support: int | None,
    live_triage_support: int,
) -> None:
    """Walk forward through past reports: for each month after the first WARMUP, learn
    rules on the months before and test them on it, next to the majority-per-service
    baseline learned on the same past."""
    city = load_city(city_dir)
    table, mapping = read_source(reports_file, fmt, None)
    _require_column(table, truth_column)
    gis = CityGIS(city)
    reports, _ = history(city, gis, table, mapping, truth_column)
    folds = walk_forward(
        city,
        reports,
        list(gis.zones),
        warmup=warmup,
        live_support=live_support,
        live_triage_support=live_triage_support,
    )
    if not folds:
        raise click.UsageError(f"no month to test: the reports span {warmup} months or fewer")
    _print_folds(folds)


def _print_folds(folds: list[Fold]) -> None:
    table = Table(title="walk-forward: learned on the months before, tested on the month")
    live = any(fold.live is not None for fold in folds)
    columns = ["month", "reports", "zone rules", "voirie right / wrong / triage"]
    columns += ["baseline right / wrong / triage", "Δ points"]
    columns += ["live right / wrong / triage", "baseline live"] if live else []
    for column in columns:
        table.add_column(column, no_wrap=True)
    for fold in folds:
        ours, base = fold.voirie, fold.baseline
        row = [f"{fold.month:%Y-%m}", str(ours.n), str(fold.zone_rules), _outcome(ours)]
        row += [_outcome(base), f"{(ours.accuracy - base.accuracy) * 100:+.2f}"]
        if fold.live is not None and fold.baseline_live is not None:
            row += [_outcome(fold.live), _outcome(fold.baseline_live)]
        table.add_row(*row)
    Console(width=max(console.width, 180 if live else 120)).print(table)


def _outcome(result: Replay) -> str:
    return f"{result.accuracy:.2%} / {result.wrong_team} / {result.triaged}"


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
    "--half-life",
    type=click.FloatRange(min=0, min_open=True),
    default=Learning().half_life_days,
    show_default=True,
    help="Days after which a past report counts half (recent decisions count more).",
)
@click.option(
    "--validation-months",
    type=click.IntRange(min=0),
    default=Learning().validation_months,
    show_default=True,
    help="Keep a zone rule only if it won on these last months, learned on the months "
    "before (0: keep every zone rule the data suggests).",
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
    half_life: float,
    validation_months: int,
    corrections: bool,
) -> None:
    """Draft routing.rules entries: the majority team of each service (recent reports
    counting more), and of a service, a group or every service inside a zone where that
    differs and won out of time, with support and confidence, as YAML to review."""
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
        policy=Learning(half_life_days=half_life, validation_months=validation_months),
        corrections=fixes,
    )
    output.write_text(draft_yaml(learned, source=reports_file.name), encoding="utf-8")
    console.print(
        f"wrote {len(learned.rules)} rules to {output} from {learned.n} reports; "
        f"{len(learned.left_out)} services left out (below --min-support or not in city.yaml)",
        highlight=False,
        soft_wrap=True,
    )


@rules.command("proposals")
@city_option
@click.option(
    "--min-support",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Agreeing reassignments needed (and more than the decisions kept meanwhile).",
)
@click.option(
    "--triage-support",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Agreeing answers needed for a sub-category whose reports went to triage.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the proposed rules as routing.rules entries to review.",
)
@fail_cleanly
def rules_proposals(city: str, min_support: int, triage_support: int, output: Path | None) -> None:
    """List the service rules dispatchers' reassignments (in VOIRIE_DATABASE_URL) propose:
    where, for a sub-category, the reassignments to one team reach --min-support (the
    answers to its triaged reports --triage-support) and outnumber the decisions left as
    routed."""
    loaded = load_city(city, check_files=False)
    store = configured_store()
    try:
        found = proposals(decisions_from(store, loaded), min_support, triage_support)
    finally:
        store.close()
    rules_now = loaded.config.routing.rules
    current = {r.service: r.team for r in rules_now if r.service and not is_conditional(r)}
    click.echo(f"{len(found)} rules proposed by dispatchers' reassignments")
    if found:
        table = Table()
        for column in ("service", "now", "proposed", "version", "why"):
            table.add_column(column, overflow="fold")
        for proposal in found:
            table.add_row(
                loaded.services[proposal.service].name,
                current.get(proposal.service, "triage"),
                proposal.team,
                str(proposal.version),
                proposal.why,
            )
        Console(width=max(console.width, 120)).print(table)
    if output is not None:
        entries = [p.entry() for p in found]
        output.write_text(
            yaml.safe_dump(entries, allow_unicode=True, sort_keys=False, width=1000),
            encoding="utf-8",
        )
        console.print(f"wrote {len(entries)} rules to {output}", highlight=False)


@rules.command("learn-live")
@city_option
@fail_cleanly
def rules_learn_live(city: str) -> None:
    """One learning pass over the reassignments stored (VOIRIE_DATABASE_URL): store the
    rules they propose, in force at once with routing.learning.mode auto, else waiting for
    review. Each reassignment also runs the pass for its sub-category."""
    loaded = load_city(city, check_files=False)
    with store_opened() as store:
        learned = learned_routing.learn(store, loaded)
    click.echo(f"routing.learning.mode {learned.mode}: {len(learned.rules)} new rules")
    _print_learned(loaded, learned.rules)


@rules.command("review")
@city_option
@fail_cleanly
def rules_review(city: str) -> None:
    """Every version of the rules learned from dispatchers, with where review left it
    (proposed, active, rejected, reverted), who decided and when."""
    loaded = load_city(city, check_files=False)
    with store_opened() as store:
        found = learned_routing.versions(store, loaded)
    click.echo(f"{len(found)} learned rule versions")
    _print_learned(loaded, found)


def _print_learned(city: City, found: list[LearnedRuleRecord]) -> None:
    if not found:
        return
    table = Table()
    for column in ("rule", "service", "team", "status", "why", "decided"):
        table.add_column(column, overflow="fold")
    for rule in found:
        decided = f"{rule.decided_by} {rule.decided_at:%Y-%m-%d %H:%M}" if rule.decided_at else "-"
        table.add_row(
            f"{learned_routing.rule_id(rule.service_code)} v{rule.version}",
            city.services[rule.service_code].name,
            rule.team,
            rule.status,
            learned_routing.explain(rule),
            decided,
        )
    Console(width=max(console.width, 120)).print(table)


def _decision(status: str, verb: str) -> click.Command:
    @click.command(verb)
    @city_option
    @click.argument("service")
    @click.option("--by", "actor", required=True, help="Who decides (kept with the version).")
    @fail_cleanly
    def decide(city: str, service: str, actor: str) -> None:
        loaded = load_city(city, check_files=False)
        with store_opened() as store:
            rule = learned_routing.decide(store, loaded, service, status, actor)
        click.echo(f"{learned_routing.rule_id(service)} v{rule.version} ({rule.team}): {status}")

    return decide


_DECISIONS = {
    "accept": (learned_routing.ACTIVE, "Put a proposed learned rule of SERVICE in force."),
    "reject": (learned_routing.REJECTED, "Reject a proposed learned rule of SERVICE."),
    "revert": (
        learned_routing.REVERTED,
        "Take SERVICE's learned rule in force out of force: routing goes back to its "
        "previous version still in force, else to city.yaml.",
    ),
}
for _verb, (_status, _help) in _DECISIONS.items():
    _command = _decision(_status, _verb)
    _command.help = _help
    rules.add_command(_command)
