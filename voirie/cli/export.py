"""``voirie export``: a layer out to a file (a module of its own, so that ``voirie import``
does not load the writers of every file format)."""

from __future__ import annotations

from pathlib import Path

import click

from voirie.city import load_city
from voirie.cli.common import city_option, configured_store, console, fail_cleanly
from voirie.maps.export import (
    FORMATS,
    ID_COLUMNS,
    Format,
    check_crs,
    download_selection,
    layer_chunks,
    write_layer,
)
from voirie.services.pipeline import Pipeline
from voirie.store.selection import Layer


@click.command("export")
@click.argument("layer", type=click.Choice(["reports", "incidents"]))
@city_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    required=True,
    help="csv (with x, y and WKT), geojson, gpkg (GeoPackage with French column "
    "titles) or zip (zipped Shapefile).",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--crs", default=None, help="Output CRS, e.g. EPSG:2154 [default: EPSG:4326]")
@click.option("--status", default=None, help="Only these incident statuses (comma-separated).")
@click.option("--service", default=None, help="Only these service codes (comma-separated).")
@click.option("--team", default=None, help="Only these teams (comma-separated codes).")
@click.option("--zone", default=None, help="Only one zone, as layer:code (arrondissement:75111).")
@click.option("--bbox", default=None, help="Only inside minlon,minlat,maxlon,maxlat (WGS84).")
@click.option(
    "--start",
    default=None,
    help="Reports requested (incidents active) on or after this ISO 8601 date.",
)
@click.option("--end", default=None, help="... and on or before this ISO 8601 date.")
@fail_cleanly
def export_command(
    layer: Layer,
    city: str,
    fmt: Format,
    output: Path,
    crs: str | None,
    status: str | None,
    service: str | None,
    team: str | None,
    zone: str | None,
    bbox: str | None,
    start: str | None,
    end: str | None,
) -> None:
    """Write the report or incident layer (public fields only) to a file, chunk by chunk."""
    selection = download_selection(
        status=status, service=service, team=team, zone=zone, bbox=bbox, start=start, end=end
    )
    store = configured_store()
    try:
        pipeline = Pipeline(load_city(city), store)
        written = write_layer(
            layer_chunks(pipeline, layer, selection),
            output,
            fmt,
            id_column=ID_COLUMNS[layer],
            crs=check_crs(crs),
            layer=layer,
        )
        console.print(f"wrote {written} {layer} to {output}")
    finally:
        store.close()
