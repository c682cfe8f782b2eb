"""The round sheet page (``/staff/tournee``) and its PDF: labels, the route map as SVG.

The map is drawn on the server as inline SVG in the city's metric CRS (the zones'
outlines in grey, the route as a line, each stop numbered), so that the page, its print
stylesheet and the PDF show the same map with no script and no tile server: a crew's
sheet prints the same offline. The PDF is the page rendered by WeasyPrint with its print
stylesheet; the page's own files are read from ``static/``, nothing is fetched.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import geopandas as gpd
import shapely

from voirie.maps.dispatch import STATUS_LABELS
from voirie.maps.staff import render_staff_page
from voirie.maps.static import STATIC_DIR
from voirie.model import Status
from voirie.services.workorder import RoundSheet

MAP_WIDTH = 1000
"""Width of the SVG map in its own units; the height follows the round's shape."""
_MARGIN_M = 250

TOURNEE_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "title": "Feuille de tournée",
        "team": "Équipe",
        "day": "Jour",
        "show": "Afficher",
        "pdf": "PDF",
        "print": "Imprimer",
        "choose": "Choisissez une équipe et un jour.",
        "heading": "Tournée du {day} — {team}",
        "from_depot": "Départ du dépôt de l'équipe.",
        "from_west": "Pas de dépôt configuré : départ de l'incident le plus à l'ouest.",
        "order": "Ordre de passage : plus proche voisin puis 2-opt, à vol d'oiseau ; "
        "{n} arrêts, {km} km. Les {max} incidents les plus urgents "
        "(priorité, échéance, ancienneté).",
        "waiting": "{n} autres incidents ouverts de l'équipe attendent une prochaine tournée.",
        "empty": "Aucun incident ouvert pour cette équipe ce jour-là.",
        "map": "Plan de la tournée",
        "number": "N°",
        "incident": "Incident",
        "service": "Catégorie",
        "address": "Adresse",
        "description": "Description",
        "status": "Statut",
        "due": "Échéance",
        "overdue": "en retard",
        "reports": "Signalements",
        "leg": "Trajet (m)",
        "done": "Fait",
    },
    "en": {
        "title": "Round sheet",
        "team": "Team",
        "day": "Day",
        "show": "Show",
        "pdf": "PDF",
        "print": "Print",
        "choose": "Choose a team and a day.",
        "heading": "Round of {day} — {team}",
        "from_depot": "Starts at the team's depot.",
        "from_west": "No depot configured: starts at the westmost incident.",
        "order": "Visiting order: nearest neighbour then 2-opt, straight lines; "
        "{n} stops, {km} km. The {max} most urgent incidents "
        "(priority, due date, age).",
        "waiting": "{n} more open incidents of the team wait for a later round.",
        "empty": "No open incident for this team on that day.",
        "map": "Map of the round",
        "number": "No.",
        "incident": "Incident",
        "service": "Category",
        "address": "Address",
        "description": "Description",
        "status": "Status",
        "due": "Due",
        "overdue": "overdue",
        "reports": "Reports",
        "leg": "Leg (m)",
        "done": "Done",
    },
}


