"""HTTP caching of the public reads: validators from the store's change counter, 304s,
and a ``Cache-Control`` per kind of resource.

The public reads (nearby incidents, OGC items, Open311 GET requests, vector tiles) change
only when the store commits a write of public data, which bumps its change counter
(migration 0011). Their ``ETag`` is that counter's version (with the deployment and the
negotiated format), their ``Last-Modified`` the instant of that write. A conditional
request whose validator still holds gets a ``304`` before any of its rows is read, and a
reverse proxy or CDN can serve the rest for the ``max-age`` given here (docs/operations.md,
"Caching"). The version is read *before* the handler reads its rows: a write committed in
between labels newer rows with the older version, which only costs a later 200.

Everything else a staff member or a signed-in client sees is never stored by a shared
cache: ``Cache-Control: private, no-store`` unless the handler said otherwise.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from importlib import metadata

import anyio.to_thread
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voirie.city import City
from voirie.services.pipeline import Pipeline
from voirie.store.base import ChangeMark

PRIVATE = "private, no-store"


@dataclass(frozen=True)
class Policy:
    """How long shared caches may serve one kind of public read without asking again,
    and whether its representation depends on the ``Accept`` header."""

    cache_control: str
    vary_accept: bool = False


# Tiles and OGC items feed maps and GIS clients that page through a layer: a minute.
# Nearby answers a citizen deciding whether to report: half a minute. Open311 partners poll.
TILES = Policy("public, max-age=60")
OGC_ITEMS = Policy("public, max-age=60", vary_accept=True)
NEARBY = Policy("public, max-age=30")
OPEN311 = Policy("public, max-age=60")
_PUBLIC_READS: tuple[tuple[re.Pattern[str], Policy], ...] = (
    (re.compile(r"/tiles/incidents/\d+/\d+/\d+\.mvt"), TILES),
    (re.compile(r"/ogc/collections/[^/]+/items(/[^/]+)?/?"), OGC_ITEMS),
    (re.compile(r"/api/v1/nearby"), NEARBY),
    (re.compile(r"/open311/v2/requests(/[^/]+)?\.(json|xml)"), OPEN311),
)
_PRIVATE_PREFIXES = ("/staff", "/api/v1/")


def policy_of(path: str) -> Policy | None:
    """The caching policy of a public read's path; None for every other path."""
    for pattern, policy in _PUBLIC_READS:
        if pattern.fullmatch(path):
            return policy
    return None


def deployment_tag(city: City) -> str:
    """What besides the store decides an answer: voirie's version and the city's
    configuration (service names, teams). A new release or a changed ``city.yaml`` makes
    every ETag given before it stale."""
    digest = hashlib.sha256(metadata.version("voirie").encode())
    source = city.folder / "city.yaml"
    if source.is_file():
        digest.update(source.read_bytes())
    return digest.hexdigest()[:10]


def _variant(headers: Headers, query: str) -> str:
    """The representation an OGC request negotiates: its ``f`` parameter, else whether
    its Accept header asks for HTML (as ``voirie.api.ogc`` decides)."""
    found = re.search(r"(?:^|&)f=([^&]*)", query)
    if found:
        return found.group(1)
    return "html" if "text/html" in headers.get("accept", "") else "json"


def etag(deployment: str, mark: ChangeMark, variant: str) -> str:
    """A weak validator: equal answers for the same store version (an OGC page carries
    the instant it was made, so two answers are equivalent rather than byte-equal)."""
    return f'W/"{deployment}-{mark.version}-{variant}"'


def last_modified(mark: ChangeMark) -> datetime | None:
    """The change's instant rounded up to the second, once that second is over.

    HTTP dates have whole seconds. Rounded up and given only after its second ended, a
    ``Last-Modified`` is later than every change it covers and earlier than every change
    after it, so ``If-Modified-Since`` never hides a second change made in the same second.
    """
    changed = mark.changed_at.astimezone(UTC)
    whole = changed.replace(microsecond=0)
    ceiling = whole if whole == changed else whole + timedelta(seconds=1)
    return ceiling if mark.now.astimezone(UTC) >= ceiling else None


def _matches(if_none_match: str, tag: str) -> bool:
    """RFC 9110 13.1.2: weak comparison against each listed tag, or ``*``."""
    listed = [part.strip() for part in if_none_match.split(",")]
    opaque = tag.removeprefix("W/")
    return "*" in listed or any(p.removeprefix("W/") == opaque for p in listed)


def not_modified(headers: Headers, tag: str, mark: ChangeMark) -> bool:
    """Whether a GET's validators still hold: ``If-None-Match`` when given (it takes
    precedence), else ``If-Modified-Since`` against the change's instant."""
    if "if-none-match" in headers:
        return _matches(headers["if-none-match"], tag)
    since = headers.get("if-modified-since")
    if since is None:
        return False
    try:
        moment = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False  # RFC 9110: an invalid date is ignored
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return mark.changed_at.astimezone(UTC) < moment


class HttpCaching:
    """ASGI middleware: validators and 304s on the public reads, ``no-store`` on the
    staff and signed-in answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._deployment: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = Headers(scope=scope)
        policy = policy_of(path) if scope["method"] == "GET" else None
        if policy is None:
            private = path.startswith(_PRIVATE_PREFIXES) or "authorization" in headers
            await self.app(scope, receive, _private(send) if private else send)
            return
        pipeline: Pipeline = scope["app"].state.pipeline
        if self._deployment is None:
            self._deployment = deployment_tag(pipeline.city)
        mark = await anyio.to_thread.run_sync(pipeline.reads.change_mark)
        variant = _variant(headers, scope["query_string"].decode("latin-1"))
        tag = etag(self._deployment, mark, variant if policy.vary_accept else "")
        validators = [("etag", tag), ("cache-control", policy.cache_control)]
        modified = last_modified(mark)
        if modified is not None:
            validators.append(("last-modified", format_datetime(modified, usegmt=True)))
        if policy.vary_accept:
            validators.append(("vary", "Accept"))
        if not_modified(headers, tag, mark):
            raw = [(k.encode(), v.encode()) for k, v in validators]
            await send({"type": "http.response.start", "status": 304, "headers": raw})
            await send({"type": "http.response.body", "body": b""})
            return

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                out = MutableHeaders(scope=message)
                for name, value in validators:
                    out[name] = value
            await send(message)

        await self.app(scope, receive, stamped)


def _private(send: Send) -> Send:
    """``send`` that marks a response private unless its handler set a policy."""

    async def marked(message: Message) -> None:
        if message["type"] == "http.response.start":
            out = MutableHeaders(scope=message)
            if "cache-control" not in out:
                out["cache-control"] = PRIVATE
        await send(message)

    return marked
