"""The small pages the links of citizens' emails open: confirm an address, stop emails,
answer "is it fixed?". Each asks with a button (a POST) before acting, so a mail scanner
that opens links acts on nothing; in French, English with ``?lang=en``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from voirie.maps.html import render

LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "language": "Langue",
        "confirm_title": "Confirmer votre adresse e-mail",
        "confirm_ask": "Confirmez cette adresse pour recevoir les nouvelles des signalements "
        "que vous suivez.",
        "confirm_button": "Confirmer mon adresse",
        "confirmed": "Merci, votre adresse est confirmée : vous recevrez les nouvelles "
        "des signalements que vous suivez.",
        "stop_title": "Ne plus recevoir d'e-mails",
        "stop_ask": "Quels e-mails ne voulez-vous plus recevoir ?",
        "stop_one": "Plus d'e-mails sur cet incident",
        "stop_all": "Plus aucun e-mail",
        "stopped_one": "C'est fait : vous ne recevrez plus d'e-mails sur l'incident n° {incident}.",
        "stopped_all": "C'est fait : vous ne recevrez plus aucun e-mail de notre part.",
        "answer_title": "Est-ce réparé ?",
        "answer_ask": "Les services indiquent que l'incident n° {incident} est résolu. "
        "Est-ce bien réparé ?",
        "yes": "Oui, c'est réparé",
        "no": "Non, ce n'est pas réparé",
        "answered_yes": "Merci pour votre réponse.",
        "answered_no": "Merci : l'incident n° {incident} est rouvert et l'équipe prévenue.",
    },
    "en": {
        "language": "Language",
        "confirm_title": "Confirm your email address",
        "confirm_ask": "Confirm this address to receive news of the reports you follow.",
        "confirm_button": "Confirm my address",
        "confirmed": "Thank you, your address is confirmed: you will receive news of the "
        "reports you follow.",
        "stop_title": "Stop emails",
        "stop_ask": "Which emails do you no longer want?",
        "stop_one": "No more emails about this incident",
        "stop_all": "No email at all",
        "stopped_one": "Done: you will get no more emails about incident no. {incident}.",
        "stopped_all": "Done: you will get no more emails from us.",
        "answer_title": "Is it fixed?",
        "answer_ask": "The services say incident no. {incident} is resolved. Is it really fixed?",
        "yes": "Yes, it is fixed",
        "no": "No, it is not fixed",
        "answered_yes": "Thank you for your answer.",
        "answered_no": "Thank you: incident no. {incident} is reopened and the team told.",
    },
}


@dataclass(frozen=True)
class Choice:
    """One button of the page: the form field it sends, and hidden fields."""

    label: str
    name: str
    value: str
    fields: Mapping[str, str] = field(default_factory=dict)


def render_consent_page(
    *,
    city_name: str,
    lang: str,
    title: str,
    message: str,
    action: str = "",
    choices: Sequence[Choice] = (),
    static_url: str = "/static",
    language_urls: Mapping[str, str] | None = None,
) -> str:
    """A page with a message and, when something is asked, one button per answer."""
    return render(
        "courriel.html",
        lang=lang,
        labels=LABELS[lang],
        city_name=city_name,
        title=title,
        message=message,
        action=action,
        choices=choices,
        static_url=static_url,
        language_urls=language_urls or {},
    )
