"""Which requests may read a replica (``VOIRIE_READ_DATABASE_URL``): the public's GETs.

A GET or HEAD of a public read (OGC API, tiles, downloads, Open311 reads, the citizens'
nearby search and map) made without a staff token or session reads inside
``public_reads()``: all its reads on one replica that keeps up, or on the primary when none
does (``voirie.store.replicas``). Everything else (writes, staff pages and APIs, a tracking
or confirmation link a citizen just received, probes) reads the primary and so sees its own
writes at once.

``voirie.api.edge.Gate`` pins a public read before its HTTP caching step, so the change
counter behind an ``ETag`` is read on the same node as the rows (see
``voirie.store.replicas``).

A replica only lacks the last moment's writes: a request it answers ``404`` (a report
asked for right after it was posted) is answered again by the primary.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope

from voirie.api.staff_session import SESSION_COOKIE

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


def empty_body(receive: Receive) -> Receive:
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
