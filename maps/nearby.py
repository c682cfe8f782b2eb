"""The citizens' page: open issues around me, "me too" and follow-ups, on a phone.

The page (``templates/nearby.html`` + ``static/nearby.js``) finds the citizen's position
with the browser's geolocation or a typed address (geocoded by the server against the
city's street layer), lists the open incidents around with their distance and age, and
calls the citizen API. French by default, English available. Like every voirie page it
loads nothing but the app's own ``/static`` files, and inserts data with ``textContent``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import geopandas as gpd

from voirie.maps.dispatch import STATUS_COLOURS, STATUS_LABELS
from voirie.maps.html import outlines, render
from voirie.services.citizens import MAX_RADIUS_M

RADII_M = (250, 500, 1000, 2000)
"""Search radii offered to citizens, in metres (the API accepts up to ``MAX_RADIUS_M``)."""
DEFAULT_RADIUS_M = 500
PAGE_SIZE = 20
"""Incidents listed per page (the page says how many there are and moves through them)."""

_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "title": "Signalements près de chez moi",
        "intro": "Les problèmes déjà signalés autour de vous. S'il est déjà là, dites "
        "« moi aussi » plutôt que de le signaler à nouveau.",
        "locate": "Me localiser",
        "address": "Adresse ou rue",
        "search": "Chercher",
        "radius": "Rayon",
        "locating": "Recherche de votre position…",
        "geo_denied": "Position indisponible : saisissez une adresse.",
        "searching": "Recherche…",
        "found": "{count} problème(s) en cours à moins de {radius} m de {place}.",
        "none": "Aucun problème en cours à moins de {radius} m de {place}.",
        "found_page": "{first} à {last} sur {total} problèmes en cours à moins de {radius} m "
        "de {place}.",
        "pages": "Pages de la liste",
        "previous": "Précédents",
        "next": "Suivants",
        "page": "Page {page} sur {pages}",
        "report": "Signaler un nouveau problème",
        "here": "votre position",
        "me_too": "Moi aussi",
        "me_too_done": "Merci, c'est noté",
        "follow": "Me tenir informé(e)",
        "unfollow": "Ne plus suivre",
        "email": "Votre e-mail (facultatif)",
        "followed": "Vous suivez ce problème.",
        "unfollowed": "Vous ne suivez plus ce problème.",
        "distance": "à {distance} m",
        "age_0": "signalé aujourd'hui",
        "age_1": "signalé hier",
        "age_n": "signalé il y a {days} jours",
        "reports": "{count} signalement(s)",
        "supporters": "{count} soutien(s)",
        "error": "Erreur",
        "colon": "\u00a0: ",
        "status": "Statut",
        "map": "Carte des problèmes",
        "language": "Langue",
        # The API answers in English: the errors a citizen meets, said in French (by the
        # field at fault, else by status); others show the API's own words.
        "err_email": "adresse e-mail invalide",
        "err_q": "aucune rue de ce nom ; vérifiez l'orthographe ou utilisez « Me localiser »",
        "err_radius_m": "rayon invalide",
        "err_lat": "position invalide",
        "err_lon": "position invalide",
        "err_404": "ce problème n'existe pas ou plus",
        "err_409": "ce problème est clos : s'il est revenu, signalez-le à nouveau",
        "err_500": "service momentanément indisponible, réessayez plus tard",
    },
    "en": {
        "title": "Issues near me",
        "intro": 'Problems already reported around you. If yours is listed, say "me too" '
        "instead of reporting it again.",
        "locate": "Locate me",
        "address": "Address or street",
        "search": "Search",
        "radius": "Radius",
        "locating": "Finding your position…",
        "geo_denied": "Position unavailable: type an address.",
        "searching": "Searching…",
        "found": "{count} open issue(s) within {radius} m of {place}.",
        "none": "No open issue within {radius} m of {place}.",
        "found_page": "{first} to {last} of {total} open issues within {radius} m of {place}.",
        "pages": "Pages of the list",
        "previous": "Previous",
        "next": "Next",
        "page": "Page {page} of {pages}",
        "report": "Report a new problem",
        "here": "your position",
        "me_too": "Me too",
        "me_too_done": "Thanks, noted",
        "follow": "Keep me posted",
        "unfollow": "Stop following",
        "email": "Your email (optional)",
        "followed": "You follow this issue.",
        "unfollowed": "You no longer follow this issue.",
        "distance": "{distance} m away",
        "age_0": "reported today",
        "age_1": "reported yesterday",
        "age_n": "reported {days} days ago",
        "reports": "{count} report(s)",
        "supporters": "{count} supporter(s)",
        "error": "Error",
        "colon": ": ",
        "status": "Status",
        "map": "Map of the issues",
        "language": "Language",
    },
}
LANGUAGES = tuple(_LABELS)


def render_nearby_page(
    *,
    city_name: str,
    lang: str = "fr",
    static_url: str = "/static",
    api_url: str = "/api/v1",
    background: gpd.GeoDataFrame | None = None,
    language_urls: Mapping[str, str] | None = None,
    start: tuple[float, float, float] | None = None,
    report_url: str = "/signaler",
) -> str:
    """The citizen page in ``lang``; ``start`` (lon, lat, radius_m) searches on load;
    ``report_url`` is the report form's address (linked from the page)."""
    if lang not in _LABELS:
        raise ValueError(f"unsupported language {lang!r}; expected one of {sorted(_LABELS)}")
    labels = _LABELS[lang]
    radius = round(start[2]) if start else DEFAULT_RADIUS_M
    data: dict[str, Any] = {
        "api": api_url.rstrip("/"),
        "labels": labels,
        "statuses": {
            s.value: {"label": STATUS_LABELS[lang][s], "colour": STATUS_COLOURS[s]}
            for s in STATUS_COLOURS
        },
        "background": outlines(background),
        "start": None
        if start is None
        else {"lon": start[0], "lat": start[1], "radius_m": start[2]},
        "max_radius_m": MAX_RADIUS_M,
        "page_size": PAGE_SIZE,
    }
    return render(
        "nearby.html",
        lang=lang,
        labels=labels,
        city_name=city_name,
        data=data,
        static_url=static_url.rstrip("/"),
        radii=sorted({*RADII_M, radius}),
        radius=radius,
        language_urls=language_urls or {},
        report_url=f"{report_url}?lang={lang}",
    )
