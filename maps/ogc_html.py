"""HTML views of the OGC API documents, for people: French first (English with ``lang=en``
or an ``Accept-Language`` preferring English), a small map of the collection, page or
feature, and the data's credit (the city's open data and OpenStreetMap, ODbL) on each.

A GIS officer who opens ``/ogc`` in a browser walks from the landing page to the
collections and their features. Everything is escaped; the map draws with the vendored
Leaflet under ``/static`` (no remote asset, no background tiles: the city's district
outlines give bearings) from one JSON block holding geometries and ids only, so no text
a citizen wrote reaches the script, and ``ogc_map.js`` inserts every text as text.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any, Literal

import geopandas as gpd
import pandas as pd
import shapely

from voirie.maps.export import TITLES_FR
from voirie.maps.html import outlines as shape_outlines
from voirie.services.pipeline import Pipeline

Lang = Literal["fr", "en"]
LANGUAGES: tuple[Lang, ...] = ("fr", "en")
_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em;max-width:80em;color:#1d1d1d}"
    "table{border-collapse:collapse;font-size:.9em}"
    "td,th{border:1px solid #ccc;padding:.2em .4em;text-align:left;vertical-align:top}"
    "#ogc-map{height:320px;max-width:48em;border:1px solid #ccc;margin:1em 0}"
    "nav.lang{float:right}footer{margin-top:2em;font-size:.85em;color:#444}"
    "dt{font-weight:600}dd{margin:0 0 .4em 1em}"
)
WORDS: dict[Lang, dict[str, str]] = {
    "fr": {
        "links": "Liens",
        "map": "Carte",
        "credit": "Sources",
        "self": "ce document",
        "alternate": "ce document dans l'autre format",
        "collection": "la collection",
        "items": "les objets",
        "next": "page suivante",
        "prev": "page précédente",
        "conformance": "classes de conformité",
        "data": "les collections",
        "service-desc": "la définition de l'API (OpenAPI)",
        "service-doc": "la documentation de l'API",
        "Conformance": "Conformité",
        "Collections": "Collections",
        "features": "objets",
        "queryables": "propriétés filtrables",
        "id": "identifiant",
        "description": "description",
        "storage CRS": "SCR de stockage",
        "extent (CRS84)": "emprise (CRS84)",
        "filters": "filtres",
        "of": "sur",
        "from": "à partir du n°",
        "feature": "objet",
        "map_label": "Carte des objets de cette page",
    },
    "en": {
        "links": "Links",
        "map": "Map",
        "credit": "Sources",
        "self": "this document",
        "alternate": "this document in the other format",
        "collection": "the collection",
        "items": "the features",
        "next": "next page",
        "prev": "previous page",
        "conformance": "conformance classes",
        "data": "the collections",
        "service-desc": "the API definition (OpenAPI)",
        "service-doc": "the API documentation",
        "Conformance": "Conformance",
        "Collections": "Collections",
        "features": "features",
        "queryables": "queryables",
        "id": "id",
        "description": "description",
        "storage CRS": "storage CRS",
        "extent (CRS84)": "extent (CRS84)",
        "filters": "filters",
        "of": "of",
        "from": "from",
        "feature": "feature",
        "map_label": "Map of the features of this page",
    },
}
LANDING_FR = (
    "Incidents de voirie et signalements des habitants, avec les voies et les zones de la "
    "ville, en OGC API Features (GeoJSON, dans plusieurs systèmes de coordonnées), OGC API "
    "Tiles (tuiles vectorielles) et filtres CQL2."
)
OUTLINE_TOLERANCE_M = 20.0
COLLECTION_TITLES_FR = {"incidents": "Incidents", "reports": "Signalements", "streets": "Voies"}
"""French titles of the collections whose title is English (zone layers have their own)."""


@functools.lru_cache(maxsize=8)
def outlines(pipeline: Pipeline) -> dict[str, Any] | None:
    """The city's territory zones, simplified, as the maps' offline background (computed
    once per pipeline)."""
    territory = pipeline.gis.zones[pipeline.city.config.territory.layer].zones
    simplified = territory.set_geometry(territory.geometry.simplify(OUTLINE_TOLERANCE_M))
    return shape_outlines(simplified)


def language(requested: str | None, accept_language: str) -> Lang:
    """``lang`` when given, otherwise English only when ``Accept-Language`` ranks it above
    French; French by default."""
    if requested in LANGUAGES:
        return "en" if requested == "en" else "fr"
    ranked: list[tuple[float, str]] = []
    for part in accept_language.split(","):
        tag, _, quality = part.strip().partition(";q=")
        try:
            weight = float(quality) if quality else 1.0
        except ValueError:
            continue
        ranked.append((weight, tag.strip().lower()[:2]))
    for _, tag in sorted(ranked, key=lambda r: -r[0]):
        if tag in LANGUAGES:
            return "en" if tag == "en" else "fr"
    return "fr"


def word(lang: Lang, key: str) -> str:
    """A word of the pages in ``lang`` (the key itself when it has no translation)."""
    return WORDS[lang].get(key, key)


def collection_title(collection_id: str, title: str, lang: Lang) -> str:
    """A collection's title in the page's language."""
    return COLLECTION_TITLES_FR.get(collection_id, title) if lang == "fr" else title


def _link_text(link: Mapping[str, object], lang: Lang) -> str:
    rel = str(link.get("rel", ""))
    if lang == "fr" and rel in WORDS["fr"]:
        return WORDS["fr"][rel]
    return str(link.get("title") or rel)


def page(
    title: str,
    body: str,
    links: Iterable[Mapping[str, object]] = (),
    *,
    lang: Lang = "fr",
    credit: str = "",
    map_data: Mapping[str, Any] | None = None,
    other_language_url: str | None = None,
) -> str:
    """A whole HTML page: title, an optional map, the body, the document's links (escaped),
    a link to the page in the other language, and the data's credit (HTML, built by
    ``voirie.maps.attribution``) in the footer."""
    items = "".join(
        f'<li><a href="{escape(str(link["href"]))}">{escape(_link_text(link, lang))}'
        f"</a> <small>({escape(str(link.get('type', '')))})</small></li>"
        for link in links
    )
    head = (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style>"
    )
    switch = ""
    if other_language_url is not None:
        other: Lang = "en" if lang == "fr" else "fr"
        label = "English" if other == "en" else "Français"
        switch = (
            f'<nav class="lang" aria-label="{"Language" if lang == "en" else "Langue"}">'
            f'<a href="{escape(other_language_url)}" hreflang="{other}" lang="{other}">'
            f"{label}</a></nav>"
        )
    drawn = ""
    scripts = ""
    if map_data is not None:
        head += '<link rel="stylesheet" href="/static/leaflet.css">'
        data = json.dumps({**map_data, "credit": credit}, ensure_ascii=False)
        safe = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        drawn = (
            f'<div id="ogc-map" role="region" aria-label="{escape(word(lang, "map_label"))}">'
            "</div>"
            f'<script type="application/json" id="ogc-map-data">{safe}</script>'
        )
        scripts = (
            '<script src="/static/leaflet.js"></script><script src="/static/ogc_map.js"></script>'
        )
    footer = f"<footer><p>{escape(word(lang, 'credit'))} : {credit}</p></footer>" if credit else ""
    if lang == "en" and footer:
        footer = footer.replace(" : ", ": ", 1)
    return (
        f"{head}</head><body>{switch}<main><h1>{escape(title)}</h1>{drawn}{body}"
        + (f"<h2>{escape(word(lang, 'links'))}</h2><ul>{items}</ul>" if items else "")
        + f"</main>{footer}{scripts}</body></html>"
    )


def map_data(
    frame: gpd.GeoDataFrame | None,
    id_column: str | None,
    item_url: str | None,
    bbox: tuple[float, float, float, float] | None = None,
    outlines: dict[str, Any] | None = None,
    north_first: bool = False,
) -> dict[str, Any]:
    """What the page's map draws: the features' geometries and ids (no other attribute) in
    WGS84 longitude/latitude, the link to each feature's page (``{id}`` in ``item_url``),
    the collection's extent, and grey outlines for bearings."""
    features: dict[str, Any] = {"type": "FeatureCollection", "features": []}
    if frame is not None and len(frame) and id_column is not None:
        geometry = frame.geometry
        if north_first:
            geometry = gpd.GeoSeries(
                shapely.transform(geometry.to_numpy(), lambda xy: xy[:, ::-1]), crs=geometry.crs
            )
        wgs84 = geometry.to_crs(4326) if geometry.crs is not None else geometry
        shapes = json.loads(gpd.GeoSeries(wgs84.to_numpy(), crs=4326).to_json())["features"]
        for shape, key in zip(shapes, frame[id_column].astype(str), strict=True):
            features["features"].append(
                {"type": "Feature", "id": key, "geometry": shape["geometry"], "properties": {}}
            )
    return {
        "features": features,
        "itemUrl": item_url,
        "bbox": list(bbox) if bbox is not None else None,
        "outlines": outlines,
    }


