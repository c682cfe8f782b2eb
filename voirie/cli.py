"""The ``voirie`` command. Each command parses its arguments and calls one function."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from voirie.auth import Role, issue_token
from voirie.city import load_city
from voirie.errors import CityConfigError, VoirieError
from voirie.gis.check import LayerReport, check_city_layers
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE, OPEN311, ColumnMapping, load_mapping
from voirie.ingest.sources import RawTable, read_csv, read_geojson, read_open311_json
from voirie.maps.export import (
    FORMATS,
    ID_COLUMNS,
    Format,
    check_crs,
    download_selection,
    layer_chunks,
    write_layer,
)
from voirie.merging import recluster
from voirie.pipeline import ImportSummary, Pipeline
from voirie.routing.evaluate import (
    Replay,
    corrections_from,
    draft_yaml,
    learn,
    replay,
    split_test,
)
from voirie.routing.outbox import DEAD
from voirie.routing.table import is_conditional, unreachable_rules
from voirie.routing.worker import run, run_once, start_in_thread, worker_id
from voirie.settings import CitySettings, OutboxSettings, ServerSettings, StoreSettings
from voirie.store import Store, open_store
from voirie.store.selection import Layer

console = Console(stderr=True)
IMPORT_FORMATS = ("dansmarue", "csv", "geojson", "open311-json")
# GeoJSON features carry Open311 properties; the point comes from the geometry, which
# read_geojson puts in "lon"/"lat" (Open311 itself calls the longitude "long").
GEOJSON_OPEN311 = OPEN311.model_copy(update={"lon": "lon", "lat": "lat"})
DEMO_REPORTS = "reports/dansmarue_2023-07_2024-03.csv.gz"

city_option = click.option(
    "--city", envvar="VOIRIE_CITY", default="paris", show_default=True,
    help="City folder (with its city.yaml), or the name of a city shipped with voirie.",
)


def _fail_cleanly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Show voirie errors as one clear message and a non-zero exit code, not a traceback."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except VoirieError as exc:
            # soft_wrap: one line whatever the terminal width, so it can be grepped.
            console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
            sys.exit(2)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


def _store() -> Store:
    store = open_store(StoreSettings())
    store.upgrade()
    return store


@click.group()
@click.version_option(package_name="voirie")
def main() -> None:
    """voirie: street incident reports, snapped to streets, grouped into incidents, routed to
    the right team, and published as maps and GIS layers."""


@main.group()
def db() -> None:
    """Database maintenance (location from VOIRIE_DATABASE_URL)."""


@db.command("upgrade")
@_fail_cleanly
def db_upgrade() -> None:
    """Apply pending schema migrations."""
    store = open_store(StoreSettings())
    applied = store.upgrade()
    click.echo(
        f"applied migrations {applied}" if applied else "schema is up to date"
        f" (version {store.schema_version()}, {store.backend})"
    )
    store.close()


@main.group()
def tokens() -> None:
    """API tokens for the staff API and Open311 clients (stored hashed)."""


@tokens.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True,
              help="admin: everything; dispatcher: every incident; agent: their team(s) only; "
              "gis: read-only, no contact data; client: an Open311 api_key.")
@click.option("--team", "teams", multiple=True,
              help="Team code an agent works for (repeatable; required for agents).")
@city_option
@_fail_cleanly
def tokens_add(name: str, role: str, teams: tuple[str, ...], city: str) -> None:
    """Create an API token for NAME and print it once: it cannot be shown again."""
    loaded = load_city(city)
    store = _store()
    try:
        token = issue_token(
            store, loaded.jurisdiction_id, name, role, teams, city_teams=loaded.teams
        )
    finally:
        store.close()
    click.echo(token)
    console.print(f"token for {name!r} ({role}); store it now, it will not be shown again")


@main.group()
def layers() -> None:
    """Reference layers (streets, zones) of a city folder."""


@layers.command("check")
@click.argument("city_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_fail_cleanly
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
            r.name, r.path.name, "-" if r.features is None else str(r.features), r.crs or "-",
            *(("-",) * 3 if stats is None
              else (str(stats.empty), str(stats.repaired), str(stats.rejected))),
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


def _read_source(path: Path, fmt: str, mapping_file: Path | None) -> tuple[RawTable, ColumnMapping]:
    if fmt == "dansmarue":
        return read_csv(path), DANSMARUE
    if fmt == "open311-json":
        return read_open311_json(path), OPEN311
    if mapping_file is None and fmt == "csv":
        raise click.UsageError("--format csv needs --mapping FILE (which column is which field)")
    mapping = load_mapping(mapping_file) if mapping_file else GEOJSON_OPEN311
    return (read_csv(path) if fmt == "csv" else read_geojson(path)), mapping


def run_import(
    pipeline: Pipeline, path: Path, fmt: str, mapping_file: Path | None, quarantine: Path
) -> ImportSummary:
    """Import one file with a progress bar; write the quarantined rows next to the summary."""
    table, mapping = _read_source(path, fmt, mapping_file)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"importing {path.name}", total=len(table.rows))
        summary = pipeline.import_table(table, mapping, progress=lambda n: bar.advance(task, n))
    if summary.quarantined:
        rows = table.rows.drop(columns=["_problem"]).rename(columns={"_row": "row"})
        summary.quarantine.merge(rows, on="row", how="left", suffixes=("", "_source")).to_csv(
            quarantine, index=False
        )
    _print_summary(summary, quarantine)
    return summary


def _print_summary(summary: ImportSummary, quarantine: Path) -> None:
    table = Table(title="import summary", show_header=False)
    table.add_row("rows read", str(summary.read))
    table.add_row("imported", str(summary.imported))
    table.add_row("  opened a new incident", str(summary.new_incidents))
    table.add_row("  attached to an incident of this import", str(summary.attached_in_batch))
    table.add_row("  attached to an incident already stored", str(summary.attached_existing))
    table.add_row("already imported (skipped)", str(summary.already_imported))
    table.add_row("quarantined", str(summary.quarantined))
    for reason, count in summary.reasons().items():
        table.add_row(f"  {reason}", str(count))
    console.print(table)
    if summary.quarantined:
        console.print(f"quarantined rows and their reasons: {quarantine}")
    if summary.read and not summary.imported and summary.already_imported:
        console.print("nothing new: every row was already imported")


@main.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@city_option
@click.option("--format", "fmt", type=click.Choice(IMPORT_FORMATS), required=True,
              help="dansmarue: Paris DansMaRue CSV export; csv: any CSV, with --mapping; "
              "geojson: Point features; open311-json: array of GeoReport v2 requests.")
@click.option("--mapping", "mapping_file", type=click.Path(exists=True, path_type=Path),
              help="YAML file naming the source column of each report field.")
@click.option("--quarantine", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write rejected rows with their reason "
              "[default: PATH's name + .quarantine.csv in the current folder]")
@_fail_cleanly
def import_command(
    path: Path, city: str, fmt: str, mapping_file: Path | None, quarantine: Path | None
) -> None:
    """Import reports from PATH through the whole pipeline (idempotent on the source's ids)."""
    store = _store()
    try:
        pipeline = Pipeline(load_city(city), store)
        target = quarantine or Path(path.name.removesuffix(".gz") + ".quarantine.csv")
        run_import(pipeline, path, fmt, mapping_file, target)
    finally:
        store.close()


@main.command("export")
@click.argument("layer", type=click.Choice(["reports", "incidents"]))
@city_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True,
              help="csv (with x, y and WKT), geojson, gpkg (GeoPackage with French column "
              "titles) or zip (zipped Shapefile).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--crs", default=None, help="Output CRS, e.g. EPSG:2154 [default: EPSG:4326]")
