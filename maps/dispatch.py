"""The technicians' dispatch map: one coloured layer per team, drawn fully offline.

Only Leaflet is loaded, from the vendored copy served under ``static_url`` (see
:mod:`voirie.maps.static`); folium's default CDN links (jQuery, Bootstrap, Font Awesome...)
are dropped. Every text coming from data is HTML-escaped (braces too, see :func:`_escape`)
and reaches JavaScript only as a JSON string, never inside a JS template literal.
"""

from __future__ import annotations

import colorsys
import html
import math
import zlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import folium
import geopandas as gpd
import pandas as pd
from branca.element import Element, Figure, MacroElement
from folium.template import Template

from voirie.model import Status

MARKER_CLASS = "voirie-incident"
"""CSS class of every incident marker's SVG path (a stable hook for tests and styling)."""

_EMPTY_CENTER = (0.0, 0.0)  # shown only when there is no incident: no city is assumed
_MISSING = "—"

_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "title": "Carte de répartition des incidents",
        "legend": "Équipes",
        "incident": "Incident",
        "service": "Type d'anomalie",
        "team": "Équipe",
        "status": "Statut",
        "reports": "Signalements",
        "first": "Premier signalement",
        "last": "Dernier signalement",
        "street": "Voie",
    },
    "en": {
        "title": "Incident dispatch map",
        "legend": "Teams",
        "incident": "Incident",
        "service": "Issue type",
        "team": "Team",
        "status": "Status",
        "reports": "Reports",
        "first": "First reported",
        "last": "Last reported",
        "street": "Street",
    },
}


_STATUS_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        Status.NEW: "Nouveau",
        Status.ACKNOWLEDGED: "Pris en compte",
        Status.SCHEDULED: "Planifié",
        Status.IN_PROGRESS: "En cours",
        Status.RESOLVED: "Résolu",
        Status.CLOSED: "Clos",
        Status.DUPLICATE: "Doublon",
        Status.REJECTED: "Rejeté",
    },
    "en": {
        Status.NEW: "New",
        Status.ACKNOWLEDGED: "Acknowledged",
        Status.SCHEDULED: "Scheduled",
        Status.IN_PROGRESS: "In progress",
        Status.RESOLVED: "Resolved",
        Status.CLOSED: "Closed",
        Status.DUPLICATE: "Duplicate",
        Status.REJECTED: "Rejected",
    },
}


def team_colour(code: str) -> str:
    """Colour of a team's markers: stable across runs and processes (CRC32, not ``hash``).

    A city has dozens of teams (47 in Paris), more than any fixed palette: the hue takes
    any of 360 degrees and the lightness one of three levels, so collisions stay rare.
    """
    digest = zlib.crc32(code.encode("utf-8"))
    hue = (digest % 360) / 360
    lightness = (0.36, 0.48, 0.60)[(digest >> 9) % 3]
    red, green, blue = colorsys.hls_to_rgb(hue, lightness, 0.75)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


def render_dispatch_map(
    incidents: gpd.GeoDataFrame,
    teams: Mapping[str, str],
    *,
    static_url: str = "/static",
    lang: str = "fr",
    background: gpd.GeoDataFrame | None = None,
) -> str:
    """Render the dispatch map of ``incidents`` as a complete, self-contained HTML page.

    Technicians see each incident as a circle coloured by its team, one toggleable layer
    per team, a legend with each team's count, and a popup with the incident's facts in
    ``lang`` ("fr" or "en"). ``teams`` maps team codes to display names (unknown codes
    are shown as is). The page requests nothing but Leaflet from ``static_url``, so it
    works on a machine without internet; it draws no background tiles, but the outlines
    of ``background`` polygons (e.g. the city's districts), when given, so the map reads.
    """
    if lang not in _LABELS:
        raise ValueError(f"unsupported language {lang!r}; expected one of {sorted(_LABELS)}")
    labels, statuses = _LABELS[lang], _STATUS_LABELS[lang]
    points = _located(incidents)
    fmap = _base_map(static_url.rstrip("/"))
    figure = Figure(title=labels["title"])
    # No favicon request: the page asks the server for nothing but Leaflet.
    figure.header.add_child(Element('<link rel="icon" href="data:,">'), name="favicon")
    figure.add_child(fmap)
    if background is not None and len(background):
        _outlines(background).add_to(fmap)

    counts = points["team"].astype(str).value_counts(sort=False).to_dict()
    legend: list[tuple[str, str, int]] = []
    for code in sorted(counts, key=lambda c: (teams.get(c, c), c)):
        name, colour = teams.get(code, code), team_colour(code)
        layer = folium.FeatureGroup(name=_layer_label(name, colour, counts[code]))
        for row in points[points["team"].astype(str) == code].to_dict("records"):
            _add_marker(layer, row, name, colour, labels=labels, statuses=statuses)
        layer.add_to(fmap)
        legend.append((name, colour, counts[code]))

    folium.LayerControl().add_to(fmap)
    fmap.add_child(_Legend(labels["legend"], legend))
    if len(points):
        min_x, min_y, max_x, max_y = points.total_bounds
        fmap.fit_bounds(
            [[min_y, min_x], [max_y, max_x]],
            padding_top_left=(30, 30),
            padding_bottom_right=(240, 30),  # keep the east-most markers clear of the legend
            max_zoom=17,
        )
    return str(figure.render())


def _outlines(polygons: gpd.GeoDataFrame) -> folium.GeoJson:
    """Grey, non-interactive outlines; geometry only, so no attribute text reaches the page."""
    shapes = gpd.GeoDataFrame(geometry=polygons.to_crs(4326).geometry.to_numpy(), crs=4326)
    return folium.GeoJson(
        shapes.to_json(),
        name="background",
        control=False,
        interactive=False,
        style_function=lambda _: {"color": "#777777", "weight": 1, "fill": False},
    )


