"""Which city an Open311 request is for, with several cities: its ``jurisdiction_id``.

GeoReport v2 puts ``jurisdiction_id`` in the query string of a GET and in the body of a
POST (url-encoded, or multipart for a photo; voirie also takes JSON). A POST without it
in the query has its body read here, within the same size limits the city's app applies
(``VOIRIE_BODY_MAX_BYTES``, ``VOIRIE_MEDIA_MAX_BYTES`` plus the multipart envelope), and
handed on unchanged to the city's app, which reads and checks it as usual.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from python_multipart.multipart import parse_options_header
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.types import Message, Receive, Scope

from voirie.api.open311.settings import Open311Settings
from voirie.errors import TooLarge
from voirie.settings import LimitSettings

OPEN311 = "/open311"
FIELD = "jurisdiction_id"


def _first(values: dict[str, list[str]]) -> str | None:
    found = values.get(FIELD)
    return (found[0].strip() or None) if found else None


def _limit(kind: str) -> int:
    """The largest body the city's app would read for this content type, in bytes."""
    limits = LimitSettings()
    if kind == "multipart/form-data":
        return Open311Settings().media_max_bytes + limits.multipart_overhead_bytes
    return limits.body_max_bytes


async def _read(receive: Receive, limit: int) -> bytes:
    """The whole body; ``TooLarge`` as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client left: the city's app sees an empty body
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"request body: larger than {limit} bytes", field="body")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` giving ``body`` once, then what the client sends next (a disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _from_multipart(scope: Scope, body: bytes) -> str | None:
    """``jurisdiction_id`` of a multipart body (None when absent or unreadable)."""
    request = Request(scope, _replay(body, _empty))
    try:
        form = await request.form(max_part_size=len(body) + 1)
    except MultiPartException:
        return None
    try:
        value = form.get(FIELD)
        return (value.strip() or None) if isinstance(value, str) else None
    finally:
        await form.close()


async def _empty() -> Message:
    return {"type": "http.disconnect"}


async def _from_body(scope: Scope, kind: str, body: bytes) -> str | None:
    """``jurisdiction_id`` of a POST body (None when absent or unreadable: the 400 that
    follows names the field, and the city's app would refuse the body anyway)."""
    if kind == "application/x-www-form-urlencoded":
        return _first(parse_qs(body.decode("utf-8", "replace")))
    if kind == "multipart/form-data":
        return await _from_multipart(scope, body)
    if kind == "application/json":
        try:
            document = json.loads(body or b"null")
        except (ValueError, RecursionError):
            return None
        value = document.get(FIELD) if isinstance(document, dict) else None
        return (value.strip() or None) if isinstance(value, str) else None
    return None


async def jurisdiction_of(scope: Scope, receive: Receive) -> tuple[str | None, Receive]:
    """The request's ``jurisdiction_id`` (query string first, then a POST's body) and the
    ``receive`` to hand on: the body replayed when it was read here."""
    query = _first(parse_qs(scope.get("query_string", b"").decode("utf-8", "replace")))
    if query is not None or scope["method"] != "POST":
        return query, receive
    headers = dict(scope["headers"])
    kind = parse_options_header(headers.get(b"content-type", b""))[0].decode("latin-1").lower()
    body = await _read(receive, _limit(kind))
    return await _from_body(scope, kind, body), _replay(body, receive)
