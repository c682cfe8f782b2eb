"""The staff pages' shared frame: ``templates/staff_base.html`` and its context.

Every staff page (queue, case page, statistics, round sheet) extends ``staff_base.html``
and is rendered with :func:`staff_context` plus its own variables. The frame carries the
navigation (queue, map, statistics, round, sign-out), the signed-in name, the language
links and the session's anti-forgery token in ``<meta name="csrf-token">``, which
``static/staff.js`` (``VoirieStaff.send``) sends with every write. French first,
English with ``?lang=en``.
"""

from __future__ import annotations

from typing import Any

from voirie.maps.html import render

LANGUAGES = ("fr", "en")
NAV: tuple[tuple[str, str], ...] = (
    ("queue", "/staff/"),
    ("map", "/maps/dispatch"),
    ("stats", "/staff/stats"),
    ("round", "/staff/tournee"),
    ("rules", "/staff/regles"),
)
"""The navigation: (key of the label in ``BASE_LABELS``, path under the app's root)."""
BASE_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "app": "voirie — services techniques",
        "nav": "Navigation",
        "queue": "File d'attente",
        "map": "Carte",
        "stats": "Statistiques",
        "round": "Tournée",
        "rules": "Règles apprises",
        "logout": "Déconnexion",
        "signed_in": "Connecté·e : {name} ({role})",
        "language": "Langue",
        "skip": "Aller au contenu",
    },
    "en": {
        "app": "voirie — technical services",
        "nav": "Navigation",
        "queue": "Queue",
        "map": "Map",
        "stats": "Statistics",
        "round": "Round",
        "rules": "Learned rules",
        "logout": "Sign out",
        "signed_in": "Signed in: {name} ({role})",
        "language": "Language",
        "skip": "Skip to content",
    },
}


def staff_context(
    *,
    lang: str,
    user: str,
    role: str,
    csrf_token: str,
    root: str,
    active: str,
    language_urls: dict[str, str],
) -> dict[str, Any]:
    """The variables ``staff_base.html`` needs: ``active`` is the ``NAV`` key of the page
    (or "" for none); ``root`` the app's root path (behind a proxy prefix)."""
    labels = BASE_LABELS[lang]
    return {
        "lang": lang,
        "base": labels,
        "signed_in": labels["signed_in"].format(name=user, role=role),
        "csrf_token": csrf_token,
        "root": root,
        "static_url": f"{root}/static",
        "nav": [(key, labels[key], f"{root}{path}") for key, path in NAV],
        "active": active,
        "logout_url": f"{root}/staff/logout",
        "language_urls": language_urls,
    }


def render_staff_page(template: str, context: dict[str, Any], **page: Any) -> str:
    """Render a staff page template (extending ``staff_base.html``) with the frame's
    context and its own variables."""
    return render(template, **context, **page)
