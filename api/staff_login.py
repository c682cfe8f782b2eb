"""Staff sign-in and sign-out: the form at ``/staff/login`` and the session it opens.

The form is plain HTML (it works without scripts), French first (``?lang=en``). It is
protected against login CSRF by a double submit: a random value in a cookie of the form's
path and the same value in the form. A refusal says the same words whatever the reason
(``voirie.services.staff_users``) and answers 401; a success sets the session cookie
(``voirie.api.staff_session``) and goes back to the page asked for (this app's pages only).

Sign-out ends voirie's session; when that session was opened through the city's OpenID
Connect provider and the provider has an ``end_session_endpoint``, it then sends the browser
there (RP-Initiated Logout 1.0, ``voirie.services.oidc``), which comes back to this form:
otherwise a shared computer would sign the next person straight back in at the provider.
"""

from __future__ import annotations

import logging
import secrets
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from voirie.api.deps import PipelineDep
from voirie.api.ogc import public_base
from voirie.api.pages import PAGE_HEADERS, language_urls
from voirie.api.staff_session import (
    SESSION_COOKIE,
    CsrfChecked,
    clear_session_cookie,
    safe_next,
    set_session_cookie,
    staff_settings,
)
from voirie.errors import Unauthorized
from voirie.maps.staff_login import render_login_page, render_logout_page
from voirie.services.oidc import OidcClient, OidcSettings, ProviderError
from voirie.services.staff_users import sign_in, sign_out

router = APIRouter(tags=["staff pages"], include_in_schema=False)
log = logging.getLogger(__name__)

LOGIN_COOKIE = "voirie_login"
"""A random value set with the sign-in form and sent back in it (double submit): another
site cannot post a sign-in in someone's browser (login CSRF)."""
ID_TOKEN_COOKIE = "voirie_oidc_session"
"""The ID token of a session opened through the OpenID Connect provider, sealed and bound
to that session, sent only to the sign-out (the session table has no column for it)."""


def login_page(
    request: Request,
    lang: str,
    next_url: str,
    *,
    error: bool = False,
    name: str = "",
    status_code: int = 200,
    error_text: str = "",
) -> HTMLResponse:
    """The sign-in form, with a fresh anti-forgery cookie (``error_text``: a refusal of
    the OpenID Connect sign-in to show instead of the password one's)."""
    token = secrets.token_urlsafe(24)
    root = request.scope.get("root_path", "")
    oidc: OidcSettings = request.app.state.oidc.settings
    page = render_login_page(
        lang=lang,
        city_name=request.app.state.pipeline.city.config.name,
        static_url=f"{root}/static",
        action=f"{root}/staff/login",
        next_url=next_url,
        csrf=token,
        error=error,
        name=name,
        language_urls=language_urls(request),
        error_text=error_text,
        provider=(oidc.label, f"{root}/staff/oidc/login") if oidc.enabled else None,
    )
    response = HTMLResponse(page, status_code=status_code, headers=PAGE_HEADERS)
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        path=f"{root}/staff/login",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/staff/login", response_class=HTMLResponse)
def login_form(
    request: Request,
    lang: Annotated[Literal["fr", "en"] | None, Query(description="page language")] = None,
    next: Annotated[str | None, Query(max_length=2000)] = None,
    state: Annotated[
        str, Query(max_length=2000, description="back from the provider's sign-out")
    ] = "",
) -> HTMLResponse:
    """The sign-in form (after a sign-out at the provider, in the language it started in)."""
    oidc: OidcClient = request.app.state.oidc
    back = oidc.logout_language(state) if oidc.settings.enabled else None
    return login_page(request, lang or (back if back == "en" else "fr"), safe_next(next))


@router.post("/staff/login", response_model=None)
def login(
    request: Request,
    pipeline: PipelineDep,
    name: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/staff/",
    lang: Annotated[Literal["fr", "en"], Form()] = "fr",
) -> Response:
    """Check a name and password; on success a session cookie and back to ``next``."""
    target = safe_next(next)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not secrets.compare_digest(expected, csrf_token):
        return login_page(request, lang, target, error=True, name=name, status_code=403)
    try:
        signed = sign_in(
            pipeline.store,
            pipeline.city.jurisdiction_id,
            name,
            password,
            staff_settings(request),
        )
    except Unauthorized:
        return login_page(request, lang, target, error=True, name=name, status_code=401)
    root = request.scope.get("root_path", "")
    response = RedirectResponse(f"{root}{target}", status_code=303)
    set_session_cookie(request, response, signed)
    response.delete_cookie(LOGIN_COOKIE, path=f"{root}/staff/login")
    return response


@router.post("/staff/logout", dependencies=[CsrfChecked], response_model=None)
def logout(
    request: Request,
    pipeline: PipelineDep,
    lang: Annotated[Literal["fr", "en"], Form()] = "fr",
) -> Response:
    """End the session and go back to the sign-in form, by way of the provider's sign-out
    when the session came from it."""
    session_id = request.cookies.get(SESSION_COOKIE, "")
    if session_id:
        sign_out(pipeline.store, pipeline.city.jurisdiction_id, session_id)
    root = request.scope.get("root_path", "")
    provider_url = _provider_logout(request, session_id, lang)
    response: Response
    if provider_url is None:
        response = RedirectResponse(f"{root}/staff/login", status_code=303)
    else:
        page = render_logout_page(
            lang=lang,
            city_name=pipeline.city.config.name,
            static_url=f"{root}/static",
            provider=request.app.state.oidc.settings.label,
            url=provider_url,
        )
        response = HTMLResponse(page, headers=PAGE_HEADERS)
    clear_session_cookie(request, response)
    response.delete_cookie(
        ID_TOKEN_COOKIE,
        path=f"{root}/staff/logout",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _provider_logout(request: Request, session_id: str, lang: str) -> str | None:
    """The provider's sign-out URL for the session ``session_id`` (None for a password
    session, or when the provider offers no sign-out or cannot be reached: voirie's session
    has ended anyway, and the log says why the provider's has not)."""
    oidc: OidcClient = request.app.state.oidc
    if not oidc.settings.enabled:
        return None
    id_token = oidc.unseal_id_token(request.cookies.get(ID_TOKEN_COOKIE, ""), session_id)
    if id_token is None:
        return None
    try:
        url = oidc.end_session_url(id_token, f"{public_base(request)}/staff/login", lang)
    except ProviderError as error:
        log.warning("OpenID Connect provider unreachable at sign-out: %s", error)
        return None
    if url is None:
        log.info("OpenID Connect provider has no end_session_endpoint: its session stays")
    return url