def route_svg(sheet: RoundSheet, zones: gpd.GeoDataFrame) -> dict[str, Any]:
    """The map's pieces in SVG units: viewBox height, outline paths, the route's points,
    the stops (x, y, number) and the start when it is a depot."""
    xs = [s.x for s in sheet.stops] + [sheet.start_xy[0]]
    ys = [s.y for s in sheet.stops] + [sheet.start_xy[1]]
    minx, maxx = min(xs) - _MARGIN_M, max(xs) + _MARGIN_M
    miny, maxy = min(ys) - _MARGIN_M, max(ys) + _MARGIN_M
    scale = MAP_WIDTH / (maxx - minx)
    height = max(200.0, (maxy - miny) * scale)
    maxy = miny + height / scale

    def at(x: float, y: float) -> tuple[float, float]:
        return round((x - minx) * scale, 1), round((maxy - y) * scale, 1)

    box = shapely.box(minx, miny, maxx, maxy)
    paths = []
    for shape in zones.to_crs(sheet.metric_crs).geometry.clip_by_rect(minx, miny, maxx, maxy):
        if shape.is_empty or not shape.intersects(box):
            continue
        for ring in shapely.get_rings(shapely.get_parts(shape)):
            points = " ".join(f"{px},{py}" for px, py in (at(*c) for c in ring.coords))
            paths.append(f"M{points}Z")
    start = at(*sheet.start_xy)
    stops = [(*at(s.x, s.y), s.number, s.overdue) for s in sheet.stops]
    route = ([start] if sheet.from_depot else []) + [(x, y) for x, y, _, _ in stops]
    return {
        "height": round(height, 1),
        "outlines": paths,
        "route": " ".join(f"{x},{y}" for x, y in route),
        "stops": stops,
        "depot": start if sheet.from_depot else None,
    }


def render_tournee_page(
    context: dict[str, Any],
    sheet: RoundSheet | None,
    *,
    teams: dict[str, str],
    team: str | None,
    day: str,
    zones: gpd.GeoDataFrame,
    timezone: str,
    max_stops: int,
) -> str:
    """The round sheet in the frame of ``context`` (``maps.staff.staff_context``); without
    a sheet, the form to choose a team and a day."""
    lang = str(context["lang"])
    labels = TOURNEE_LABELS[lang]
    page: dict[str, Any] = {
        "labels": labels,
        "teams": teams,
        "team": team,
        "day": day,
        "sheet": None,
    }
    if sheet is not None:
        zone = ZoneInfo(timezone)
        when = "%d/%m/%Y %H:%M" if lang == "fr" else "%Y-%m-%d %H:%M"
        page |= {
            "sheet": sheet,
            "heading": labels["heading"].format(
                day=sheet.day.strftime("%d/%m/%Y" if lang == "fr" else "%Y-%m-%d"),
                team=sheet.team_name,
            ),
            "start": labels["from_depot" if sheet.from_depot else "from_west"],
            "order": labels["order"].format(
                n=len(sheet.stops), km=f"{sheet.length_m / 1000:.1f}", max=max_stops
            ),
            "waiting": labels["waiting"].format(n=sheet.waiting) if sheet.waiting else "",
            "map": route_svg(sheet, zones) if sheet.stops else None,
            "due": {
                s.number: _local(s.due_at, zone, when) for s in sheet.stops if s.due_at is not None
            },
            "statuses": {s.value: STATUS_LABELS[lang][s] for s in Status},
        }
    return render_staff_page("staff_tournee.html", context, **page)


def _local(moment: datetime, zone: ZoneInfo, pattern: str) -> str:
    return moment.astimezone(zone).strftime(pattern)


def sheet_pdf(page: str, root: str) -> bytes:
    """The page as PDF (A4, its print stylesheet); its ``/static`` files read from disk,
    nothing else fetched."""
    # Imported here: a heavy import that only the PDF needs.
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    prefix = f"{root}/static/"

    class StaticOnly(URLFetcher):  # type: ignore[misc]
        """Answers the app's own static files from disk and refuses every other URL."""

        def fetch(self, url: str, headers: object = None) -> URLFetcherResponse:
            path = urlsplit(url).path
            local = (STATIC_DIR / path.removeprefix(prefix)).resolve()
            inside = path.startswith(prefix) and local.is_relative_to(STATIC_DIR.resolve())
            if not inside or not local.is_file():
                raise ValueError(f"{url}: only the app's static files are read")
            return URLFetcherResponse(
                url, body=local.read_bytes(), headers={"Content-Type": _mime(local)}
            )

    html = HTML(string=page, base_url="http://voirie.invalid/", url_fetcher=StaticOnly())
    pdf: bytes = html.write_pdf()
    return pdf


def _mime(path: Path) -> str:
    return {".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml"}.get(
        path.suffix, "application/octet-stream"
    )
