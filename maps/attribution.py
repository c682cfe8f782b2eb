"""Who to credit on every published map, tile set and data page: the city's open data and
OpenStreetMap, both under the ODbL (the city folder's ``LICENCE.md`` says why).

One wording, used by the OGC pages' maps, the TileJSON documents and the OGC pages'
footers, in French first (English with ``lang="en"``).
"""

from __future__ import annotations

from html import escape

from voirie.city import City

ODBL_URL = "https://opendatacommons.org/licenses/odbl/1-0/"
OSM_URL = "https://www.openstreetmap.org/copyright"


def text(city: City, lang: str = "fr") -> str:
    """The credit as plain text (TileJSON ``attribution``, map metadata)."""
    if lang == "en":
        return f"© {city.config.name} open data, © OpenStreetMap contributors — ODbL 1.0"
    return f"© données ouvertes {city.config.name}, © contributeurs OpenStreetMap — ODbL 1.0"


def html(city: City, lang: str = "fr") -> str:
    """The credit as HTML with links to the licence and to OpenStreetMap's copyright page."""
    name = escape(city.config.name)
    osm = "OpenStreetMap contributors" if lang == "en" else "contributeurs OpenStreetMap"
    data = f"{name} open data" if lang == "en" else f"données ouvertes {name}"
    return f'© {data}, © <a href="{OSM_URL}">{osm}</a> — <a href="{ODBL_URL}">ODbL 1.0</a>'
