"""``VOIRIE_PUBLIC_URL``: every absolute URL on the configured address, never the Host header.

A client chooses the ``Host`` header it sends; a link built on it (a QGIS project, a
TileJSON, an OGC document, a redirect, an Open311 ``media_url``) points wherever the
client said, and a cache in front of the server may hand that link to everyone (cache
poisoning). With ``VOIRIE_PUBLIC_URL`` set, this pure ASGI middleware replaces the
request's ``Host``, scheme and server with the configured ones before any route, handler
or the framework's own redirects (trailing slashes) see the request, so no URL the server
builds can carry a forged host. A path prefix (``https://example.org/voirie``, behind a
proxy that strips it) is carried by the links voirie writes itself (``public_base``) and
put back into redirects' ``Location``.

Without ``VOIRIE_PUBLIC_URL``, links are built on the address each request was made to
(its ``Host``), which is right for a server reached directly (``voirie demo``) and wrong
behind a proxy that passes the client's ``Host`` through: set it in production.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voirie.errors import InvalidInput

_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_public_url(url: str) -> str:
    """``VOIRIE_PUBLIC_URL`` without its trailing slash; ``InvalidInput`` naming the
    setting when it is not an absolute http(s) URL without query or fragment."""
    parts = urlsplit(url.strip())
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.query or parts.fragment:
        raise InvalidInput(
            f"VOIRIE_PUBLIC_URL: {url!r} is not an absolute http(s) URL such as "
            "https://voirie.example.org or https://example.org/voirie",
            field="VOIRIE_PUBLIC_URL",
        )
    return url.strip().rstrip("/")


class PublicHost:
    """Requests seen as made to the public address: ``Host``, scheme and server replaced."""

    def __init__(self, app: ASGIApp, public_url: str) -> None:
        self.app = app
        parts = urlsplit(parse_public_url(public_url))
        self.scheme = parts.scheme
        self.host = parts.netloc.encode("latin-1")
        self.server = (parts.hostname or "", parts.port or _DEFAULT_PORTS[parts.scheme])
        # A redirect the app builds is on the public host but without the path prefix.
        self.origin = f"{parts.scheme}://{parts.netloc}".encode("latin-1")
        self.prefix = parts.path.rstrip("/").encode("latin-1")

    def _location(self, value: bytes) -> bytes:
        """A ``Location`` with the public path prefix put back."""
        if value.startswith(self.origin + b"/") and not value.startswith(
            self.origin + self.prefix + b"/"
        ):
            return self.origin + self.prefix + value[len(self.origin) :]
        if value.startswith(b"/") and not value.startswith(b"//"):
            return self.prefix + value
        return value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            # Changed in place, as the router adds the matched route: the layers outside
            # (request metrics) read that route from the same scope.
            headers = [(name, value) for name, value in scope["headers"] if name != b"host"]
            secure = self.scheme == "https"
            scheme = ("wss" if secure else "ws") if scope["type"] == "websocket" else self.scheme
            scope["headers"] = [(b"host", self.host), *headers]
            scope["scheme"] = scheme
            scope["server"] = self.server
        if scope["type"] != "http" or not self.prefix:
            await self.app(scope, receive, send)
            return

        async def send_prefixed(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, self._location(value) if name.lower() == b"location" else value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, send_prefixed)


def install(app: FastAPI, public_url: str | None) -> None:
    """Put ``app``'s requests on ``public_url`` when it is set (no change otherwise)."""
    if public_url:
        app.add_middleware(PublicHost, public_url=public_url)
