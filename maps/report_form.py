"""The citizens' report form (``/signaler``) and their private tracking page (``/suivi/...``).

The form (``templates/signaler.html`` + ``static/signaler.js``) places a pin (geolocation,
a street found by the server's street search, or a tap on the map; Enter on the focused
map places it at the map's centre, for keyboards), offers the city's services grouped as
its service groups with a word search, asks the service's questions (its Open311
attributes), takes a description, up to three photos resized in the browser to the
server's limits, and optional contact details under a privacy notice. Before sending it
lists the open incidents of the same group around the pin ("C'est peut-être déjà
signalé") with "Moi aussi". French by default, English with ``?lang=en``; only the app's
own ``/static`` files, every text inserted with ``textContent``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from zoneinfo import ZoneInfo

import geopandas as gpd

from voirie.city import City
from voirie.maps.dispatch import STATUS_COLOURS, STATUS_LABELS
from voirie.maps.html import outlines, render
from voirie.model import Status
from voirie.services.tracking import MyReport

ALREADY_REPORTED_RADIUS_M = 200
"""How far around the pin the form looks for open incidents of the same group before
sending (a street corner's worth: what a citizen would call "the same place")."""


@dataclass(frozen=True)
class PhotoRules:
    """The server's photo limits, which the form resizes photos to meet."""

    max_photos: int
    max_bytes: int
    max_pixels: int
    max_side_px: int


_FORM: dict[str, dict[str, str]] = {
    "fr": {
        "title": "Signaler un problème",
        "intro": "Un trou, un dépôt sauvage, un lampadaire éteint ? Indiquez où, quoi, et "
        "envoyez : le signalement part à l'équipe responsable.",
        "step_place": "1. Où ?",
        "place_hint": "Touchez la carte à l'endroit du problème, utilisez votre position ou "
        "cherchez une adresse. Au clavier : placez la carte puis Entrée pose le repère au centre.",
        "locate": "Me localiser",
        "address": "Adresse ou rue",
        "search": "Chercher",
        "map": "Carte : touchez pour placer le repère",
        "no_place": "Aucun lieu choisi.",
        "place_set": "Repère posé : {place}.",
        "here": "votre position",
        "on_map": "point choisi sur la carte",
        "locating": "Recherche de votre position…",
        "geo_denied": "Position indisponible : cherchez une adresse ou touchez la carte.",
        "searching": "Recherche…",
        "step_what": "2. Quoi ?",
        "category_search": "Chercher une catégorie (mots)",
        "category": "Catégorie",
        "choose": "— Choisissez —",
        "categories_found": "{count} catégorie(s) correspondent.",
        "questions": "Précisions demandées",
        "required": "obligatoire",
        "description": "Description",
        "description_hint": "Ce que voient les agents en arrivant (4000 caractères au plus).",
        "step_photos": "3. Photos (facultatif)",
        "photos": "Photos (3 au plus)",
        "photos_hint": "Les photos sont réduites sur votre téléphone avant l'envoi ; leurs "
        "métadonnées (dont la position GPS) sont effacées par le serveur.",
        "photo_ready": "Photo {n} prête ({size} ko)",
        "photo_remove": "Retirer la photo {n}",
        "photo_too_many": "3 photos au plus : les suivantes sont ignorées.",
        "photo_unreadable": "Cette image ne peut pas être lue.",
        "step_contact": "4. Vous (facultatif)",
        "name": "Nom",
        "email": "E-mail",
        "phone": "Téléphone",
        "privacy": "Vos nom, e-mail et téléphone ne sont jamais publiés : ils servent "
        "seulement à vous tenir informé(e) de ce signalement et à vous joindre s'il le faut. "
        "Ils sont effacés quand le problème est clos depuis un certain temps, ou sur simple "
        "demande.",
        "check": "Continuer",
        "send": "Envoyer le signalement",
        "send_anyway": "Non, c'est un autre problème : envoyer",
        "checking": "Recherche des problèmes déjà signalés autour…",
        "sending": "Envoi…",
        "sending_photo": "Envoi de la photo {n}…",
        "duplicates_title": "C'est peut-être déjà signalé",
        "duplicates_intro": "{count} problème(s) du même type en cours à moins de {radius} m. "
        "Si c'est le vôtre, dites « Moi aussi » : cela compte autant qu'un signalement.",
        "me_too": "Moi aussi",
        "me_too_done": "Merci, c'est noté : inutile de l'envoyer à nouveau.",
        "distance": "à {distance} m",
        "need_place": "Indiquez d'abord où est le problème (étape 1).",
        "need_service": "Choisissez une catégorie (étape 2).",
        "need_answer": "Répondez à : {question}",
        "done_title": "Merci, votre signalement est enregistré",
        "done_opened": "Il a ouvert le problème n° {incident}, transmis à l'équipe responsable.",
        "done_attached": "Le problème était déjà signalé : le vôtre est joint au problème "
        "n° {incident}.",
        "tracking": "Suivre mon signalement",
        "tracking_hint": "Gardez ce lien privé : il mène à votre signalement.",
        "another": "Signaler un autre problème",
        "nearby": "Voir les problèmes près de chez moi",
        "error": "Erreur",
        "colon": "\u00a0: ",
        "language": "Langue",
        "err_email": "adresse e-mail invalide",
        "err_service_code": "catégorie inconnue",
        "err_photos": "photo refusée",
        "err_media": "photo refusée : format ou taille non acceptés",
        "err_lat/lon": "ce lieu est hors du territoire de la ville",
        "err_413": "photo trop lourde",
        "err_429": "trop d'envois depuis cette connexion : réessayez dans un moment",
        "err_500": "service momentanément indisponible, réessayez plus tard",
    },
    "en": {
        "title": "Report a problem",
        "intro": "A pothole, dumped rubbish, a street light out? Say where and what, and "
        "send: the report goes to the team in charge.",
        "step_place": "1. Where?",
        "place_hint": "Tap the map where the problem is, use your position or search an "
        "address. With a keyboard: move the map, then Enter drops the pin at its centre.",
        "locate": "Locate me",
        "address": "Address or street",
        "search": "Search",
        "map": "Map: tap to drop the pin",
        "no_place": "No place chosen.",
        "place_set": "Pin dropped: {place}.",
        "here": "your position",
        "on_map": "point chosen on the map",
        "locating": "Finding your position…",
        "geo_denied": "Position unavailable: search an address or tap the map.",
        "searching": "Searching…",
        "step_what": "2. What?",
        "category_search": "Search a category (words)",
        "category": "Category",
        "choose": "— Choose —",
        "categories_found": "{count} matching category(ies).",
        "questions": "Questions",
        "required": "required",
        "description": "Description",
        "description_hint": "What the crew will see on arrival (at most 4000 characters).",
        "step_photos": "3. Photos (optional)",
        "photos": "Photos (at most 3)",
        "photos_hint": "Photos are made smaller on your phone before sending; the server "
        "removes their metadata (including the GPS position).",
        "photo_ready": "Photo {n} ready ({size} kB)",
        "photo_remove": "Remove photo {n}",
        "photo_too_many": "At most 3 photos: the others are left out.",
        "photo_unreadable": "This image cannot be read.",
        "step_contact": "4. You (optional)",
        "name": "Name",
        "email": "Email",
        "phone": "Phone",
        "privacy": "Your name, email and phone are never published: they are only used to "
        "keep you posted about this report and to reach you if needed. They are erased some "
        "time after the problem is closed, or on request.",
        "check": "Continue",
        "send": "Send the report",
        "send_anyway": "No, it is another problem: send",
        "checking": "Looking for problems already reported around…",
        "sending": "Sending…",
        "sending_photo": "Sending photo {n}…",
        "duplicates_title": "It may already be reported",
        "duplicates_intro": "{count} open problem(s) of the same kind within {radius} m. If "
        'yours is listed, say "Me too": it counts as much as a report.',
        "me_too": "Me too",
        "me_too_done": "Thanks, noted: no need to send it again.",
        "distance": "{distance} m away",
        "need_place": "First say where the problem is (step 1).",
        "need_service": "Choose a category (step 2).",
        "need_answer": "Please answer: {question}",
        "done_title": "Thank you, your report is stored",
        "done_opened": "It opened problem no. {incident}, sent to the team in charge.",
        "done_attached": "The problem was already reported: yours joined problem no. {incident}.",
        "tracking": "Follow my report",
        "tracking_hint": "Keep this link private: it leads to your report.",
        "another": "Report another problem",
        "nearby": "See problems near me",
        "error": "Error",
        "colon": ": ",
        "language": "Language",
    },
}

_TRACKING: dict[str, dict[str, str]] = {
    "fr": {
        "title": "Mon signalement n° {report}",
        "private": "Page privée : seul ce lien y mène. Ne le partagez pas.",
        "status": "Statut",
        "open": "en cours",
        "closed": "clos",
        "category": "Catégorie",
        "sent": "Envoyé le",
        "updated": "Mis à jour le",
        "address": "Adresse",
        "description": "Description",
        "incident": "Problème n° {incident} : {reports} signalement(s), {supporters} soutien(s)",
        "photos": "Photos",
        "photo": "Photo {n} du signalement",
        "history": "Historique",
        "no_history": "Pas encore de changement de statut.",
        "follow_title": "Être prévenu(e) des changements",
        "email": "Votre e-mail",
        "follow": "Me tenir informé(e)",
        "unfollow": "Ne plus suivre",
        "followed": "Vous suivez ce problème.",
        "unfollowed": "Vous ne suivez plus ce problème.",
        "nearby": "Voir les problèmes autour",
        "another": "Signaler un autre problème",
        "error": "Erreur",
        "colon": "\u00a0: ",
        "language": "Langue",
        "err_email": "adresse e-mail invalide",
        "err_409": "ce problème est clos : s'il est revenu, signalez-le à nouveau",
        "err_500": "service momentanément indisponible, réessayez plus tard",
    },
    "en": {
        "title": "My report no. {report}",
        "private": "Private page: only this link leads here. Do not share it.",
        "status": "Status",
        "open": "open",
        "closed": "closed",
        "category": "Category",
        "sent": "Sent on",
        "updated": "Updated on",
        "address": "Address",
        "description": "Description",
        "incident": "Problem no. {incident}: {reports} report(s), {supporters} supporter(s)",
        "photos": "Photos",
        "photo": "Photo {n} of the report",
        "history": "History",
        "no_history": "No status change yet.",
        "follow_title": "Get told about changes",
        "email": "Your email",
        "follow": "Keep me posted",
        "unfollow": "Stop following",
        "followed": "You follow this problem.",
        "unfollowed": "You no longer follow this problem.",
        "nearby": "See problems around",
        "another": "Report another problem",
        "error": "Error",
        "colon": ": ",
        "language": "Language",
    },
}
LANGUAGES = tuple(_FORM)
_DATE = {"fr": "%d/%m/%Y à %H:%M", "en": "%Y-%m-%d at %H:%M"}


def _check(lang: str) -> None:
    if lang not in _FORM:
        raise ValueError(f"unsupported language {lang!r}; expected one of {sorted(_FORM)}")


def categories(city: City) -> list[dict[str, Any]]:
    """The city's services grouped as its service groups (in city.yaml's order), with
    their keywords and questions (the Open311 service definitions' attributes)."""
    groups: dict[str, dict[str, Any]] = {}
    for service in city.config.services:
        group = groups.setdefault(
            service.group,
            {"code": service.group, "name": city.groups[service.group].name, "services": []},
        )
        group["services"].append(
            {
                "code": service.code,
                "name": service.name,
                "keywords": service.keywords,
                "attributes": [a.model_dump() for a in service.attributes],
            }
        )
    return list(groups.values())


def render_signaler_page(
    *,
    city: City,
    lang: str,
    photos: PhotoRules,
    static_url: str = "/static",
    api_url: str = "/api/v1",
    open311_url: str = "/open311/v2",
    nearby_url: str = "/maps/nearby",
    background: gpd.GeoDataFrame | None = None,
    language_urls: Mapping[str, str] | None = None,
) -> str:
    """The report form in ``lang``, for ``city``."""
    _check(lang)
    labels = _FORM[lang]
    data: dict[str, Any] = {
        "api": api_url.rstrip("/"),
        "open311": open311_url.rstrip("/"),
        "lang": lang,
        "labels": labels,
        "groups": categories(city),
        "photos": asdict(photos),
        "radius_m": ALREADY_REPORTED_RADIUS_M,
        "background": outlines(background),
    }
    return render(
        "signaler.html",
        lang=lang,
        labels=labels,
        city_name=city.config.name,
        data=data,
        static_url=static_url.rstrip("/"),
        nearby_url=nearby_url,
        language_urls=language_urls or {},
        max_photos=photos.max_photos,
    )


def render_tracking_page(
    mine: MyReport,
    *,
    city_name: str,
    lang: str,
    timezone: str = "Europe/Paris",
    static_url: str = "/static",
    api_url: str = "/api/v1",
    media_url: str = "/open311/v2/media",
    report_url: str = "/signaler",
    nearby_url: str = "/maps/nearby",
    language_urls: Mapping[str, str] | None = None,
) -> str:
    """The sender's private page about their report, in ``lang``."""
    _check(lang)
    labels = _TRACKING[lang]
    tz = ZoneInfo(timezone)
    statuses = STATUS_LABELS[lang]

    def when(moment: Any) -> str:
        return str(moment.astimezone(tz).strftime(_DATE[lang]))

    data = {"api": api_url.rstrip("/"), "labels": labels, "incident_id": mine.incident_id}
    suffix = "" if lang == "fr" else f"?lang={lang}"
    return render(
        "suivi.html",
        lang=lang,
        labels=labels,
        city_name=city_name,
        title=labels["title"].format(report=mine.report_id),
        mine=mine,
        status_label=statuses[Status(mine.status)],
        status_colour=STATUS_COLOURS[Status(mine.status)],
        sent=when(mine.requested_at),
        updated=when(mine.updated_at),
        history=[
            {"at": when(n.at), "status": statuses[Status(n.status)], "note": n.note}
            for n in mine.history
        ],
        counts=labels["incident"].format(
            incident=mine.incident_id, reports=mine.report_count, supporters=mine.supporters
        ),
        photos=[
            {
                "full": f"{media_url.rstrip('/')}/{name}",
                "thumb": f"{media_url.rstrip('/')}/{name.removesuffix('.jpg')}.thumb.jpg",
                "alt": labels["photo"].format(n=n),
            }
            for n, name in enumerate(mine.photos, start=1)
        ],
        nearby_url=f"{nearby_url}?lat={mine.lat:.6f}&lon={mine.lon:.6f}"
        + ("" if lang == "fr" else f"&lang={lang}"),
        report_url=report_url + suffix,
        data=data,
        static_url=static_url.rstrip("/"),
        language_urls=language_urls or {},
    )
