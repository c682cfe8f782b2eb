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

A request without validators whose answer the mark only labels (every public read but
Open311's, whose default window the mark decides) takes a mark read less than
``REUSE_S`` ago instead, with no read and no thread hop of its own: its rows are still read
after its arrival, and any mark read before them is a correct label (the case above: an
older label on newer rows costs a later 200, never a wrong 304). Only a conditional
request decides a 304, and it always waits for a read started after it arrived. A write
answered by this worker (any request but GET, HEAD and OPTIONS) ends the reuse of the marks
read before it ended, so that a client reading its own write gets the new label at once.

Everything else a staff member or a signed-in client sees is never stored by a shared
cache: ``Cache-Control: private, no-store`` unless the handler said otherwise.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from importlib import metadata

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voirie.city import City
from voirie.services.pipeline import Pipeline
from voirie.store.base import ChangeMark
from voirie.store.replicas import ReplicatedStore

PRIVATE = "private, no-store"
REUSE_S = 1.0
"""How long a mark read for one request labels the unconditional reads that follow."""
_MARK: ContextVar[ChangeMark | None] = ContextVar("voirie_change_mark", default=None)


def current_mark() -> ChangeMark | None:
    """The change mark the caching middleware read for the request being answered (None
    outside a public read): what the handler's answer is labelled with."""
    return _MARK.get()


@contextmanager
def labelled_with(mark: ChangeMark) -> Iterator[None]:
    """Within this scope (one public read), ``current_mark`` is ``mark``."""
    token = _MARK.set(mark)
    try:
        yield
    finally:
        _MARK.reset(token)


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
        self._last: tuple[float, ChangeMark] | None = None  # the newest read: its start, mark
        self._stale_before = 0.0  # marks of reads started before this are not reused

    def recent(self, max_age_s: float) -> ChangeMark | None:
        """The mark of a read started less than ``max_age_s`` ago and after the last
        ``forget``, if any: a label for an answer whose rows are read after this call."""
        last = self._last
        if last is None or last[0] < self._stale_before:
            return None
        return last[1] if time.monotonic() - last[0] < max_age_s else None

    def forget(self) -> None:
        """No mark read so far labels another answer (a write was just answered)."""
        self._stale_before = time.monotonic()

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
        started = time.monotonic()
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
            self._last = (started, mark)  # reads follow each other: the newest
        self._running, self._next = self._next, None
        if self._running is not None:
            self._start(self._running)


@dataclass(frozen=True)
class Policy:
    """How long shared caches may serve one kind of public read without asking again,
    whether its representation depends on the ``Accept`` header, and whether its answer
    depends on the change mark beyond its label (then never labelled by a reused mark)."""

    cache_control: str
    vary_accept: bool = False
    mark_in_answer: bool = False


# Tiles and OGC items feed maps and GIS clients that page through a layer: a minute.
# Nearby answers a citizen deciding whether to report: half a minute. Open311 partners poll.
TILES = Policy("public, max-age=60")
OGC_ITEMS = Policy("public, max-age=60", vary_accept=True)
NEARBY = Policy("public, max-age=30")
OPEN311 = Policy("public, max-age=60", mark_in_answer=True)  # the default window
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


Header = tuple[bytes, bytes]
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class HttpCaching:
    """ASGI middleware: validators and 304s on the public reads, ``no-store`` on the
    staff and signed-in answers. ``voirie.api.edge.Gate`` applies the same steps
    (``label``, ``stamp``, ``private``, ``answered``) within its single layer."""

    def __init__(self, app: ASGIApp, reuse_s: float = REUSE_S) -> None:
        self.app = app
        self.reuse_s = reuse_s
        self._deployment: str | None = None
        self._marks: tuple[Pipeline, SharedMark | None] | None = None
        # The validators of the newest mark, per policy and variant: built once per mark.
        self._labels: tuple[ChangeMark, dict[tuple[Policy, str], list[Header]]] | None = None

    def _shared(self, pipeline: Pipeline) -> SharedMark | None:
        """The pipeline's shared counter reads; None behind read replicas, where each
        request reads the counter on the node its rows come from (its own ``Pin``)."""
        if self._marks is None or self._marks[0] is not pipeline:
            replicated = isinstance(pipeline.store, ReplicatedStore)
            self._marks = (pipeline, None if replicated else SharedMark(pipeline.reads.change_mark))
        return self._marks[1]

    async def _mark(self, pipeline: Pipeline, policy: Policy, headers: Headers) -> ChangeMark:
        """The mark a public read is labelled with: a recent one when it only labels an
        unconditional answer, else one read after the request arrived."""
        shared = self._shared(pipeline)
        if shared is None:
            return await anyio.to_thread.run_sync(pipeline.reads.change_mark)
        if not policy.mark_in_answer and not (
            "if-none-match" in headers or "if-modified-since" in headers
        ):
            recent = shared.recent(self.reuse_s)
            if recent is not None:
                return recent
        return await shared.get()

    def _validators(self, mark: ChangeMark, policy: Policy, variant: str) -> list[Header]:
        """ETag, Cache-Control, Last-Modified and Vary of an answer labelled ``mark``."""
        if self._labels is None or self._labels[0] is not mark:
            self._labels = (mark, {})
        known = self._labels[1].get((policy, variant))
        if known is not None:
            return known
        assert self._deployment is not None
        tag = etag(self._deployment, mark, variant)
        validators = [(b"etag", tag.encode()), (b"cache-control", policy.cache_control.encode())]
        modified = last_modified(mark)
        if modified is not None:
            validators.append((b"last-modified", format_datetime(modified, usegmt=True).encode()))
        if policy.vary_accept:
            validators.append((b"vary", b"Accept"))
        self._labels[1][(policy, variant)] = validators
        return validators

    async def label(
        self, scope: Scope, policy: Policy, headers: Headers, send: Send
    ) -> tuple[ChangeMark, list[Header]] | None:
        """The mark and validators of a public read; None when its validators still hold
        and the ``304`` was sent (before any of its rows is read)."""
        pipeline: Pipeline = scope["app"].state.pipeline
        if self._deployment is None:
            self._deployment = deployment_tag(pipeline.city)
        mark = await self._mark(pipeline, policy, headers)
        variant = _variant(headers, scope["query_string"].decode("latin-1"))
        validators = self._validators(mark, policy, variant if policy.vary_accept else "")
        if not_modified(headers, validators[0][1].decode(), mark):
            await send({"type": "http.response.start", "status": 304, "headers": validators})
            await send({"type": "http.response.body", "body": b""})
            return None
        return mark, validators

    def answered(self, method: str) -> None:
        """After a request of ``method``: a write ends the reuse of the marks read so far."""
        if method not in _READ_METHODS and self._marks is not None and self._marks[1]:
            self._marks[1].forget()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = Headers(scope=scope)
        policy = policy_of(path) if scope["method"] == "GET" else None
        if policy is None:
            marked = _private(send) if is_private(path, headers) else send
            try:
                await self.app(scope, receive, marked)
            finally:
                self.answered(scope["method"])
            return
        labelled = await self.label(scope, policy, headers, send)
        if labelled is None:
            return
        mark, validators = labelled

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                stamp(message, validators)
            await send(message)

        with labelled_with(mark):
            await self.app(scope, receive, stamped)


def is_private(path: str, headers: Headers) -> bool:
    """Whether an answer that is no public read is private: staff paths, signed-in requests."""
    return path.startswith(_PRIVATE_PREFIXES) or "authorization" in headers


def stamp(start: Message, validators: list[Header]) -> None:
    """Put a public read's validators on its answer's start, if a 200."""
    if start["status"] == 200:
        names = {name for name, _ in validators}
        kept = [(k, v) for k, v in start.get("headers", ()) if k.lower() not in names]
        start["headers"] = [*kept, *validators]


_PRIVATE_HEADER = (b"cache-control", PRIVATE.encode())


def private(start: Message) -> None:
    """Mark an answer's start private unless its handler set a policy."""
    headers = start.get("headers", [])
    if not any(name.lower() == b"cache-control" for name, _ in headers):
        start["headers"] = [*headers, _PRIVATE_HEADER]


def _private(send: Send) -> Send:
    """``send`` that marks a response private unless its handler set a policy."""

    async def marked(message: Message) -> None:
        if message["type"] == "http.response.start":
            private(message)
        await send(message)

    return marked