def _located(incidents: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Incidents with a usable point, in WGS84 (the only CRS Leaflet takes)."""
    if incidents.crs is not None and incidents.crs.to_epsg() != 4326:
        incidents = incidents.to_crs(4326)
    geometry = incidents.geometry
    return incidents[geometry.notna() & ~geometry.is_empty]


def _base_map(static_url: str) -> folium.Map:
    """A tile-less map whose only external resources are the vendored Leaflet files.

    It opens on a neutral world view; :func:`render_dispatch_map` then fits the view to
    the incidents, if any.
    """
    fmap = folium.Map(
        location=_EMPTY_CENTER,
        zoom_start=2,
        tiles=None,
        max_zoom=19,
        control_scale=True,
        prefer_canvas=False,  # SVG paths carry MARKER_CLASS; canvas would not
    )
    # Instance attributes, so folium's class-level CDN lists stay untouched.
    fmap.default_js = [("leaflet", f"{static_url}/leaflet.js")]
    fmap.default_css = [("leaflet_css", f"{static_url}/leaflet.css")]
    return fmap


def _add_marker(
    layer: folium.FeatureGroup,
    row: Mapping[Any, Any],
    team_name: str,
    colour: str,
    *,
    labels: Mapping[str, str],
    statuses: Mapping[str, str],
) -> None:
    """Add one incident's circle and its popup to its team's layer."""
    status = _text(row.get("status"))
    facts = [
        (labels["incident"], f"n° {_text(row.get('incident_id'))}"),
        (labels["service"], f"{_text(row.get('service_name'))} ({_text(row.get('service_code'))})"),
        (labels["street"], _text(row.get("street_name"))),
        (labels["team"], team_name),
        (labels["status"], statuses.get(status, status)),
        (labels["reports"], _text(row.get("report_count"))),
        (labels["first"], _when(row.get("first_reported_at"))),
        (labels["last"], _when(row.get("last_reported_at"))),
    ]
    cells = "".join(
        f'<tr><th scope="row">{_escape(label)}</th><td>{_escape(value)}</td></tr>'
        for label, value in facts
    )
    point = row["geometry"]
    marker = folium.CircleMarker(
        location=(point.y, point.x),
        radius=7,
        color=colour,
        weight=2,
        fill=True,
        fill_color=colour,
        fill_opacity=0.7,
        class_name=MARKER_CLASS,
    )
    _Popup(f'<table class="voirie-popup">{cells}</table>').add_to(marker)
    marker.add_to(layer)


def _layer_label(name: str, colour: str, count: int) -> str:
    """Layer-control entry; Leaflet inserts it as HTML, hence the escaping."""
    return f'<span style="color:{colour}">&#9679;</span> {_escape(name)} ({count})'


def _escape(text: str) -> str:
    """HTML-escape data, braces included.

    branca re-reads every rendered element as a Jinja template, so a ``{{ ... }}`` left
    in data would be evaluated on the server (template injection); ``&#123;`` is not.
    """
    return html.escape(text).replace("{", "&#123;").replace("}", "&#125;")


def _is_missing(value: object) -> bool:
    """Whether a cell holds no value (None, NaN, NaT or pandas' NA)."""
    if isinstance(value, float):
        return math.isnan(value)
    return value is None or value is pd.NaT or value is pd.NA


def _text(value: object) -> str:
    """Plain display text of a data value; missing values become a dash."""
    if _is_missing(value):
        return _MISSING
    return str(value)


def _when(value: object) -> str:
    """A timestamp (datetime or ISO string) as ``YYYY-MM-DD HH:MM±HH:MM``."""
    when = value
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(when, datetime) and not _is_missing(when):
        return when.isoformat(sep=" ", timespec="minutes")
    return _text(when)


class _Popup(MacroElement):
    """Popup bound from a JSON string: no jQuery, no JS template literal to break out of."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            {{ this._parent.get_name() }}.bindPopup({{ this.content|tojson }}, {maxWidth: 360});
        {% endmacro %}
        """
    )

    def __init__(self, content: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._name = "VoiriePopup"
        self.content = content


class _Legend(MacroElement):
    """Fixed legend box listing each team with its colour and count; carries the page CSS."""

    _template = Template(
        """
        {% macro header(this, kwargs) %}
            <style>
                .voirie-legend { position: fixed; bottom: 28px; right: 10px; z-index: 1000;
                    background: #fff; padding: 8px 12px; border-radius: 4px;
                    box-shadow: 0 1px 5px rgba(0, 0, 0, .4); font: 13px/1.5 sans-serif; }
                .voirie-legend ul { list-style: none; margin: 4px 0 0; padding: 0; }
                .voirie-legend .swatch { display: inline-block; width: 12px; height: 12px;
                    border-radius: 50%; margin-right: 6px; vertical-align: middle; }
                .voirie-popup th { text-align: left; padding-right: 8px; font-weight: 600; }
            </style>
        {% endmacro %}
        {% macro html(this, kwargs) %}{{ this.markup }}{% endmacro %}
        """
    )

    def __init__(self, title: str, teams: list[tuple[str, str, int]]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._name = "VoirieLegend"
        items = "".join(
            f'<li><span class="swatch" style="background:{colour}"></span>'
            f"{_escape(name)} ({count})</li>"
            for name, colour, count in teams
        )
        self.markup = (
            f'<div class="voirie-legend"><strong>{_escape(title)}</strong><ul>{items}</ul></div>'
        )
