"""``voirie import`` (report files through the whole pipeline) and the reading of report
files that the commands learning from past reports share.

The pipeline's modules are imported when a command runs, not with this module: ``voirie
import`` first opens its store and starts its migrations on a thread
(``store_upgraded_while``), so that the server creates a new database's schema while the
client imports them and loads the city's GIS."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
)
from rich.table import Column, Table
from rich.text import Text

from voirie.cli.common import city_option, console, fail_cleanly, store_upgraded_while
from voirie.cli.stopping import StopSignals

if TYPE_CHECKING:
    from voirie.city import City
    from voirie.gis.enrich import CityGIS
    from voirie.ingest.encoding import TextEncoding
    from voirie.ingest.mapping import ColumnMapping
    from voirie.ingest.sources import RawTable
    from voirie.services.imports import ImportSummary
    from voirie.services.pipeline import Pipeline

IMPORT_FORMATS = ("dansmarue", "csv", "geojson", "open311-json")
CSV_FORMATS = ("dansmarue", "csv")
AUTO = "auto"
"""``--encoding``'s default: ``voirie.ingest.encoding.AUTO``, written here again because this
module imports none of the pipeline's (``voirie import`` starts its migrations first)."""
CITY_MAPPING = "mapping.yaml"
"""A city folder's own mapping of its reports' CSV (drafted by ``voirie city init``), which
``voirie import --format csv`` reads when given no ``--mapping``."""
F = TypeVar("F", bound=Callable[..., Any])


