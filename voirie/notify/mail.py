"""Readable emails: an outbox message rendered as text and HTML (multipart/alternative).

Citizens get, in their language (the one they used, else the city's): the confirmation
of their address, "report received" with the private tracking link, status changes, and
"resolved" with the "is it fixed?" question (Oui / Non; Non reopens the incident, as in
Signalen's satisfaction step). Every email to a citizen carries an unsubscribe link for
that incident and one to stop everything (also as ``List-Unsubscribe``). Teams get their
notices in the city's language with the link to the staff case page. Links are absolute,
built on ``VOIRIE_PUBLIC_URL``. Templates are in ``voirie/notify/templates`` (Jinja, HTML
escaped); webhooks keep the JSON payload (``voirie.notify.worker``).
"""

from __future__ import annotations

import json
import math
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError

from voirie.notify.consent import CONFIRMATION

LANGUAGES = ("fr", "en")
RESOLVED = "resolved"
_TEMPLATES = Path(__file__).parent / "templates"
_HTML = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=True, undefined=StrictUndefined)
_TEXT = Environment(
    loader=FileSystemLoader(_TEMPLATES),
    autoescape=False,  # the plain text part: nothing is interpreted as markup
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)

STATUS_WORDS: dict[str, dict[str, str]] = {
    "fr": {
        "new": "nouveau",
        "acknowledged": "pris en compte",
        "scheduled": "programmé",
        "in_progress": "en cours",
        "resolved": "résolu",
        "closed": "clos",
        "duplicate": "doublon",
        "rejected": "rejeté",
    },
    "en": {
        "new": "new",
        "acknowledged": "acknowledged",
        "scheduled": "scheduled",
        "in_progress": "in progress",
        "resolved": "resolved",
        "closed": "closed",
        "duplicate": "duplicate",
        "rejected": "rejected",
    },
}

WORDS: dict[str, dict[str, str]] = {
    "fr": {
        "colon": " :",
        "confirm_subject": "Confirmez votre adresse e-mail",
        "confirm_intro": "Cette adresse a été donnée à {city} pour recevoir des nouvelles "
        "d'un signalement. Rien ne vous sera envoyé avant que vous la confirmiez.",
        "confirm_button": "Confirmer mon adresse",
        "confirm_ignore": "Si ce n'est pas vous, ignorez ce message : vous ne recevrez rien.",
        "received_subject": "Votre signalement n° {report} est bien reçu",
        "received_intro": "Merci. Votre signalement a été enregistré (incident n° {incident}) "
        "et transmis au service compétent.",
        "received_link": "Suivre mon signalement",
        "received_keep": "Ce lien est personnel : gardez-le pour vous.",
        "changed_subject": "Incident n° {incident} : {status}",
        "changed_intro": "L'incident n° {incident} que vous suivez est passé de « {previous} » "
        "à « {status} ».",
        "resolved_subject": "Incident n° {incident} résolu : est-ce réparé ?",
        "resolved_intro": "Les services de {city} indiquent que le problème de l'incident "
        "n° {incident} est résolu.",
        "resolved_question": "Est-ce bien réparé ?",
        "yes": "Oui",
        "no": "Non",
        "resolved_no_reopens": "Si vous répondez « Non », l'incident est rouvert et l'équipe "
        "prévenue.",
        "stop_one": "Ne plus recevoir d'e-mails sur cet incident",
        "stop_all": "Ne plus rien recevoir de {city}",
        "team_subject": "{what} : incident n° {incident}",
        "case_link": "Ouvrir le dossier",
        "kind_assigned": "Nouvel incident affecté",
        "kind_status_changed": "Changement de statut",
        "kind_reassigned": "Incident réaffecté",
        "kind_escalated": "Incident en retard",
        "kind_reopened": "Incident rouvert par un citoyen",
        "kind_other": "Notification",
        "fact_service": "Catégorie",
        "fact_priority": "Priorité",
        "fact_due_at": "Échéance",
        "fact_status": "Statut",
        "fact_previous_status": "Statut précédent",
        "fact_reason": "Motif",
        "fact_location": "Position (lon, lat)",
    },
    "en": {
        "colon": ":",
        "confirm_subject": "Confirm your email address",
        "confirm_intro": "This address was given to {city} to receive news of a report. "
        "Nothing will be sent to you before you confirm it.",
        "confirm_button": "Confirm my address",
        "confirm_ignore": "If this was not you, ignore this message: you will receive nothing.",
        "received_subject": "Your report no. {report} has been received",
        "received_intro": "Thank you. Your report has been recorded (incident no. {incident}) "
        "and sent to the team in charge.",
        "received_link": "Follow my report",
        "received_keep": "This link is personal: keep it to yourself.",
        "changed_subject": "Incident no. {incident}: {status}",
        "changed_intro": "Incident no. {incident}, which you follow, went from “{previous}” "
        "to “{status}”.",
        "resolved_subject": "Incident no. {incident} resolved: is it fixed?",
        "resolved_intro": "The services of {city} say the problem of incident no. {incident} "
        "is resolved.",
        "resolved_question": "Is it really fixed?",
        "yes": "Yes",
        "no": "No",
        "resolved_no_reopens": "If you answer “No”, the incident is reopened and the team told.",
        "stop_one": "Stop emails about this incident",
        "stop_all": "Stop every email from {city}",
        "team_subject": "{what}: incident no. {incident}",
        "case_link": "Open the case",
        "kind_assigned": "New incident assigned",
        "kind_status_changed": "Status changed",
        "kind_reassigned": "Incident reassigned",
        "kind_escalated": "Incident overdue",
        "kind_reopened": "Incident reopened by a citizen",
        "kind_other": "Notification",
        "fact_service": "Category",
        "fact_priority": "Priority",
        "fact_due_at": "Due",
        "fact_status": "Status",
        "fact_previous_status": "Previous status",
        "fact_reason": "Reason",
        "fact_location": "Location (lon, lat)",
    },
}
_STATUS_FACTS = ("status", "previous_status")


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


