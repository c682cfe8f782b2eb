"""The case page (``/staff/incidents/{id}``): one incident, everything staff need about it.

The page (``templates/staff_case.html`` + ``static/staff_case.js``) shows the reports'
descriptions, photos (thumbnails opening the full size), addresses and street positions,
a map of the reports, the routing decisions with the rule that made each, the history and
comments, and the open incidents nearby that may be the same problem (merge or mark
"not a duplicate" in one click). It offers only what the signed-in person may do on this
incident's team, and only the status changes the workflow allows, with the city's canned
replies (``canned_replies:`` in city.yaml) for the public status note.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd

from voirie.city import TRIAGE_TEAM, City
from voirie.maps.dispatch import STATUS_COLOURS, STATUS_LABELS
from voirie.maps.html import outlines
from voirie.maps.staff import render_staff_page
from voirie.model import Status

DUPLICATE_RADIUS_M = 150
"""Open incidents this close may be the same problem (the case page lists them)."""
MAX_DUPLICATES = 10
REPORT_FIELDS = (
    "report_id",
    "description",
    "address",
    "street_name",
    "position_m",
    "side",
    "snap_distance_m",
    "media_url",
    "requested_at",
    "channel",
    "lon",
    "lat",
)
ASSIGNMENT_FIELDS = (
    "team",
    "rule_id",
    "rule_version",
    "reason",
    "priority",
    "due_at",
    "assigned_at",
    "actor",
)
EVENT_FIELDS = ("entity", "entity_id", "kind", "actor", "reason", "at")

EVENT_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "received": "reçu",
        "enriched": "position corrigée",
        "opened": "ouvert",
        "attached": "rattaché",
        "routed": "affecté par les règles",
        "merged": "fusionné",
        "not_duplicate": "pas un doublon",
        "split": "séparé",
        "reassigned": "réaffecté",
        "status_changed": "statut changé",
        "commented": "commentaire",
        "escalated": "escaladé",
        "supported": "soutenu",
        "followed": "suivi",
        "unfollowed": "plus suivi",
    },
    "en": {
        "received": "received",
        "enriched": "position corrected",
        "opened": "opened",
        "attached": "attached",
        "routed": "routed by the rules",
        "merged": "merged",
        "not_duplicate": "not a duplicate",
        "split": "split",
        "reassigned": "reassigned",
        "status_changed": "status changed",
        "commented": "comment",
        "escalated": "escalated",
        "supported": "supported",
        "followed": "followed",
        "unfollowed": "unfollowed",
    },
}
"""Event kinds for people (a kind not listed shows as its code)."""

CASE_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "title": "Incident n° {id}",
        "back": "Retour à la file d'attente",
        "summary": "Résumé",
        "category": "Catégorie",
        "status": "Statut",
        "team": "Équipe",
        "priority": "Priorité",
        "due": "Échéance",
        "late": "en retard",
        "first": "Premier signalement",
        "last": "Dernier signalement",
        "reports_count": "Signalements",
        "street": "Rue",
        "reports": "Signalements",
        "description": "Description",
        "address": "Adresse",
        "position": "Position sur la rue",
        "position_value": "{position} m depuis le début du tronçon, côté {side}",
        "photo": "Photo du signalement {id} (taille réelle)",
        "no_description": "(sans description)",
        "hidden_text": "Texte masqué au public (modération)",
        "edited_text": "Modifié pour le public (modération) : « {text} »",
        "hidden_photo": "Photo masquée au public (modération)",
        "map": "Carte des signalements",
        "assignments": "Affectations",
        "rule": "Règle {rule} v{version}",
        "by_hand": "Affectation manuelle par {actor}",
        "history": "Historique",
        "comment": "Ajouter un commentaire interne",
        "comment_text": "Commentaire",
        "send": "Envoyer",
        "change_status": "Changer le statut",
        "new_status": "Nouveau statut",
        "canned": "Réponse type",
        "canned_none": "— aucune —",
        "note": "Note publique",
        "apply": "Appliquer",
        "final": "Statut final : aucun changement possible.",
        "reassign": "Réaffecter",
        "change_category": "Changer de catégorie (réaffectation selon les règles)",
        "moved": "Repère déplacé sur la carte.",
        "save_place": "Enregistrer la position",
        "drag": "Faites glisser le repère noir pour corriger la position.",
        "side_left": "gauche",
        "side_right": "droit",
        "hand_back": "Renvoyer au tri",
        "reason": "Motif",
        "duplicates": "Doublons possibles à proximité",
        "no_duplicates": "Aucun incident ouvert à moins de {radius} m.",
        "distance": "à {distance} m",
        "likelihood": "doublon probable à {percent} %",
        "score": "ressemblance {score} (score non calibré)",
        "merge_here": "Fusionner dans cet incident",
        "not_duplicate": "Pas un doublon",
        "marked_not_duplicate": "marqué « pas un doublon »",
        "merge_reason": "doublon fusionné depuis la fiche de l'incident {id}",
        "not_duplicate_reason": "problèmes distincts (fiche de l'incident {id})",
        "done": "C'est fait.",
        "error": "Erreur",
    },
    "en": {
        "title": "Incident no. {id}",
        "back": "Back to the queue",
        "summary": "Summary",
        "category": "Category",
        "status": "Status",
        "team": "Team",
        "priority": "Priority",
        "due": "Due",
        "late": "overdue",
        "first": "First reported",
        "last": "Last reported",
        "reports_count": "Reports",
        "street": "Street",
        "reports": "Reports",
        "description": "Description",
        "address": "Address",
        "position": "Position along the street",
        "position_value": "{position} m from the start of the segment, {side} side",
        "photo": "Photo of report {id} (full size)",
        "no_description": "(no description)",
        "hidden_text": "Text hidden from the public (moderation)",
        "edited_text": "Edited for the public (moderation): “{text}”",
        "hidden_photo": "Photo hidden from the public (moderation)",
        "map": "Map of the reports",
        "assignments": "Assignments",
        "rule": "Rule {rule} v{version}",
        "by_hand": "Assigned by hand by {actor}",
        "history": "History",
        "comment": "Add an internal comment",
        "comment_text": "Comment",
        "send": "Send",
        "change_status": "Change status",
        "new_status": "New status",
        "canned": "Canned reply",
        "canned_none": "— none —",
        "note": "Public note",
        "apply": "Apply",
        "final": "Final status: no change possible.",
        "reassign": "Reassign",
        "change_category": "Change category (routed again by the rules)",
        "moved": "Pin moved on the map.",
        "save_place": "Save the position",
        "drag": "Drag the black pin to correct the position.",
        "side_left": "left",
        "side_right": "right",
        "hand_back": "Hand back to triage",
        "reason": "Reason",
        "duplicates": "Possible duplicates nearby",
        "no_duplicates": "No open incident within {radius} m.",
        "distance": "{distance} m away",
        "likelihood": "{percent} % likely the same problem",
        "score": "similarity {score} (uncalibrated score)",
        "merge_here": "Merge into this incident",
        "not_duplicate": "Not a duplicate",
        "marked_not_duplicate": "marked “not a duplicate”",
        "merge_reason": "duplicate merged from the case page of incident {id}",
        "not_duplicate_reason": "different problems (case page of incident {id})",
        "done": "Done.",
        "error": "Error",
    },
}


def render_case_page(
    context: dict[str, Any],
    *,
    city: City,
    incident: dict[str, Any],
    reports: list[dict[str, Any]],
    assignments: list[dict[str, Any]],
    history: list[dict[str, Any]],
    duplicates: list[dict[str, Any]],
    may: dict[str, bool],
    api_url: str,
    background: gpd.GeoDataFrame | None = None,
) -> str:
    """The case page in the frame of ``context`` (``staff_context``): ``incident`` is the
    staff API's ``IncidentOut`` as JSON, the lists are rows of the case file (their
    ``*_FIELDS``), ``may`` says which actions the signed-in person may take on it;
    ``background``: zone outlines drawn for bearings (the pages load no map tiles)."""
    lang = str(context["lang"])
    labels = CASE_LABELS[lang]
    teams = {code: t.name for code, t in city.teams.items()}
    status_names = STATUS_LABELS[lang]
    allowed = [(s, status_names[Status(s)]) for s in incident["allowed_statuses"]]
    canned = [
        reply.model_dump()
        for reply in city.config.canned_replies
        if reply.status is None or reply.status in {code for code, _ in allowed}
    ]
    data = {
        "api": api_url,
        "root": context["root"],
        "lang": lang,
        "zone": city.config.timezone,
        "labels": labels,
        "incident": incident,
        "reports": reports,
        "assignments": assignments,
        "history": history,
        "duplicates": duplicates,
        "radius_m": DUPLICATE_RADIUS_M,
        "statuses": {s.value: status_names[s] for s in Status},
        "colours": {s.value: STATUS_COLOURS[s] for s in Status},
        "teams": teams,
        "triage": TRIAGE_TEAM,
        "kinds": EVENT_LABELS[lang],
        "canned": canned,
        "may": may,
        "background": outlines(background),
    }
    team = str(incident["team"])
    return render_staff_page(
        "staff_case.html",
        context,
        labels=labels,
        title=labels["title"].format(id=incident["incident_id"]),
        incident=incident,
        status_name=status_names[Status(incident["status"])],
        team_name=teams.get(team, team),
        allowed=allowed,
        canned=canned,
        teams=teams,
        services=sorted(((c, s.name) for c, s in city.services.items()), key=lambda s: s[1]),
        # The zones where the incident stands (a moved pin's new ones), by the city's labels.
        zones=[
            (layer.label or layer.name, incident["zones"][layer.name])
            for layer in city.config.zones
            if incident["zones"].get(layer.name)
        ],
        may=may,
        data=data,
    )