def _checked_encoding(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``--encoding`` as given, once Python is known to have a text codec of that name."""
    from voirie.ingest.encoding import named

    if value != AUTO:
        try:
            named(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None
    return value


encoding_option = click.option(
    "--encoding",
    default=AUTO,
    show_default=True,
    callback=_checked_encoding,
    help="Text encoding of a CSV file (utf-8, cp1252, latin-1, utf-16...); auto: told from "
    "its first bytes (a byte-order mark, UTF-8, else Windows-1252). JSON is always UTF-8.",
)


def history_options(reports_help: str) -> Callable[[F], F]:
    """The options naming a city's past reports (``--reports``, ``--format``,
    ``--mapping``, read by ``read_source``), shared by the commands that learn from them."""

    def decorate(func: F) -> F:
        options = (
            click.option(
                "--reports",
                "reports_path",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                required=True,
                help=reports_help,
            ),
            click.option(
                "--format",
                "fmt",
                type=click.Choice(IMPORT_FORMATS),
                default="open311-json",
                show_default=True,
                help="Format of --reports, as for `voirie import`.",
            ),
            click.option(
                "--mapping",
                "mapping_file",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="YAML column mapping of --reports (for --format csv, as for `voirie import`).",
            ),
            encoding_option,
        )
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def read_source(
    path: Path, fmt: str, mapping_file: Path | None, encoding: str = AUTO
) -> tuple[RawTable, ColumnMapping]:
    """A source file as a raw table, with the column mapping of its format."""
    mapping = _mapping(fmt, mapping_file)
    return read_table(path, fmt, encoding), mapping


def read_table(path: Path, fmt: str, encoding: str = AUTO) -> RawTable:
    """A source file as a raw table."""
    from voirie.ingest.sources import read_csv, read_geojson, read_open311_json

    if fmt in CSV_FORMATS:
        return read_csv(path, _csv_encoding(path, encoding))
    _no_encoding(fmt, encoding)
    return read_open311_json(path) if fmt == "open311-json" else read_geojson(path)


def stream_source(
    path: Path, fmt: str, mapping_file: Path | None, chunk_rows: int, encoding: str = AUTO
) -> tuple[Iterator[RawTable], int | None, ColumnMapping]:
    """``read_source`` in chunks of ``chunk_rows`` rows, with the number of rows to expect
    when it is known before reading them (a CSV's counted lines)."""
    from voirie.ingest.sources import (
        count_lines,
        stream_csv,
        stream_geojson,
        stream_open311_json,
    )

    mapping = _mapping(fmt, mapping_file)
    if fmt in CSV_FORMATS:
        text = _csv_encoding(path, encoding)
        return stream_csv(path, chunk_rows, text), count_lines(path), mapping
    _no_encoding(fmt, encoding)
    read = stream_open311_json if fmt == "open311-json" else stream_geojson
    return read(path, chunk_rows), None, mapping


def _csv_encoding(path: Path, requested: str) -> TextEncoding:
    """The encoding a CSV is read in, said on the console when it is not UTF-8 (a
    spreadsheet's export), so that a person can tell a wrong guess."""
    from voirie.ingest.sources import csv_encoding

    encoding = csv_encoding(path, requested)
    if encoding.label != "UTF-8":
        console.print(
            f"{path.name}: read as {encoding.label} text ({encoding.reason})", highlight=False
        )
    return encoding


def _no_encoding(fmt: str, encoding: str) -> None:
    if encoding != AUTO:
        raise click.UsageError(
            f"--encoding applies to CSV files; --format {fmt} is JSON, always UTF-8 (RFC 8259)"
        )


def _mapping(fmt: str, mapping_file: Path | None) -> ColumnMapping:
    from voirie.ingest.mapping import DANSMARUE, OPEN311, load_mapping

    if fmt == "dansmarue":
        return DANSMARUE
    if fmt == "open311-json":
        return OPEN311
    if mapping_file is None and fmt == "csv":
        raise click.UsageError(
            "--format csv needs --mapping FILE (which column is which field), "
            f"or a {CITY_MAPPING} in the city folder"
        )
    if mapping_file:
        return load_mapping(mapping_file)
    # GeoJSON features carry Open311 properties; the point comes from the geometry, which
    # read_geojson puts in "lon"/"lat" (Open311 itself calls the longitude "long").
    return OPEN311.model_copy(update={"lon": "lon", "lat": "lat"})


class _Pace(ProgressColumn):
    """Rows per second of a task and the time it has left, kept on one short line."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if not speed and task.elapsed:  # too few updates for rich's moving estimate
            speed = task.completed / task.elapsed
        left = task.time_remaining
        words = f"{speed:,.0f} rows/s" if speed else "- rows/s"
        if left is not None and not task.finished:
            words += f", {int(left) // 60}:{int(left) % 60:02d} left"
        return Text(words, style="progress.data.speed", no_wrap=True)


class _Bar:
    """``voirie import``'s progress: one line per pass (prepare, then store), each with
    its rows/s and the time left."""

    def __init__(self, bar: Progress, name: str, expected: int | None) -> None:
        self.bar = bar
        self.name = name
        self.prepare: TaskID = bar.add_task(f"importing {name}: read", total=expected)
        self.store: TaskID | None = None

    def prepared(self, rows: int) -> None:
        self.bar.advance(self.prepare, rows)

    def storing(self, total: int) -> None:
        done = self.bar.tasks[self.prepare].completed
        self.bar.update(self.prepare, total=done, completed=done)
        self.store = self.bar.add_task(f"importing {self.name}: store", total=total)

    def stored(self, rows: int) -> None:
        if self.store is not None:
            self.bar.advance(self.store, rows)


def run_import(
    pipeline: Pipeline,
    path: Path,
    fmt: str,
    mapping_file: Path | None,
    quarantine: Path,
    chunk_rows: int | None = None,
    encoding: str = AUTO,
) -> ImportSummary:
    """Import one file, streamed in chunks of ``chunk_rows`` rows (the importer's
    default), with a progress bar; write the quarantined rows next to the summary."""
    from voirie.services.imports import DEFAULT_CHUNK_ROWS

    chunk_rows = chunk_rows or DEFAULT_CHUNK_ROWS
    chunks, expected, mapping = stream_source(path, fmt, mapping_file, chunk_rows, encoding)
    columns = (
        TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis")),
        BarColumn(bar_width=None),
        MofNCompleteColumn(),
        _Pace(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        summary = pipeline.imports.import_chunks(
            chunks, mapping, progress=_Bar(bar, path.name, expected), quarantine_file=quarantine
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
    if summary.new_categories:
        new = sum(summary.new_categories.values())
        table.add_row("  of a category not in city.yaml", str(new))
    table.add_row("already imported (skipped)", str(summary.already_imported))
    table.add_row("quarantined", str(summary.quarantined))
    for reason, count in summary.reasons().items():
        table.add_row(f"  {reason}", str(count))
    console.print(table)
    if summary.quarantined:
        console.print(f"quarantined rows and their reasons: {quarantine}")
    if any("not valid UTF-8 text" in str(reason) for reason in summary.reasons().index):
        console.print(
            "some rows hold bytes that are not UTF-8: if the file is in another encoding, "
            "import it again naming it (e.g. --encoding cp1252)",
            highlight=False,
        )
    if summary.new_categories:
        names = summary.category_names
        shown = ", ".join(
            f"{c} ({n})" if names.get(c, c) == c else f"{c} '{names[c]}' ({n})"
            for c, n in summary.new_categories.most_common(5)
        )
        more = len(summary.new_categories) - 5
        console.print(
            f"categories not in city.yaml, routed to triage: {shown}"
            + (f" and {more} more" if more > 0 else "")
            + "; add them to the city's services to route them (voirie export reports lists "
            "every report's service_code)",
            highlight=False,
            soft_wrap=True,
        )
    if summary.read and not summary.imported and summary.already_imported:
        console.print("nothing new: every row was already imported")


def _city_and_gis(city: str) -> tuple[City, CityGIS]:
    """The city and its GIS, with the pipeline's modules (all imported here, while the
    store is being upgraded)."""
    import voirie.services.pipeline  # noqa: F401  (the rest of the import's modules)
    from voirie.city import load_city
    from voirie.gis.enrich import CityGIS

    loaded = load_city(city)
    return loaded, CityGIS(loaded)


def _all_quarantined(summary: ImportSummary) -> bool:
    """Every row was quarantined: the import failed (a file of no rows did not)."""
    return summary.quarantined > 0 and not summary.imported and not summary.already_imported


@click.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@city_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(IMPORT_FORMATS),
    required=True,
    help="dansmarue: Paris DansMaRue CSV export; csv: any CSV, with --mapping; "
    "geojson: Point features; open311-json: array of GeoReport v2 requests.",
)
@click.option(
    "--mapping",
    "mapping_file",
    type=click.Path(exists=True, path_type=Path),
    help="YAML file naming the source column of each report field.",
)
@click.option(
    "--quarantine",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write rejected rows with their reason "
    "[default: PATH's name + .quarantine.csv in the current folder]",
)
@encoding_option
@fail_cleanly
def import_command(
    path: Path,
    city: str,
    fmt: str,
    mapping_file: Path | None,
    quarantine: Path | None,
    encoding: str,
) -> None:
    """Import reports from PATH through the whole pipeline (idempotent on the source's ids)."""
    store, (loaded, gis) = store_upgraded_while(lambda: _city_and_gis(city))
    from voirie.services.pipeline import Pipeline

    try:
        # Built once the store is upgraded: it reads the store (public points).
        pipeline = Pipeline(loaded, store, gis)
    except BaseException:
        store.close()
        raise
    if fmt == "csv" and mapping_file is None and (loaded.folder / CITY_MAPPING).is_file():
        mapping_file = loaded.folder / CITY_MAPPING
        console.print(f"mapping: {mapping_file}", highlight=False, soft_wrap=True)
    stop = StopSignals()
    summary: ImportSummary | None = None
    try:
        target = quarantine or Path(path.name.removesuffix(".gz") + ".quarantine.csv")
        with stop:
            summary = run_import(pipeline, path, fmt, mapping_file, target, encoding=encoding)
    finally:
        store.close()
    if summary is None:
        stop.die(
            "the batches stored before it are kept; "
            "the same import run again adds the rest (already imported rows are skipped)"
        )
    if _all_quarantined(summary):
        console.print(
            f"[bold red]error:[/] nothing was imported: all {summary.read} rows were quarantined",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
