"""``voirie city init``: a new city's folder drafted from its reports and layers."""

from __future__ import annotations

from pathlib import Path

import click

from voirie.city import slug
from voirie.cli.common import console, fail_cleanly
from voirie.cli.data import CITY_MAPPING, history_options, read_source, read_table
from voirie.ingest.guess import guess_mapping, guess_team_column, mapping_yaml
from voirie.services.city_init import CitySources, describe_crs, init_city


@click.group()
def city() -> None:
    """City folders: city.yaml and its reference layers."""


@city.command("init")
@click.argument("name")
@history_options(
    "The city's past reports: categories, positions and (optionally) teams come from them."
)
@click.option(
    "--streets",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Street centre lines (GeoJSON, GeoPackage, OSM extract...): reports are snapped to them.",
)
@click.option(
    "--zones",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    help="A zone layer (districts, neighbourhoods...); repeat for several. The first one is "
    "the territory. Without any, the territory is drawn around the reports.",
)
@click.option(
    "--team-column",
    help="Column of --reports naming the team that handled each report: teams and routing "
    "rules are learned from it [default: a column named like one (agency_responsible, "
    "owner_department, intervenant, department...), if any].",
)
@click.option(
    "--no-teams",
    is_flag=True,
    help="Draft no teams, even from a column named like a team column: every report goes "
    "to triage until rules are written.",
)
@click.option(
    "--locale",
    default="en",
    show_default=True,
    help="The city's language (fr, en, de...): street-name rules and pages.",
)
@click.option(
    "--timezone", default="UTC", show_default=True, help="IANA time zone, e.g. America/Chicago."
)
@click.option("--crs", "metric_crs", help="Metric CRS [default: the UTM zone of the reports].")
@click.option("--jurisdiction", help="Open311 jurisdiction_id [default: from NAME].")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write [default: NAME as a slug, in the current folder].",
)
@click.option("--force", is_flag=True, help="Replace an existing city.yaml.")
@fail_cleanly
def init_command(
    name: str,
    reports_path: Path,
    fmt: str,
    mapping_file: Path | None,
    encoding: str,
    streets: Path | None,
    zones: tuple[Path, ...],
    team_column: str | None,
    no_teams: bool,
    locale: str,
    timezone: str,
    metric_crs: str | None,
    jurisdiction: str | None,
    out: Path | None,
    force: bool,
) -> None:
    """Draft the city folder of NAME from its reports (and layers), ready for `voirie import`.

    A CSV given without --mapping gets one guessed from its header and values, written
    beside city.yaml (mapping.yaml) for review; `voirie import` reads it from there."""
    guessed: list[str] = []
    if fmt == "csv" and mapping_file is None:
        table = read_table(reports_path, fmt, encoding)
        mapping, guessed = guess_mapping(table, slug(name) or "reports")
    else:
        table, mapping = read_source(reports_path, fmt, mapping_file, encoding)
    if no_teams and team_column:
        raise click.UsageError("--no-teams and --team-column: give one or the other")
    team_guessed = team_column is None and not no_teams
    if team_guessed:
        team_column = guess_team_column(table, mapping)
    sources = CitySources(
        name=name,
        reports=table,
        mapping=mapping,
        streets=streets,
        zones=zones,
        team_column=team_column,
        locale=locale,
        timezone=timezone,
        metric_crs=metric_crs,
        jurisdiction_id=jurisdiction,
        provenance=reports_path.name,
    )
    folder = out or Path(slug(name) or "city")
    draft = init_city(folder, sources, overwrite=force)
    config = draft.city.config
    console.print(f"wrote {folder / 'city.yaml'}", highlight=False, soft_wrap=True)
    if guessed:
        (folder / CITY_MAPPING).write_text(mapping_yaml(mapping), encoding="utf-8")
        mapping_file = folder / CITY_MAPPING
        console.print(
            f"wrote {mapping_file}, guessed from the columns (review it): {'; '.join(guessed)}",
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        f"  {draft.located:,} of {draft.reports:,} reports located; "
        f"metric CRS {describe_crs(config.metric_crs)}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"  {len(config.services)} services in {len(config.groups)} groups, "
        f"{len(config.zones)} zone layers (territory: {config.territory.layer}), "
        f"{'a street layer' if config.streets else 'no street layer'}",
        highlight=False,
        soft_wrap=True,
    )
    routed = f"{draft.rules} routing rules learned from {team_column!r}" if team_column else ""
    if routed and team_guessed:
        routed += " (guessed from its name: --team-column names another, --no-teams none)"
    console.print(
        f"  {len(config.teams)} teams; {routed or 'no team column: every report goes to triage'}"
        + (
            f"; {len(draft.left_to_triage)} services left to triage" if draft.left_to_triage else ""
        ),
        highlight=False,
        soft_wrap=True,
    )
    mapping_hint = f" --mapping {mapping_file}" if mapping_file else ""
    console.print(
        f"next: voirie import {reports_path} --city {folder} --format {fmt}{mapping_hint}",
        highlight=False,
        soft_wrap=True,
    )
