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

Requests arriving together share one read of the counter (``SharedMark``): a request
waits for a read *started after it arrived*, so it sees every write committed before it, as
a read of its own would, with several workers as with one; at concurrency 16 that is one or
two reads (and thread hops) instead of sixteen. The mark is handed to the handler
(``current_mark``), which needs no second read (Open311's default window).

Everything else a staff member or a signed-in client sees is never stored by a shared
cache: ``Cache-Control: private, no-store`` unless the handler said otherwise.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable
from contextvars import ContextVar
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
from voirie.store.replicas import ReplicatedStore

PRIVATE = "private, no-store"
_MARK: ContextVar[ChangeMark | None] = ContextVar("voirie_change_mark", default=None)


def current_mark() -> ChangeMark | None:
    """The change mark the caching middleware read for the request being answered (None
    outside a public read): what the handler's answer is labelled with."""
    return _MARK.get()


class SharedMark:
    """The change counter, read once for all the requests that ask for it together.

    A request never takes the answer of a read that started before it arrived (a write
    committed just before the request would be missing from it): it waits for the next
    read, which starts as soon as the one in flight ends and serves every request that
    arrived meanwhile. At most one read is in flight. A failed read fails the requests
    waiting for it (``StoreError``: each answers 503), as each one's own read would have.
    """

    def __init__(self, read: Callable[[], ChangeMark]) -> None:
        self._read = read
        self._running: asyncio.Future[ChangeMark] | None = None
        self._next: asyncio.Future[ChangeMark] | None = None
        self._task: asyncio.Task[None] | None = None  # held: the loop keeps weak references

    async def get(self) -> ChangeMark:
        """A mark read after this call began (shielded: a request that gives up does not
        cancel the read others wait for)."""
        loop = asyncio.get_running_loop()
        if self._running is None:
            waited = self._running = loop.create_future()
            self._start(waited)
        else:
            if self._next is None:
                self._next = loop.create_future()
            waited = self._next
        return await asyncio.shield(waited)

    def _start(self, future: asyncio.Future[ChangeMark]) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(future))

    async def _run(self, future: asyncio.Future[ChangeMark]) -> None:
        try:
            mark = await anyio.to_thread.run_sync(self._read)
        except asyncio.CancelledError:  # the loop is closing: nobody reads any more
            for waited in (future, self._next):
                if waited is not None:
                    waited.cancel()
            self._running = self._next = None
            raise
        except Exception as exc:  # a failed read fails its waiters, as their own would
            future.set_exception(exc)
        else:
            future.set_result(mark)
        self._running, self._next = self._next, None
        if self._running is not None:
            self._start(self._running)


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
        self._marks: tuple[Pipeline, SharedMark | None] | None = None

    def _shared(self, pipeline: Pipeline) -> SharedMark | None:
        """The pipeline's shared counter reads; None behind read replicas, where each
        request reads the counter on the node its rows come from (its own ``Pin``)."""
        if self._marks is None or self._marks[0] is not pipeline:
            replicated = isinstance(pipeline.store, ReplicatedStore)
            self._marks = (pipeline, None if replicated else SharedMark(pipeline.reads.change_mark))
        return self._marks[1]

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
        shared = self._shared(pipeline)
        if shared is not None:
            mark = await shared.get()
        else:
            mark = await anyio.to_thread.run_sync(pipeline.reads.change_mark)
        variant = _variant(headers, scope["query_string"].decode("latin-1"))
        tag = etag(self._deployment, mark, variant if policy.vary_accept else "")
        validators = [(b"etag", tag.encode()), (b"cache-control", policy.cache_control.encode())]
        modified = last_modified(mark)
        if modified is not None:
            validators.append((b"last-modified", format_datetime(modified, usegmt=True).encode()))
        if policy.vary_accept:
            validators.append((b"vary", b"Accept"))
        if not_modified(headers, tag, mark):
            await send({"type": "http.response.start", "status": 304, "headers": validators})
            await send({"type": "http.response.body", "body": b""})
            return
        names = {name for name, _ in validators}

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                kept = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in names]
                message["headers"] = [*kept, *validators]
            await send(message)

        token = _MARK.set(mark)
        try:
            await self.app(scope, receive, stamped)
        finally:
            _MARK.reset(token)


def _private(send: Send) -> Send:
    """``send`` that marks a response private unless its handler set a policy."""

    async def marked(message: Message) -> None:
        if message["type"] == "http.response.start":
            out = MutableHeaders(scope=message)
            if "cache-control" not in out:
                out["cache-control"] = PRIVATE
        await send(message)

    return marked