class ComposeError(ValueError):
    """An outbox message that cannot be written as an email (a payload missing a field)."""


class Composer:
    """Renders the outbox's emails for one city, its links on ``public_url``."""

    def __init__(self, city_name: str, locale: str, public_url: str, mail_from: str) -> None:
        self.city_name = city_name
        self.locale = locale if locale in LANGUAGES else LANGUAGES[0]
        self.base = public_url.rstrip("/")
        self.mail_from = mail_from

    def message(self, row: Any) -> EmailMessage:
        """The email of one outbox row (``channel`` email): text and HTML alternatives;
        ``ComposeError`` when its payload lacks what its template needs."""
        try:
            return self._message(row)
        except (KeyError, ValueError, TemplateError) as exc:
            raise ComposeError(f"cannot write the {row.kind} email: {exc!r}") from exc

    def _message(self, row: Any) -> EmailMessage:
        payload: dict[str, Any] = json.loads(str(row.payload))
        citizen = _present(payload.get("link_token"))
        language = str(payload.get("language") or self.locale)
        lang = language if language in LANGUAGES else self.locale
        words = {k: v.format_map(_Blank(city=self.city_name)) for k, v in WORDS[lang].items()}
        context: dict[str, Any] = {
            "lang": lang,
            "city": self.city_name,
            "w": words,
            "unsubscribe_one": None,
            "unsubscribe_all": None,
        }
        context.update(self._unsubscribe(payload, lang) if citizen else {})
        template, subject = self._content(payload, lang, words, context, citizen)
        context["subject"] = subject
        message = EmailMessage()
        message["From"] = self.mail_from
        message["To"] = str(row.target)
        message["Subject"] = subject
        if context.get("unsubscribe_all"):
            message["List-Unsubscribe"] = f"<{context['unsubscribe_all']}>"
        message.set_content(_TEXT.get_template(f"{template}.txt").render(context))
        message.add_alternative(
            _HTML.get_template(f"{template}.html").render(context), subtype="html"
        )
        message["Content-Language"] = lang  # after the content, which resets Content-*
        return message

    def _link(self, path: str, lang: str, **query: object) -> str:
        """An absolute link to a page of the app, in ``lang``."""
        params = {**query, **({"lang": lang} if lang != LANGUAGES[0] else {})}
        search = "&".join(f"{k}={quote(str(v))}" for k, v in params.items())
        return f"{self.base}{path}" + (f"?{search}" if search else "")

    def _unsubscribe(self, payload: dict[str, Any], lang: str) -> dict[str, str]:
        link = quote(str(payload["link_token"]))
        links = {"unsubscribe_all": self._link(f"/courriel/{link}/desabonner", lang)}
        if payload.get("entity") == "incident":
            links["unsubscribe_one"] = self._link(
                f"/courriel/{link}/desabonner", lang, incident_id=payload["entity_id"]
            )
        return links

    def _content(
        self,
        payload: dict[str, Any],
        lang: str,
        words: dict[str, str],
        context: dict[str, Any],
        citizen: bool,
    ) -> tuple[str, str]:
        """The template of a message and its subject; fills ``context`` with its values."""
        kind = str(payload["kind"])
        entity_id = payload["entity_id"]
        statuses = STATUS_WORDS[lang]
        if kind == CONFIRMATION:
            token = quote(str(payload["confirm_token"]))
            context["confirm_url"] = self._link(f"/courriel/confirmer/{token}", lang)
            return "confirmation", words["confirm_subject"]
        if not citizen:
            return self._team(payload, lang, words, context)
        if kind == "report_received":
            incident = payload.get("incident_id")
            context["tracking_url"] = str(payload["tracking_url"]) + (
                "?lang=en" if lang == "en" else ""
            )
            words["received_intro"] = words["received_intro"].format(incident=incident)
            return "report_received", words["received_subject"].format(report=entity_id)
        status = statuses.get(str(payload.get("status")), str(payload.get("status") or ""))
        previous = statuses.get(str(payload.get("previous_status")), "")
        values = {"incident": entity_id, "status": status, "previous": previous}
        if payload.get("status") == RESOLVED:
            link = quote(str(payload["link_token"]))
            path = f"/courriel/{link}/resolu/{entity_id}"
            context["answer_yes"] = self._link(path, lang, reponse="oui")
            context["answer_no"] = self._link(path, lang, reponse="non")
            words["resolved_intro"] = words["resolved_intro"].format_map(values)
            return "resolved", words["resolved_subject"].format_map(values)
        words["changed_intro"] = words["changed_intro"].format_map(values)
        return "status_changed", words["changed_subject"].format_map(values)

    def _team(
        self, payload: dict[str, Any], lang: str, words: dict[str, str], context: dict[str, Any]
    ) -> tuple[str, str]:
        """A team's notice: what happened, the public and internal facts, the case link."""
        kind = str(payload["kind"])
        what = words.get(f"kind_{kind}", words["kind_other"])
        incident = payload["entity_id"]
        statuses = STATUS_WORDS[lang]
        facts = []
        if _present(payload.get("service_name") or payload.get("service_code")):
            facts.append(
                (words["fact_service"], payload.get("service_name") or payload["service_code"])
            )
        for name in ("previous_status", "status", "priority", "due_at", "reason"):
            value = payload.get(name)
            if _present(value) and value != "":
                shown = statuses.get(str(value), str(value)) if name in _STATUS_FACTS else value
                facts.append((words[f"fact_{name}"], shown))
        if _present(payload.get("lon")) and _present(payload.get("lat")):
            facts.append((words["fact_location"], f"{payload['lon']:.6f}, {payload['lat']:.6f}"))
        context["facts"] = facts
        context["case_url"] = self._link(f"/staff/incidents/{incident}", lang)
        return "team", f"[{self.city_name}] " + words["team_subject"].format(
            what=what, incident=incident
        )


class _Blank(dict[str, str]):
    """Format values where the missing names stay as they are, filled in later."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
