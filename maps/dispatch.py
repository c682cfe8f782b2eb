"""The technicians' dispatch map: every open incident, clustered, filterable, actionable.

The page is one small HTML template (``templates/dispatch.html``) and one script
(``static/dispatch.js``) over one JSON data block. The block is columnar (one array per
field, teams, services, statuses and streets given once and referred to by index), so
100,000 incidents weigh a few megabytes instead of one HTML popup per marker; the script
builds markers into one Leaflet.markercluster group, one layer-control entry per team,
a heatmap layer (leaflet.heat), the filters (service, status, age, overdue) and each popup
on demand with ``textContent``. Actions (status, assignment) call the staff API with the
dispatcher's Bearer token, kept in ``sessionStorage`` for the tab's life only.

Everything is served by the app under ``static_url``: the page works without internet.
"""

from __future__ import annotations

import colorsys
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from voirie.maps.html import outlines, render
from voirie.model import Status

MARKER_CLASS = "voirie-incident"
"""CSS class of every incident marker's SVG path (a stable hook for tests and styling)."""
LANGUAGES = ("fr", "en")
_COORDINATE_DECIMALS = 5  # about one metre: plenty for a map, and a third lighter
_MINUTE_NS = 60 * 1_000_000_000

STATUS_COLOURS: dict[Status, str] = {
    Status.NEW: "#e41a1c",
    Status.ACKNOWLEDGED: "#ff7f00",
    Status.SCHEDULED: "#377eb8",
    Status.IN_PROGRESS: "#984ea3",
    Status.RESOLVED: "#4daf4a",
    Status.CLOSED: "#999999",
    Status.DUPLICATE: "#a65628",
    Status.REJECTED: "#666666",
}

STATUS_LABELS: dict[str, dict[Status, str]] = {
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
"""Status names for people, per language (shared with the citizen page)."""

_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "title": "Carte de répartition des incidents",
        "teams": "Équipes",
        "heatmap": "Carte de chaleur",
        "incident": "Incident",
        "service": "Type d'anomalie",
        "team": "Équipe",
        "status": "Statut",
        "priority": "Priorité",
        "reports": "Signalements",
        "supporters": "Soutiens",
        "first": "Premier signalement",
        "last": "Dernier signalement",
        "due": "Échéance",
        "street": "Voie",
        "overdue": "En retard",
        "overdue_only": "En retard seulement",
        "all": "Tous",
        "age": "Ancienneté",
        "age_1": "Moins d'un jour",
        "age_7": "Moins de 7 jours",
        "age_30": "Moins de 30 jours",
        "age_older": "Plus de 30 jours",
        "shown": "{shown} incidents affichés sur {total}",
        "token": "Jeton d'accès",
        "token_save": "Enregistrer",
        "token_saved": "Jeton enregistré pour cet onglet",
        "token_missing": "Collez d'abord votre jeton d'accès (en haut de la page).",
        "set_status": "Changer le statut",
        "reassign": "Réaffecter",
        "reason": "Motif",
        "done": "Enregistré.",
        "failed": "Refusé",
        "colon": "\u00a0: ",
        "filters": "Filtres",
        "legend": "Statuts",
        "language": "Langue",
        # The API answers in English: its refusals said in French (by the field at fault,
        # else by status); others show the API's own words.
        "err_401": "jeton inconnu : collez un jeton valide en haut de la page",
        "err_403": "votre rôle ou votre équipe ne permet pas cette action sur cet incident",
        "err_404": "incident introuvable",
        "err_409": "changement impossible depuis ce statut ; statuts possibles : {allowed}",
        "err_reason": "indiquez le motif",
        "err_team": "équipe inconnue",
        "err_500": "service momentanément indisponible, réessayez plus tard",
    },
    "en": {
        "title": "Incident dispatch map",
        "teams": "Teams",
        "heatmap": "Heatmap",
        "incident": "Incident",
        "service": "Issue type",
        "team": "Team",
        "status": "Status",
        "priority": "Priority",
        "reports": "Reports",
        "supporters": "Supporters",
        "first": "First reported",
        "last": "Last reported",
        "due": "Due",
        "street": "Street",
        "overdue": "Overdue",
        "overdue_only": "Overdue only",
        "all": "All",
        "age": "Age",
        "age_1": "Under a day",
        "age_7": "Under 7 days",
        "age_30": "Under 30 days",
        "age_older": "Over 30 days",
        "shown": "{shown} of {total} incidents shown",
        "token": "Access token",
        "token_save": "Save",
        "token_saved": "Token saved for this tab",
        "token_missing": "Paste your access token first (top of the page).",
        "set_status": "Change status",
        "reassign": "Reassign",
        "reason": "Reason",
        "done": "Saved.",
        "failed": "Refused",
        "colon": ": ",
        "filters": "Filters",
        "legend": "Statuses",
        "language": "Language",
    },
}


def team_colour(code: str) -> str:
    """Colour of a team: stable across runs and processes (CRC32, not ``hash``).

    A city has dozens of teams (47 in Paris), more than any fixed palette: the hue takes
    any of 360 degrees and the lightness one of three levels, so collisions stay rare.
    """
    digest = zlib.crc32(code.encode("utf-8"))
    hue = (digest % 360) / 360
    lightness = (0.36, 0.48, 0.60)[(digest >> 9) % 3]
    red, green, blue = colorsys.hls_to_rgb(hue, lightness, 0.75)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


