"""Plain HTML views of the OGC API Features documents: escaped, no script, no remote asset.

A GIS officer who opens ``/ogc`` in a browser can walk from the landing page to the
collections and their features; everything a citizen wrote is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

import pandas as pd

_STYLE = (
    "body{font-family:sans-serif;margin:1.5em;max-width:80em}"
    "table{border-collapse:collapse;font-size:.9em}"
    "td,th{border:1px solid #ccc;padding:.2em .4em;text-align:left;vertical-align:top}"
)


def page(title: str, body: str, links: Iterable[Mapping[str, object]] = ()) -> str:
    """A whole HTML page with a list of the document's links (escaped)."""
    items = "".join(
        f'<li><a href="{escape(str(link["href"]))}">{escape(str(link.get("title") or link["rel"]))}'
        f"</a> <small>({escape(str(link.get('type', '')))})</small></li>"
        for link in links
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>{body}"
        + (f"<h2>Links</h2><ul>{items}</ul>" if items else "")
        + "</body></html>"
    )


def definition_list(values: Mapping[str, object]) -> str:
    """Key/value pairs as an escaped definition list."""
    rows = "".join(
        f"<dt>{escape(str(key))}</dt><dd>{escape(str(value))}</dd>" for key, value in values.items()
    )
    return f"<dl>{rows}</dl>"


def link_list(entries: Iterable[tuple[str, str]]) -> str:
    """(href, text) pairs as an escaped bullet list."""
    rows = "".join(
        f'<li><a href="{escape(href)}">{escape(text)}</a></li>' for href, text in entries
    )
    return f"<ul>{rows}</ul>"


def table(frame: pd.DataFrame) -> str:
    """A DataFrame as an escaped HTML table (pandas escapes every cell)."""
    return str(frame.to_html(index=False, escape=True, na_rep="", border=0))