@click.option("--status", default=None, help="Only these incident statuses (comma-separated).")
@click.option("--service", default=None, help="Only these service codes (comma-separated).")
@click.option("--team", default=None, help="Only these teams (comma-separated codes).")
@click.option("--zone", default=None, help="Only one zone, as layer:code (arrondissement:75111).")
@click.option("--bbox", default=None, help="Only inside minlon,minlat,maxlon,maxlat (WGS84).")
@click.option("--start", default=None,
              help="Reports requested (incidents active) on or after this ISO 8601 date.")
@click.option("--end", default=None, help="... and on or before this ISO 8601 date.")
@_fail_cleanly
def export_command(
    layer: Layer, city: str, fmt: Format, output: Path, crs: str | None, status: str | None,
    service: str | None, team: str | None, zone: str | None, bbox: str | None,
    start: str | None, end: str | None,
) -> None:
    """Write the report or incident layer (public fields only) to a file, chunk by chunk."""
    selection = download_selection(status=status, service=service, team=team, zone=zone,
                                   bbox=bbox, start=start, end=end)
    store = _store()
    try:
        pipeline = Pipeline(load_city(city), store)
        written = write_layer(layer_chunks(pipeline, layer, selection), output, fmt,
                              id_column=ID_COLUMNS[layer], crs=check_crs(crs), layer=layer)
        console.print(f"wrote {written} {layer} to {output}")
    finally:
        store.close()


