"""Signed-in staff on the HTML pages: the session cookie, the page dependency, CSRF.

The stable API the staff pages build on (``/staff/``, the case page, statistics, rounds):

- ``StaffPage``: a dependency giving the signed-in ``Principal`` of an HTML page, or a
  303 redirect to ``/staff/login?next=<this page>`` when nobody is signed in;
- ``StaffUser``: the same for the JSON the pages fetch (401 instead of a redirect);
- ``CsrfChecked`` / ``check_csrf(request)``: every form post and ``fetch()`` write from a
  page sends the session's anti-forgery token (form field ``csrf_token`` or header
  ``X-CSRF-Token``), else 403;
- ``csrf_token(request)``: that token, for templates (``staff_base.html`` puts it in a
  ``<meta name="csrf-token">`` that ``staff.js`` reads).

The cookie is ``HttpOnly`` (no script reads it), ``SameSite=Lax`` (another site's form
posts without it) and ``Secure`` when the app is reached over https (``VOIRIE_PUBLIC_URL``
sets the scheme). Machines keep bearer tokens (``voirie.api.auth``); a session never
authenticates the ``/api/v1`` routes.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, Request, Response
from starlette.exceptions import HTTPException

from voirie.api.deps import PipelineDep
from voirie.errors import Forbidden, Unauthorized
from voirie.services.auth import Action, Principal
from voirie.services.oidc import OidcClient, OidcSettings
from voirie.services.staff_users import (
    SignedIn,
    StaffSettings,
    csrf_matches,
    session_principal,
)
from voirie.services.staff_users import csrf_token as session_csrf

SESSION_COOKIE = "voirie_staff"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_PATH = "/staff/login"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def install(
    app: FastAPI, settings: StaffSettings | None = None, oidc: OidcSettings | None = None
) -> None:
    """Keep the staff sign-in settings on the app (``VOIRIE_STAFF_*`` unless given) and
    the OpenID Connect client (``VOIRIE_OIDC_*`` unless given; off without an issuer)."""
    app.state.staff_settings = settings or StaffSettings()
    app.state.oidc = OidcClient(oidc or OidcSettings())


def staff_settings(request: Request) -> StaffSettings:
    """The app's staff sign-in settings."""
    settings: StaffSettings = request.app.state.staff_settings
    return settings


def signed_in(request: Request, pipeline: PipelineDep) -> Principal | None:
    """Who the request's session cookie belongs to, or None (read once per request)."""
    if hasattr(request.state, "staff_principal"):
        known: Principal | None = request.state.staff_principal
        return known
    session_id = request.cookies.get(SESSION_COOKIE, "")
    principal = (
        session_principal(
            pipeline.store, pipeline.city.jurisdiction_id, session_id, staff_settings(request)
        )
        if session_id
        else None
    )
    request.state.staff_principal = principal
    return principal


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a path of this app only (never another site)."""
    if not target:
        return "/staff/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/staff/"
    return target if "\\" not in target else "/staff/"


def login_url(request: Request) -> str:
    """The sign-in page, coming back to this request's page afterwards."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    root = request.scope.get("root_path", "")
    return f"{root}{LOGIN_PATH}?next={quote(here, safe='')}"


def _reader(principal: Principal | None) -> Principal | None:
    """The principal when their role may read incidents at all (else nobody)."""
    return principal if principal is not None and principal.may(Action.READ) else None


def staff_page(
    request: Request, principal: Annotated[Principal | None, Depends(signed_in)]
) -> Principal:
    """The signed-in staff member of an HTML page; a 303 to the sign-in page otherwise."""
    found = _reader(principal)
    if found is None:
        raise HTTPException(303, headers={"Location": login_url(request)})
    return found


def staff_user(principal: Annotated[Principal | None, Depends(signed_in)]) -> Principal:
    """The signed-in staff member of a page's JSON request; 401 otherwise."""
    found = _reader(principal)
    if found is None:
        raise Unauthorized("not signed in, or the session has expired: sign in at /staff/login")
    return found


StaffPage = Annotated[Principal, Depends(staff_page)]
StaffUser = Annotated[Principal, Depends(staff_user)]


def csrf_token(request: Request) -> str:
    """The anti-forgery token of the request's session ("" without a session)."""
    session_id = request.cookies.get(SESSION_COOKIE, "")
    return session_csrf(session_id) if session_id else ""


async def check_csrf(request: Request) -> None:
    """Refuse (403) a write whose anti-forgery token is missing or not the session's:
    from the ``X-CSRF-Token`` header, else the form field ``csrf_token``."""
    if request.method not in _UNSAFE:
        return
    session_id = request.cookies.get(SESSION_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not session_id or not sent or not csrf_matches(session_id, sent):
        raise Forbidden(
            "csrf_token: missing or wrong anti-forgery token; reload the page and try again",
            field=CSRF_FIELD,
        )


CsrfChecked = Depends(check_csrf)


def set_session_cookie(request: Request, response: Response, signed: SignedIn) -> None:
    """Put a new session in the response's cookie (Secure when reached over https)."""
    settings = staff_settings(request)
    response.set_cookie(
        SESSION_COOKIE,
        signed.session_id,
        max_age=settings.session_max_hours * 3600,
        path=request.scope.get("root_path", "") + "/",  # one city's, when several are served
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    """Remove the session cookie."""
    response.delete_cookie(
        SESSION_COOKIE,
        path=request.scope.get("root_path", "") + "/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
