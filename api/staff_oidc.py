"""Staff sign-in through the city's OpenID Connect provider (``voirie.services.oidc``).

``/staff/oidc/login`` sends the browser to the provider with a fresh state, nonce and PKCE
challenge, kept in a sealed cookie of the ``/staff/oidc`` path (``SameSite=Lax``: it comes
back with the provider's redirect, a top-level navigation). ``/staff/oidc/callback``
checks them, exchanges the code, verifies the ID token and opens the same session cookie
as the password form, and keeps the ID token for the sign-out (``/staff/logout``, in
``voirie.api.staff_login``, ends the provider's session too). Every refusal is the sign-in
page with a French (or English) text saying what went wrong and what to do; the technical
reason goes to the log.
Both routes answer 404 while ``VOIRIE_OIDC_ISSUER`` is unset.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from voirie.api.deps import PipelineDep
from voirie.api.ogc import public_base
from voirie.api.staff_login import ID_TOKEN_COOKIE, login_page
from voirie.api.staff_session import safe_next, set_session_cookie, staff_settings
from voirie.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from voirie.services.oidc import OidcClient, ProviderError, account_name, open_session

router = APIRouter(tags=["staff pages"], include_in_schema=False)
log = logging.getLogger(__name__)

FLOW_COOKIE = "voirie_oidc"
"""The sealed sign-in under way (state, nonce, PKCE verifier, page to go back to)."""
CALLBACK_PATH = "/staff/oidc/callback"

REFUSALS: dict[str, dict[str, str]] = {
    "fr": {
        "unreachable": "Le fournisseur d'identité {provider} ne répond pas : réessayez dans "
        "un moment ou connectez-vous avec votre mot de passe voirie.",
        "flow": "La connexion avec {provider} a expiré ou n'a pas été commencée dans ce "
        "navigateur : cliquez à nouveau sur « Se connecter avec {provider} ».",
        "denied": "{provider} n'a pas confirmé votre identité ({reason}) : réessayez.",
        "token": "La réponse de {provider} n'a pas pu être vérifiée : réessayez ; si cela "
        "se reproduit, prévenez l'administrateur de voirie.",
        "unknown": "Votre compte {provider} ({name}) ne correspond à aucun compte voirie "
        "actif. Demandez à un administrateur de voirie de créer le compte « {name} » "
        "(voirie users add), puis reconnectez-vous.",
        "claim": "{provider} n'a pas transmis d'identifiant voirie utilisable (« {claim} » "
        "absent ou non vérifié) : demandez à l'administrateur de voirie de vérifier la "
        "configuration.",
    },
    "en": {
        "unreachable": "The identity provider {provider} does not answer: try again in a "
        "moment or sign in with your voirie password.",
        "flow": "The sign-in with {provider} has expired or was not started in this "
        "browser: click “Sign in with {provider}” again.",
        "denied": "{provider} did not confirm who you are ({reason}): try again.",
        "token": "The answer of {provider} could not be verified: try again; if it happens "
        "again, tell voirie's administrator.",
        "unknown": "Your {provider} account ({name}) matches no active voirie account. Ask "
        "a voirie administrator to create the account “{name}” (voirie users add), then "
        "sign in again.",
        "claim": "{provider} did not send a usable voirie user name (“{claim}” missing or "
        "not verified): ask voirie's administrator to check the configuration.",
    },
}


def _client(request: Request) -> OidcClient:
    """The app's OpenID Connect client; 404 when sign-in by a provider is not configured."""
    client: OidcClient = request.app.state.oidc
    if not client.settings.enabled:
        raise NotFound("OpenID Connect sign-in is not configured (VOIRIE_OIDC_ISSUER)")
    return client


def _redirect_uri(request: Request) -> str:
    """The callback URL registered at the provider (on ``VOIRIE_PUBLIC_URL`` when set)."""
    return f"{public_base(request)}{CALLBACK_PATH}"


def _refused(
    request: Request, client: OidcClient, lang: str, why: str, status: int, **words: str
) -> HTMLResponse:
    text = REFUSALS[lang][why].format(provider=client.settings.label, **words)
    page = login_page(request, lang, "/staff/", status_code=status, error_text=text)
    page.delete_cookie(FLOW_COOKIE, path=f"{request.scope.get('root_path', '')}/staff/oidc")
    return page


@router.get("/staff/oidc/login", response_model=None)
def oidc_login(
    request: Request,
    lang: Annotated[Literal["fr", "en"], Query(description="page language")] = "fr",
    next: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    """Go to the provider's sign-in page, keeping the flow in a sealed cookie."""
    client = _client(request)
    try:
        url, flow = client.start(_redirect_uri(request), safe_next(next), lang)
    except ProviderError as error:
        log.warning("OpenID Connect provider unreachable: %s", error)
        return _refused(request, client, lang, "unreachable", 502)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        FLOW_COOKIE,
        client.seal(flow),
        max_age=600,
        path=f"{request.scope.get('root_path', '')}/staff/oidc",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.get(CALLBACK_PATH, response_model=None)
def oidc_callback(
    request: Request,
    pipeline: PipelineDep,
    state: Annotated[str, Query(max_length=200)] = "",
    code: Annotated[str, Query(max_length=2000)] = "",
    error: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """Back from the provider: check the flow, verify the ID token, open the session."""
    client = _client(request)
    try:
        flow = client.unseal(request.cookies.get(FLOW_COOKIE, ""))
    except InvalidInput as refused:
        log.info("OpenID Connect callback refused: %s", refused)
        return _refused(request, client, "fr", "flow", 400)
    lang = flow.lang if flow.lang in REFUSALS else "fr"
    if error or not code:
        log.info("OpenID Connect provider answered error=%r", error)
        return _refused(request, client, lang, "denied", 401, reason=error or "no code")
    try:
        identity = client.finish(flow, state, code, _redirect_uri(request))
        name = account_name(identity.claims, client.settings)
    except InvalidInput as refused:
        log.info("OpenID Connect callback refused: %s", refused)
        return _refused(request, client, lang, "flow", 400)
    except ProviderError as failed:
        log.warning("OpenID Connect provider failed: %s", failed)
        return _refused(request, client, lang, "unreachable", 502)
    except Unauthorized as refused:
        log.warning("OpenID Connect ID token refused: %s", refused)
        return _refused(request, client, lang, "token", 401)
    except Forbidden as refused:
        log.warning("OpenID Connect claims refused: %s", refused)
        return _refused(request, client, lang, "claim", 403, claim=client.settings.user_claim)
    jurisdiction = pipeline.city.jurisdiction_id
    try:
        signed = open_session(
            pipeline.store,
            jurisdiction,
            name,
            staff_settings(request),
            create_role=client.settings.create_role,
        )
    except Forbidden:
        log.info("OpenID Connect sign-in of %r refused: no enabled staff account", name)
        return _refused(request, client, lang, "unknown", 403, name=name)
    root = request.scope.get("root_path", "")
    response = RedirectResponse(f"{root}{flow.next}", status_code=303)
    set_session_cookie(request, response, signed)
    response.delete_cookie(FLOW_COOKIE, path=f"{root}/staff/oidc")
    # Sent back only to the sign-out, which hands it to the provider (id_token_hint).
    response.set_cookie(
        ID_TOKEN_COOKIE,
        client.seal_id_token(identity.id_token, signed.session_id),
        max_age=staff_settings(request).session_max_hours * 3600,
        path=f"{root}/staff/logout",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response
