"""The Jinja2 environment of the HTML pages (``maps/templates``), autoescaping everything.

Pages carry their data as one JSON block (``{{ data|tojson }}`` escapes ``<``, ``>``, ``&``
and quotes, so no text in it can close the script element) and draw it with the vendored
scripts under ``/static``; the scripts insert every text with ``textContent``, never as
HTML. Nothing a citizen wrote is ever interpreted as markup.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import geopandas as gpd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


@cache
def environment() -> Environment:
    """The shared environment (built once: templates are compiled on first use)."""
    return Environment(
        loader=PackageLoader("voirie.maps", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, **context: Any) -> str:
    """Render one page template with its context."""
    return environment().get_template(template).render(**context)


def outlines(polygons: gpd.GeoDataFrame | None) -> dict[str, Any] | None:
    """Polygons (e.g. districts) as WGS84 GeoJSON for grey outlines that give bearings
    without background tiles: geometry only, so no attribute text reaches a page."""
    if polygons is None or not len(polygons):
        return None
    shapes: dict[str, Any] = json.loads(polygons.to_crs(4326).geometry.to_json())
    return shapes
