"""The queue page (``/staff/``): its labels and data block.

The queue (``templates/staff_queue.html`` + ``static/staff_queue.js``) fetches one page of
incidents at a time from ``/staff/api/queue`` with the filters of its form, draws them in
a table beside a Leaflet map, and polls again every ``REFRESH_S`` seconds so that new
reports appear (new rows are highlighted). Times are shown in the city's time zone.
A selection of rows takes a bulk action (status, reassignment, merge).
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd

from voirie.city import City
from voirie.maps.dispatch import STATUS_COLOURS, STATUS_LABELS
from voirie.maps.html import outlines
from voirie.maps.staff import render_staff_page
from voirie.model import Status
from voirie.services.auth import Action, Principal

REFRESH_S = 30
"""How often the queue asks for news (seconds): a new report shows within half a minute."""

QUEUE_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "title": "File d'attente des incidents",
        "filters": "Filtres",
        "team": "Équipe",
        "all_teams": "Toutes les équipes",
        "status": "Statut",
        "open": "Ouverts",
        "all": "Tous",
        "service": "Catégorie",
        "all_services": "Toutes les catégories",
        "zone": "Zone",
        "all_zones": "Toutes les zones",
        "overdue": "En retard seulement",
        "age": "Ancienneté",
        "age_any": "Toute ancienneté",
        "age_lt1": "Signalé depuis moins d'un jour",
        "age_lt7": "Signalé depuis moins de 7 jours",
        "age_gt7": "Ouvert depuis plus de 7 jours",
        "age_gt30": "Ouvert depuis plus de 30 jours",
        "search": "Rechercher (adresse, rue, description)",
        "apply": "Filtrer",
        "sort": "Trier par",
        "sort_age": "ancienneté",
        "sort_due": "échéance",
        "sort_priority": "priorité",
        "sort_reports": "nombre de signalements",
        "asc": "croissant",
        "desc": "décroissant",
        "counts": "Nombre par statut",
        "select": "Sélectionner",
        "select_all": "Tout sélectionner",
        "id": "N°",
        "category": "Catégorie",
        "street": "Adresse / rue",
        "first": "Signalé le",
        "due": "Échéance",
        "priority": "Priorité",
        "reports": "Signalements",
        "late": "en retard",
        "shown": "{first} à {last} sur {total}",
        "none": "Aucun incident ne correspond à ces filtres.",
        "previous": "Précédents",
        "next": "Suivants",
        "pages": "Pages de la liste",
        "map": "Carte des incidents de la page",
        "refreshed": "Mis à jour à {time}",
        "new_rows": "{count} nouvel(s) incident(s)",
        "bulk": "Action groupée sur la sélection",
        "selected": "{count} sélectionné(s)",
        "bulk_status": "Changer le statut",
        "bulk_assign": "Réaffecter à",
        "bulk_merge": "Fusionner dans le premier sélectionné",
        "reason": "Motif",
        "run": "Appliquer",
        "done": "{count} incident(s) modifié(s)",
        "error": "Erreur",
        "loading": "Chargement…",
    },
    "en": {
        "title": "Incident queue",
        "filters": "Filters",
        "team": "Team",
        "all_teams": "All teams",
        "status": "Status",
        "open": "Open",
        "all": "All",
        "service": "Category",
        "all_services": "All categories",
        "zone": "Zone",
        "all_zones": "All zones",
        "overdue": "Overdue only",
        "age": "Age",
        "age_any": "Any age",
        "age_lt1": "Reported in the last day",
        "age_lt7": "Reported in the last 7 days",
        "age_gt7": "Open for over 7 days",
        "age_gt30": "Open for over 30 days",
        "search": "Search (address, street, description)",
        "apply": "Filter",
        "sort": "Sort by",
        "sort_age": "age",
        "sort_due": "due date",
        "sort_priority": "priority",
        "sort_reports": "report count",
        "asc": "ascending",
        "desc": "descending",
        "counts": "Count per status",
        "select": "Select",
        "select_all": "Select all",
        "id": "No.",
        "category": "Category",
        "street": "Address / street",
        "first": "Reported",
        "due": "Due",
        "priority": "Priority",
        "reports": "Reports",
        "late": "overdue",
        "shown": "{first} to {last} of {total}",
        "none": "No incident matches these filters.",
        "previous": "Previous",
        "next": "Next",
        "pages": "Pages of the list",
        "map": "Map of this page's incidents",
        "refreshed": "Updated at {time}",
        "new_rows": "{count} new incident(s)",
        "bulk": "Bulk action on the selection",
        "selected": "{count} selected",
        "bulk_status": "Change status",
        "bulk_assign": "Reassign to",
        "bulk_merge": "Merge into the first selected",
        "reason": "Reason",
        "run": "Apply",
        "done": "{count} incident(s) changed",
        "error": "Error",
        "loading": "Loading…",
    },
}


def render_queue_page(
    context: dict[str, Any],
    *,
    city: City,
    teams: dict[str, str],
    zones: list[tuple[str, str]],
    background: gpd.GeoDataFrame | None,
    api_url: str,
    principal: Principal,
    ages: tuple[str, ...],
    sorts: tuple[str, ...],
) -> str:
    """The queue page in the frame of ``context`` (``maps.staff.staff_context``)."""
    lang = str(context["lang"])
    labels = QUEUE_LABELS[lang]
    statuses = [
        {"code": s.value, "label": STATUS_LABELS[lang][s], "colour": STATUS_COLOURS[s]}
        for s in Status
    ]
    data = {
        "api": api_url,
        "root": context["root"],
        "lang": lang,
        "zone": city.config.timezone,
        "refresh_s": REFRESH_S,
        "labels": labels,
        "statuses": statuses,
        "teams": teams,
        "services": {code: s.name for code, s in city.services.items()},
        "background": outlines(background),
        "may": {
            "status": principal.may(Action.STATUS),
            "assign": principal.may(Action.ASSIGN),
            "merge": principal.may(Action.MERGE),
        },
    }
    return render_staff_page(
        "staff_queue.html",
        context,
        labels=labels,
        statuses=statuses,
        teams=teams,
        services=sorted(city.services.items(), key=lambda item: item[1].name),
        zones=zones,
        ages=ages,
        sorts=sorts,
        data=data,
        may=data["may"],
    )