def dispatch_data(
    incidents: gpd.GeoDataFrame,
    teams: Mapping[str, str],
    *,
    now: datetime,
    background: gpd.GeoDataFrame | None = None,
    api_url: str = "/api/v1",
) -> dict[str, Any]:
    """The page's JSON data block: lookup tables once, then one array per incident field.

    ``teams`` maps every team code of the city to its name (all are offered for
    reassignment); codes found in ``incidents`` but unknown to the city are added as is.
    Times are whole minutes since the Unix epoch; ``due`` is ``None`` when there is none.
    """
    points = _located(incidents)
    team_codes = list(teams) + sorted(set(points["team"].astype(str)) - set(teams))
    team_table = sorted(
        ({"code": c, "name": teams.get(c, c), "colour": team_colour(c)} for c in team_codes),
        key=lambda t: (t["name"], t["code"]),
    )
    # Dictionary encoding: each distinct value once, one index per row (-1 when missing).
    service = pd.Categorical(points["service_code"].astype(str))
    names = points.drop_duplicates("service_code").set_index("service_code")["service_name"]
    street = pd.Categorical(points["street_name"])
    status_index = {status.value: i for i, status in enumerate(Status)}
    team_index = {t["code"]: i for i, t in enumerate(team_table)}
    columns = {
        "id": points["incident_id"].astype(int).tolist(),
        "lon": points.geometry.x.round(_COORDINATE_DECIMALS).tolist(),
        "lat": points.geometry.y.round(_COORDINATE_DECIMALS).tolist(),
        "team": points["team"].astype(str).map(team_index).astype(int).tolist(),
        "service": service.codes.tolist(),
        "status": points["status"].astype(str).map(status_index).astype(int).tolist(),
        "priority": _integers(points["priority"]),
        "reports": _integers(points["report_count"]),
        "supporters": _integers(points["supporters"]),
        "first": _minutes(points["first_reported_at"]),
        "last": _minutes(points["last_reported_at"]),
        "due": _minutes(points["due_at"]),
        "street": street.codes.tolist(),
    }
    return {
        "api": api_url.rstrip("/"),
        "now": int(pd.Timestamp(now).value // _MINUTE_NS),
        "teams": team_table,
        "services": [{"code": c, "name": str(names.get(c, c))} for c in service.categories],
        "streets": [str(s) for s in street.categories],
        "statuses": [
            {"code": s.value, "colour": STATUS_COLOURS[s], "open": s.is_open} for s in Status
        ],
        "background": outlines(background),
        "incidents": columns,
    }


def render_dispatch_map(
    incidents: gpd.GeoDataFrame,
    teams: Mapping[str, str],
    *,
    static_url: str = "/static",
    lang: str = "fr",
    background: gpd.GeoDataFrame | None = None,
    now: datetime | None = None,
    api_url: str = "/api/v1",
    title_team: str | None = None,
    language_urls: Mapping[str, str] | None = None,
) -> str:
    """The dispatch map of ``incidents`` as a complete HTML page in ``lang`` ("fr" or "en").

    ``background`` polygons (e.g. the city's districts) are drawn as grey outlines for
    bearings, geometry only. ``title_team`` names the team of a team's own view;
    ``language_urls`` maps each language to the URL of this page in it (the switch).
    """
    if lang not in _LABELS:
        raise ValueError(f"unsupported language {lang!r}; expected one of {sorted(_LABELS)}")
    labels = _LABELS[lang]
    data = dispatch_data(
        incidents, teams, now=now or datetime.now(UTC), background=background, api_url=api_url
    )
    data["labels"] = labels
    status_names = STATUS_LABELS[lang]
    for entry in data["statuses"]:
        entry["label"] = status_names[Status(entry["code"])]
    return render(
        "dispatch.html",
        lang=lang,
        labels=labels,
        data=data,
        static_url=static_url.rstrip("/"),
        title_team=title_team,
        statuses=data["statuses"],
        services=data["services"],
        language_urls=language_urls or {},
        marker_class=MARKER_CLASS,
    )


def _located(incidents: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Incidents with a usable point, in WGS84 (the only CRS Leaflet takes)."""
    if incidents.crs is not None and incidents.crs.to_epsg() != 4326:
        incidents = incidents.to_crs(4326)
    geometry = incidents.geometry
    return incidents[geometry.notna() & ~geometry.is_empty]


def _integers(values: pd.Series) -> list[int | None]:
    """Integers as JSON numbers, ``None`` where missing."""
    numbers = pd.to_numeric(values, errors="coerce")
    return [None if pd.isna(v) else int(v) for v in numbers.to_numpy(object)]


def _minutes(values: pd.Series) -> list[int | None]:
    """Instants as whole minutes since the Unix epoch, ``None`` where missing."""
    times = pd.to_datetime(values, utc=True, format="ISO8601").dt.tz_convert(None)
    minutes = times.to_numpy("datetime64[ns]").astype("datetime64[m]").astype(np.int64)
    return [
        None if missing else int(m)
        for m, missing in zip(minutes, times.isna().to_numpy(), strict=True)
    ]
