"""Staff sign-in and sign-out: the form at ``/staff/login`` and the session it opens.

The form is plain HTML (it works without scripts), French first (``?lang=en``). It is
protected against login CSRF by a double submit: a random value in a cookie of the form's
path and the same value in the form. A refusal says the same words whatever the reason
(``voirie.services.staff_users``) and answers 401; a success sets the session cookie
(``voirie.api.staff_session``) and goes back to the page asked for (this app's pages only).
"""

from __future__ import annotations

import secrets
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from voirie.api.deps import PipelineDep
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
from voirie.maps.staff_login import render_login_page
from voirie.services.oidc import OidcSettings
from voirie.services.staff_users import sign_in, sign_out

router = APIRouter(tags=["staff pages"], include_in_schema=False)

Language = Annotated[Literal["fr", "en"], Query(description="page language")]
LOGIN_COOKIE = "voirie_login"
"""A random value set with the sign-in form and sent back in it (double submit): another
site cannot post a sign-in in someone's browser (login CSRF)."""


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
    lang: Language = "fr",
    next: Annotated[str | None, Query(max_length=2000)] = None,
) -> HTMLResponse:
    """The sign-in form."""
    return login_page(request, lang, safe_next(next))


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


@router.post("/staff/logout", dependencies=[CsrfChecked])
def logout(request: Request, pipeline: PipelineDep) -> RedirectResponse:
    """End the session and go back to the sign-in form."""
    session_id = request.cookies.get(SESSION_COOKIE, "")
    if session_id:
        sign_out(pipeline.store, pipeline.city.jurisdiction_id, session_id)
    root = request.scope.get("root_path", "")
    response = RedirectResponse(f"{root}/staff/login", status_code=303)
    clear_session_cookie(request, response)
    return response
