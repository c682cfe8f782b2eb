"""The ``voirie`` command. Each command parses its arguments and calls one function."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from voirie.city import load_city
from voirie.errors import CityConfigError, VoirieError
from voirie.gis.check import LayerReport, check_city_layers
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE, OPEN311, ColumnMapping, load_mapping
from voirie.ingest.sources import RawTable, read_csv, read_geojson, read_open311_json
from voirie.maps.export import FORMATS, write_layer
from voirie.pipeline import ImportSummary, Pipeline
from voirie.routing.evaluate import Replay, draft_yaml, learn, replay
from voirie.routing.table import unreachable_rules
from voirie.settings import CitySettings, ServerSettings, StoreSettings
from voirie.store import Store, open_store

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
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--crs", default=None, help="Output CRS, e.g. EPSG:2154 [default: EPSG:4326]")
@_fail_cleanly
def export_command(layer: str, city: str, fmt: str, output: Path, crs: str | None) -> None:
    """Write the report or incident layer (public fields only) to a file."""
    store = _store()
    try:
        pipeline = Pipeline(load_city(city), store)
        frame = pipeline.report_layer() if layer == "reports" else pipeline.incident_layer()
        write_layer(frame, output, fmt, crs=crs, layer=layer)  # type: ignore[arg-type]
        console.print(f"wrote {len(frame)} {layer} to {output}")
    finally:
        store.close()


def _serve(city: str, host: str, port: int) -> None:
    import uvicorn

    from voirie.api.app import create_app

    app = create_app(StoreSettings(), CitySettings(city=city))
    base = f"http://{host}:{port}"
    console.print(
        f"[bold]voirie is serving {city}[/]\n"
        f"  dispatch map        {base}/maps/dispatch\n"
        f"  incidents (GeoJSON) {base}/exports/incidents.geojson\n"
        f"  reports (GeoPackage) {base}/exports/reports.gpkg\n"
        f"  API documentation   {base}/docs\n"
        f"  health              {base}/healthz"
    )
    uvicorn.run(app, host=host, port=port, log_level="info")


@main.command("serve")
@city_option
@click.option("--host", default=ServerSettings().host, show_default=True)
@click.option("--port", default=ServerSettings().port, show_default=True, type=int)
@_fail_cleanly
def serve_command(city: str, host: str, port: int) -> None:
    """Serve the maps, downloads and APIs."""
    _serve(city, host, port)


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
    by_service = sum(1 for r in routes if r.service)
    click.echo(
        f"ok: {len(routes)} rules ({by_service} service, {len(routes) - by_service} group), "
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
@_fail_cleanly
def rules_test(
    city_dir: Path, reports_file: Path, truth_column: str, fmt: str,
    since: datetime | None, until: datetime | None,
) -> None:
    """Route past reports with CITY_DIR's table and compare with where they really went."""
    city = load_city(city_dir)
    table, mapping = _read_source(reports_file, fmt, None)
    _require_column(table, truth_column)
    result = replay(city, CityGIS(city), table, mapping, truth_column,
                    since=_day(since), until=_day(until))
    _print_replay(result)


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
@click.option("--min-support", type=click.IntRange(min=1), default=5, show_default=True,
              help="Fewest reports of a service to draft a rule for it.")
@_fail_cleanly
def rules_learn(
    city: str, reports_file: Path, truth_column: str, fmt: str, since: datetime | None,
    until: datetime | None, output: Path, min_support: int,
) -> None:
    """Draft routing.rules entries: the majority team of each service, as YAML to review."""
    loaded = load_city(city, check_files=False)
    table, mapping = _read_source(reports_file, fmt, None)
    _require_column(table, truth_column)
    learned = learn(loaded, table, mapping, truth_column, since=_day(since),
                    until=_day(until), min_support=min_support)
    output.write_text(draft_yaml(learned, source=reports_file.name), encoding="utf-8")
    console.print(
        f"wrote {len(learned.rules)} rules to {output} from {learned.n} reports; "
        f"{len(learned.left_out)} services left out (below --min-support or not in city.yaml)",
        highlight=False, soft_wrap=True,
    )