def definition_list(values: Mapping[str, object], lang: Lang = "fr") -> str:
    """Key/value pairs as an escaped definition list (keys in the page's language)."""
    rows = "".join(
        f"<dt>{escape(_title(str(key), lang))}</dt><dd>{escape(_text(value))}</dd>"
        for key, value in values.items()
    )
    return f"<dl>{rows}</dl>"


def link_list(entries: Iterable[tuple[str, str]]) -> str:
    """(href, text) pairs as an escaped bullet list."""
    rows = "".join(
        f'<li><a href="{escape(href)}">{escape(text)}</a></li>' for href, text in entries
    )
    return f"<ul>{rows}</ul>"


def table(frame: pd.DataFrame, lang: Lang = "fr") -> str:
    """A DataFrame as an escaped HTML table, column titles in the page's language (pandas
    escapes every cell)."""
    titled = frame.rename(columns={c: _title(str(c), lang) for c in frame.columns})
    return str(titled.to_html(index=False, escape=True, na_rep="", border=0))


def _title(name: str, lang: Lang) -> str:
    if lang == "fr":
        if name.startswith("zone_"):
            return f"Zone {name.removeprefix('zone_')}"
        return TITLES_FR.get(name) or WORDS["fr"].get(name, name)
    return name


def _text(value: object) -> str:
    """A cell as text: empty for a missing value (None, NaN, NaT)."""
    if value is None or (isinstance(value, float | pd.Timestamp | type(pd.NaT)) and pd.isna(value)):
        return ""
    return str(value)
