"""Which requests may read a replica (``VOIRIE_READ_DATABASE_URL``): the public's GETs.

A GET or HEAD of a public read (OGC API, tiles, downloads, Open311 reads, the citizens'
nearby search and map) made without a staff token or session reads inside
``public_reads()``: all its reads on one replica that keeps up, or on the primary when none
does (``voirie.store.replicas``). Everything else (writes, staff pages and APIs, a tracking
or confirmation link a citizen just received, probes) reads the primary and so sees its own
writes at once.

This middleware sits outside the HTTP caching one, so the change counter behind an
``ETag`` is read on the same node as the rows (see ``voirie.store.replicas``).

A replica only lacks the last moment's writes: a request it answers ``404`` (a report
asked for right after it was posted) is answered again by the primary.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voirie.api.staff_session import SESSION_COOKIE
from voirie.store.replicas import public_reads

_PUBLIC = re.compile(
    r"/ogc(/.*)?|/tiles/.+|/exports/.+|/open311/v2/.+|/api/v1/nearby|/maps/nearby|/incidents\.json"
)


def reads_replica(scope: Scope) -> bool:
    """Whether a request is a public read (may be answered from a replica)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(f"{root}/"):  # the full path under a prefix: the rest
        path = path[len(root) :]
    if scope["method"] not in ("GET", "HEAD") or not _PUBLIC.fullmatch(path):
        return False
    headers = Headers(scope=scope)
    return "authorization" not in headers and f"{SESSION_COOKIE}=" not in headers.get("cookie", "")


class PublicReads:
    """ASGI middleware: public reads on a replica, a replica's 404 asked again of the
    primary."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not reads_replica(scope):
            await self.app(scope, receive, send)
            return
        with public_reads() as pin:
            missing = False

            async def unless_missing(message: Message) -> None:
                nonlocal missing
                if message["type"] == "http.response.start":
                    missing = message["status"] == 404 and pin.on_replica
                if not missing:
                    await send(message)

            await self.app(scope, receive, unless_missing)
            if not missing:
                return
            pin.to_primary()
            await self.app(scope, _empty_body(receive), send)


def _empty_body(receive: Receive) -> Receive:
    """``receive`` for a GET answered again: its (empty) body once more, then the client's
    own messages (a disconnect)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return await receive()

    return again
