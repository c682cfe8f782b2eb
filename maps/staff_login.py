"""The staff sign-in form (``templates/staff_login.html``) and the page that leaves for the
identity provider's sign-out (``templates/staff_logout.html``): their labels, French and
English."""

from __future__ import annotations

from urllib.parse import urlencode

from voirie.maps.html import render

LOGIN_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "app": "voirie — services techniques",
        "title": "Connexion des agents",
        "name": "Identifiant",
        "password": "Mot de passe",
        "submit": "Se connecter",
        "refused": "Identifiant ou mot de passe incorrect, ou compte verrouillé après trop "
        "d'essais : réessayez plus tard.",
        "language": "Langue",
        "provider": "Se connecter avec {provider}",
        "or": "ou",
    },
    "en": {
        "app": "voirie — technical services",
        "title": "Staff sign-in",
        "name": "User name",
        "password": "Password",
        "submit": "Sign in",
        "refused": "Wrong user name or password, or account locked after too many tries: "
        "try again later.",
        "language": "Language",
        "provider": "Sign in with {provider}",
        "or": "or",
    },
}


def render_login_page(
    *,
    lang: str,
    city_name: str,
    static_url: str,
    action: str,
    next_url: str,
    csrf: str,
    error: bool,
    name: str,
    language_urls: dict[str, str],
    error_text: str = "",
    provider: tuple[str, str] | None = None,
) -> str:
    """The sign-in form (``error``: say the last try was refused; ``error_text``: say
    something else instead; ``provider``: the OpenID Connect provider's name and sign-in
    URL, for its button)."""
    labels = LOGIN_LABELS[lang]
    return render(
        "staff_login.html",
        lang=lang,
        labels=labels,
        city_name=city_name,
        static_url=static_url,
        action=action,
        next=next_url,
        csrf_token=csrf,
        error=error_text or (labels["refused"] if error else ""),
        name=name,
        language_urls=language_urls,
        provider=(
            {
                "label": labels["provider"].format(provider=provider[0]),
                "url": f"{provider[1]}?{urlencode({'next': next_url, 'lang': lang})}",
            }
            if provider
            else None
        ),
    )


LOGOUT_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "app": "voirie — services techniques",
        "title": "Déconnexion",
        "done": "Vous êtes déconnecté(e) de voirie. Fin de votre session {provider}…",
        "go": "Continuer vers {provider}",
    },
    "en": {
        "app": "voirie — technical services",
        "title": "Sign-out",
        "done": "You are signed out of voirie. Ending your {provider} session…",
        "go": "Continue to {provider}",
    },
}


def render_logout_page(
    *, lang: str, city_name: str, static_url: str, provider: str, url: str
) -> str:
    """The page that says voirie's session is over and goes on at once to ``url``, the
    sign-out of the identity provider named ``provider``."""
    labels = {key: text.format(provider=provider) for key, text in LOGOUT_LABELS[lang].items()}
    return render(
        "staff_logout.html",
        lang=lang,
        labels=labels,
        city_name=city_name,
        static_url=static_url,
        url=url,
    )
