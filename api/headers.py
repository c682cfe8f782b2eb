"""Security headers on every response, and a Content-Security-Policy on every HTML page.

Every answer says ``X-Content-Type-Options: nosniff`` (a citizen's text or photo is never
run as a script or a page), may only be framed by the app's own pages
(``frame-ancestors 'self'`` and ``X-Frame-Options``) and sends only the origin to other
sites (``Referrer-Policy``). Non-HTML answers get ``default-src 'none'``: a JSON, CSV or
photo opened in a browser runs nothing.

HTML pages get a policy that lets them work offline and nothing else: scripts, styles,
images, fonts and data from the app only; an inline script runs only if its SHA-256 is in
the policy, computed here from the page as sent (Swagger UI's starter script), so no
template carries a nonce and no ``'unsafe-inline'`` is needed for scripts. Styles keep
``'unsafe-inline'``: the dispatch legend colours its swatches with ``style`` attributes and
ReDoc injects its ``<style>`` elements at run time; a style cannot run code.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}
NOT_A_PAGE = "default-src 'none'; frame-ancestors 'self'"
PAGE = (
    "default-src 'self'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'self'"
)
_SCRIPT = re.compile(rb"<script([^>]*)>(.*?)</script>", re.DOTALL | re.IGNORECASE)
_TYPE = re.compile(rb"""\stype\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)
_RUNS = (b"module", b"text/javascript", b"application/javascript")


def _runs_inline(attributes: bytes) -> bool:
    """Whether a script element with these attributes runs its own text (no ``src``, and
    no type or a JavaScript one: a JSON data block does not run and needs no hash)."""
    if re.search(rb"\ssrc\s*=", attributes, re.IGNORECASE):
        return False
    kind = _TYPE.search(attributes)
    return kind is None or kind.group(1).lower() in _RUNS


def page_policy(body: bytes) -> str:
    """The CSP of an HTML page: the common policy plus the hash of each inline script."""
    hashes = sorted(
        {
            "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
            for attributes, script in _SCRIPT.findall(body)
            if _runs_inline(attributes)
        }
    )
    return PAGE.format(hashes="".join(" " + h for h in hashes))


_ALWAYS = tuple((name.lower().encode(), value.encode()) for name, value in ALWAYS.items())
_ALWAYS_NAMES = frozenset(name for name, _ in _ALWAYS)
_CSP = b"content-security-policy"
_NOT_A_PAGE = (_CSP, NOT_A_PAGE.encode())


def secure(start: Message) -> bool:
    """Put the security headers on an answer's start (those its handler did not set);
    True when it starts an HTML page, whose CSP waits for its body (``secure_page``)."""
    headers = start.get("headers", [])
    present: set[bytes] = set()
    content_type: bytes | None = None
    for name, value in headers:
        lower = name.lower()
        if lower in _ALWAYS_NAMES:
            present.add(lower)
        elif lower == b"content-type" and content_type is None:
            content_type = value
    page = content_type is not None and content_type.startswith(b"text/html")
    added = [header for header in _ALWAYS if header[0] not in present]
    if not page:
        added.append(_NOT_A_PAGE)
    start["headers"] = [*headers, *added]
    return page


def secure_page(start: Message, page: bytes) -> None:
    """Add the CSP of a whole HTML page to its start. A second CSP header adds to one the
    route set (ReDoc's): both are enforced."""
    start["headers"] = [*start["headers"], (_CSP, page_policy(page).encode())]


def securing(send: Send, started: Callable[[Message], None] | None = None) -> Send:
    """``send`` with the security headers on the answer (``secure``): an HTML page is held
    until its body is whole, to hash its inline scripts into its CSP (``secure_page``).
    ``started``, if given, sees each answer's start just before it is sent."""
    page: Message | None = None
    body: list[bytes] = []

    async def secured(message: Message) -> None:
        nonlocal page
        if message["type"] == "http.response.start":
            if secure(message):
                page = message  # sent with its CSP once the page is whole
                return
            if started:
                started(message)
            await send(message)
            return
        if page is None or message["type"] != "http.response.body":
            await send(message)
            return
        body.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        whole = b"".join(body)
        secure_page(page, whole)
        if started:
            started(page)
        await send(page)
        await send({"type": "http.response.body", "body": whole})

    return secured


class SecurityHeaders:
    """Add the security headers to every response (``securing``; the one-city app does
    it in ``voirie.api.edge.Edge``; the dispatcher of several cities, here)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, securing(send))