def _serve(city: str, host: str, port: int, worker: bool = True) -> None:
    import uvicorn

    from voirie.api.app import create_app

    app = create_app(StoreSettings(), CitySettings(city=city))
    if worker:
        # The outbox worker in this process, on its own store connections.
        start_in_thread(_store(), load_city(city), OutboxSettings())
    base = f"http://{host}:{port}"
    console.print(
        f"[bold]voirie is serving {city}[/]\n"
        f"  dispatch map        {base}/maps/dispatch\n"
        f"  issues near me      {base}/maps/nearby\n"
        f"  incidents (GeoJSON) {base}/exports/incidents.geojson\n"
        f"  reports (GeoPackage) {base}/exports/reports.gpkg\n"
        f"  OGC API Features    {base}/ogc\n"
        f"  QGIS project        {base}/exports/voirie.qgs\n"
        f"  vector tiles        {base}/tiles/incidents.json\n"
        f"  API documentation   {base}/docs\n"
        f"  health              {base}/healthz"
    )
    uvicorn.run(app, host=host, port=port, log_level="info")


@main.command("serve")
@city_option
@click.option("--host", default=ServerSettings().host, show_default=True)
@click.option("--port", default=ServerSettings().port, show_default=True, type=int)
@click.option("--worker/--no-worker", default=True, show_default=True,
              help="Run the outbox worker (notifications, escalation) in this process.")
@_fail_cleanly
def serve_command(city: str, host: str, port: int, worker: bool) -> None:
    """Serve the maps, downloads and APIs."""
    _serve(city, host, port, worker)


@main.command("worker")
@city_option
@click.option("--once", is_flag=True, help="One pass (escalate, deliver what is due), then exit.")
@click.option("--dead-letters", is_flag=True,
              help="List the messages given up on, with the reason, then exit.")
@_fail_cleanly
def worker_command(city: str, once: bool, dead_letters: bool) -> None:
    """Deliver notifications from the outbox and escalate overdue incidents, every
    VOIRIE_WORKER_INTERVAL_S seconds (several workers may run at once)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    store = _store()
    settings = OutboxSettings()
    loaded = load_city(city, check_files=False)
    try:
        if dead_letters:
            _print_dead_letters(store.lookup("outbox", loaded.jurisdiction_id, "status", [DEAD]))
        elif once:
            done = run_once(store, loaded, settings, worker_id())
            console.print(f"delivered {done.delivered}, to retry {done.retried}, "
                          f"dead-lettered {done.dead}")
        else:
            run(store, loaded, settings, threading.Event())
    finally:
        store.close()


def _print_dead_letters(rows: pd.DataFrame) -> None:
    """Dead letters without their target (a citizen's address is personal data)."""
    table = Table(title=f"{len(rows)} dead letters")
    for column in ("idempotency key", "channel", "team", "attempts", "reason"):
        table.add_column(column, overflow="fold")
    for row in rows.itertuples(index=False):
        table.add_row(str(row.idempotency_key), str(row.channel), str(row.team or "-"),
                      str(row.attempts), str(row.last_error))
    Console().print(table)


@main.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="Import and export only; do not start the server.")
@_fail_cleanly
def demo_command(host: str, port: int, no_serve: bool) -> None:
    """Import the bundled Paris reports into the embedded store, then serve everything."""
    city = load_city("paris")
    store = _store()
    try:
        pipeline = Pipeline(city, store)
        run_import(pipeline, city.path(DEMO_REPORTS), "dansmarue", None,
                   Path("demo.quarantine.csv"))
    finally:
        store.close()
    if not no_serve:
        _serve("paris", host, port)


