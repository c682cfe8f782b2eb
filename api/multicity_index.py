"""What a multi-city server answers at its root: the list of its cities, and its 404.

The list is a page (French, English with ``?lang=en``) for a person, or JSON for a
program (``?f=json`` or ``Accept: application/json``), with each city's name, its path
prefix and the ``jurisdiction_id`` its Open311 clients send.
"""

from __future__ import annotations

from html import escape
from http import HTTPStatus
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Scope

from voirie.api.problems import PROBLEM_MEDIA_TYPE, Problem
from voirie.cityset import CitySite

TEXT = {
    "fr": {
        "title": "voirie — villes servies",
        "intro": "Ce serveur publie les signalements de plusieurs villes :",
        "open311": "Open311 GeoReport v2 : <code>/open311/v2/</code>, avec le "
        "<code>jurisdiction_id</code> de la ville.",
        "maps": "carte des signalements",
        "other": "English",
    },
    "en": {
        "title": "voirie — cities served",
        "intro": "This server publishes the street reports of several cities:",
        "open311": "Open311 GeoReport v2: <code>/open311/v2/</code>, with the city's "
        "<code>jurisdiction_id</code>.",
        "maps": "map of reports",
        "other": "Français",
    },
}


def _cities(sites: list[CitySite], root: str) -> list[dict[str, str]]:
    return [
        {
            "name": site.city.config.name,
            "path": f"{root}/{site.slug}/",
            "jurisdiction_id": site.city.jurisdiction_id,
        }
        for site in sites
    ]


def index_page(scope: Scope, sites: list[CitySite]) -> Response:
    """The cities served, as a page or as JSON (see the module's docstring)."""
    query = parse_qs(scope.get("query_string", b"").decode("utf-8", "replace"))
    root = str(scope.get("root_path", "")).rstrip("/")
    cities = _cities(sites, root)
    accept = Headers(scope=scope).get("accept", "")
    if query.get("f") == ["json"] or ("application/json" in accept and "text/html" not in accept):
        return JSONResponse({"cities": cities})
    lang = "en" if query.get("lang") == ["en"] else "fr"
    text = TEXT[lang]
    items = "".join(
        f'<li><a href="{escape(c["path"])}">{escape(c["name"])}</a> '
        f"(<code>{escape(c['jurisdiction_id'])}</code>) — "
        f'<a href="{escape(c["path"])}maps/nearby{"?lang=en" if lang == "en" else ""}">'
        f"{text['maps']}</a></li>"
        for c in cities
    )
    other = f"{root}/" if lang == "en" else f"{root}/?lang=en"
    page = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{text['title']}</title></head><body><h1>{text['title']}</h1>"
        f"<p>{text['intro']}</p><ul>{items}</ul><p>{text['open311']}</p>"
        f'<p><a href="{escape(other)}">{text["other"]}</a></p></body></html>'
    )
    return HTMLResponse(page)


def problem(status: int, detail: str) -> Response:
    """An error of the root as the city apps render theirs (RFC 9457 problem details)."""
    body = Problem(title=HTTPStatus(status).phrase, status=status, detail=detail)
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM_MEDIA_TYPE
    )