@main.group()
def rules() -> None:
    """The routing table: check it, test it on past reports, draft rules from them."""


def _day(value: datetime | None) -> date | None:
    return value.date() if value else None


reports_option = click.option(
    "--reports", "reports_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True, help="Past reports with the team that really handled each one.",
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
@_fail_cleanly
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
@click.option("--learn-until", type=click.DateTime(["%Y-%m-%d"]),
              help="Instead of CITY_DIR's rules: learn rules from the reports declared up to "
              "this day, test them on the later ones, next to the majority-per-service "
              "baseline.")
@_fail_cleanly
def rules_test(
    city_dir: Path, reports_file: Path, truth_column: str, fmt: str,
    since: datetime | None, until: datetime | None, learn_until: datetime | None,
) -> None:
    """Route past reports with CITY_DIR's table and compare with where they really went."""
    city = load_city(city_dir)
    table, mapping = _read_source(reports_file, fmt, None)
    _require_column(table, truth_column)
    gis = CityGIS(city)
    if learn_until is not None:
        results = split_test(city, gis, table, mapping, truth_column, learn_until.date())
        _print_replay(results["learned"])
        _print_split(results, learn_until.date())
        return
    result = replay(city, gis, table, mapping, truth_column,
                    since=_day(since), until=_day(until))
    _print_replay(result)


def _print_split(results: dict[str, Replay], learn_until: date) -> None:
    table = Table(title=f"learned from reports up to {learn_until}, tested on the later ones")
    for column in ("rules", "reports", "accuracy", "wrong team", "triage"):
        table.add_column(column)
    for label, result in results.items():
        table.add_row(label, str(result.n), f"{result.accuracy:.2%}",
                      f"{result.wrong_team_rate:.2%}", f"{result.triage_rate:.2%}")
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
@click.option("--min-support", type=click.IntRange(min=1), default=1, show_default=True,
              help="Fewest reports of a service to draft a rule for it.")
@click.option("--zones/--no-zones", default=True, show_default=True,
              help="Also draft zone rules where location changes the team (reads the layers).")
@click.option("--corrections", is_flag=True,
              help="Also count dispatchers' reassignments stored in VOIRIE_DATABASE_URL.")
@_fail_cleanly
def rules_learn(
    city: str, reports_file: Path, truth_column: str, fmt: str, since: datetime | None,
    until: datetime | None, output: Path, min_support: int, zones: bool, corrections: bool,
) -> None:
    """Draft routing.rules entries: the majority team of each service, and of a service or
    group inside a zone where that differs, with support and confidence, as YAML to review."""
    loaded = load_city(city, check_files=zones)
    table, mapping = _read_source(reports_file, fmt, None)
    _require_column(table, truth_column)
    fixes = None
    if corrections:
        store = _store()
        try:
            fixes = corrections_from(store, loaded)
        finally:
            store.close()
        console.print(f"counting {len(fixes)} reassignments by dispatchers")
    learned = learn(loaded, table, mapping, truth_column, gis=CityGIS(loaded) if zones else None,
                    since=_day(since), until=_day(until), min_support=min_support,
                    corrections=fixes)
    output.write_text(draft_yaml(learned, source=reports_file.name), encoding="utf-8")
    console.print(
        f"wrote {len(learned.rules)} rules to {output} from {learned.n} reports; "
        f"{len(learned.left_out)} services left out (below --min-support or not in city.yaml)",
        highlight=False, soft_wrap=True,
    )


@main.group()
def incidents() -> None:
    """Incidents: the groups of reports of one problem."""


@incidents.command("recluster")
@city_option
@_fail_cleanly
def incidents_recluster(city: str) -> None:
    """Regroup the reports of open incidents with the thresholds now in city.yaml (after
    changing a radius, a window or a group's match), as if they had arrived one by one.

    Incidents staff marked "not duplicates" stay apart; merges and splits are recorded in
    each incident's history.
    """
    store = _store()
    try:
        done = recluster(Pipeline(load_city(city), store))
    finally:
        store.close()
    console.print(
        f"re-clustered {done.reports} reports of {done.incidents_before} open incidents "
        f"into {done.incidents_after}: {done.merged} merged away, {done.opened} opened "
        f"by splits, {done.moved} reports moved",
        highlight=False, soft_wrap=True,
    )
