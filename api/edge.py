"""Every request's fixed work at the edge of the app, in two pure ASGI layers.

Each layer a request passes wraps ``send`` (and often ``receive``) once more and is one
more coroutine per message: about a dozen such layers took ~43 % of a worker's CPU on the
Open311 POST (issue 20's profile). What seven of them did is kept here, in the order they
did it, in two layers:

- ``Edge``, outermost: the request's id (``X-Request-ID``), its metrics and access line
  (``voirie.api.observability``), the security headers and HTML pages' CSP
  (``voirie.api.headers``);
- ``Gate``, inside the optional public-address and rate-limit layers
  (``voirie.api.public_url``, ``voirie.api.throttle``): a store error met outside a route
  answered 503 with ``Retry-After`` (``voirie.api.unavailable``), public reads pinned to a
  replica and asked again of the primary on a replica's 404 (``voirie.api.read_routing``),
  HTTP validators, 304s and private answers (``voirie.api.caching``), body limits before
  reading (``voirie.api.limits``) and a 405's full ``Allow`` (``voirie.api.validation``).

Each layer shapes an answer's start in one pass and sends it on; work a request does not
need is skipped (no replica pinning without replicas, no body count of a declared body
too large, validators computed once per change mark). Two requests are answered by
``Gate`` itself, in one thread hop, without the router, the exception layer and FastAPI's
dependency solving: one OGC feature (``voirie.api.ogc.quick_item``) and the Open311 POST
(``voirie.api.open311.quick_submit``).
"""

from __future__ import annotations

import asyncio
import time

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voirie.api import caching, ogc
from voirie.api.headers import securing
from voirie.api.limits import counted, declared_length, limit_for, too_large_response
from voirie.api.logs import REQUEST_ID, request_id
from voirie.api.observability import HEADER_KEY, finished
from voirie.api.open311 import quick_submit
from voirie.api.read_routing import empty_body, reads_replica
from voirie.api.unavailable import unavailable_response, with_retry_after
from voirie.api.validation import allow_every_method
from voirie.errors import StoreError
from voirie.settings import LimitSettings
from voirie.store.replicas import Pin, ReplicatedStore, public_reads


class Edge:
    """Give the request its id (echoed as ``X-Request-ID``), put the security headers on
    its answer (an HTML page held until whole, to hash its inline scripts into its CSP),
    then count it, time it and write its access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        offered = next((v for k, v in scope["headers"] if k == HEADER_KEY), None)
        rid = request_id(offered.decode("latin-1") if offered else None)
        token = REQUEST_ID.set(rid)
        tag = (HEADER_KEY, rid.encode("latin-1"))
        status = 500

        def started(start: Message) -> None:
            nonlocal status
            status = start["status"]
            _tagged(start, tag)

        try:
            await self.app(scope, receive, securing(send, started))
        finally:
            finished(scope, status, time.perf_counter() - began)
            REQUEST_ID.reset(token)


def _tagged(start: Message, tag: tuple[bytes, bytes]) -> None:
    """The request's id on an answer's start, in place of any the app set."""
    headers = start.get("headers", [])
    if any(name.lower() == HEADER_KEY for name, _ in headers):
        headers = [(name, value) for name, value in headers if name.lower() != HEADER_KEY]
    start["headers"] = [*headers, tag]


class _Answer:
    """Where one request's answer stands: started (a store error then goes on up), read
    on a replica (``pin``), or a replica's 404 held back to ask the primary (``missing``)."""

    __slots__ = ("missing", "pin", "started")

    def __init__(self) -> None:
        self.started = False
        self.pin: Pin | None = None
        self.missing = False


class Gate:
    """A store error answered 503, public reads on a replica, HTTP validators and private
    answers, body limits and the 405's ``Allow``: what stands between the public-address
    and rate-limit layers and the routes."""

    def __init__(self, app: ASGIApp, limits: LimitSettings) -> None:
        self.app = app
        self.limits = limits
        self.caching = caching.HttpCaching(app)
        self._replicated: tuple[object, bool] | None = None

    def _has_replicas(self, scope: Scope) -> bool:
        """Whether the app's store reads replicas (else no request needs a pin)."""
        pipeline = getattr(scope["app"].state, "pipeline", None)
        if self._replicated is None or self._replicated[0] is not pipeline:
            store = getattr(pipeline, "store", None)
            self._replicated = (pipeline, isinstance(store, ReplicatedStore))
        return self._replicated[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = _Answer()
        try:
            if self._has_replicas(scope) and reads_replica(scope):
                with public_reads() as pin:
                    state.pin = pin
                    await self._answer(scope, receive, send, state)
                    if state.missing:  # the replica lacks it: the primary answers
                        pin.to_primary()
                        state.pin, state.missing = None, False
                        await self._answer(scope, empty_body(receive), send, state)
            else:
                await self._answer(scope, receive, send, state)
        except StoreError as exc:
            if state.started:
                raise  # the server aborts the connection: no cut answer taken for whole
            await unavailable_response(scope["path"], exc)(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, state: _Answer) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        headers = Headers(scope=scope)
        policy = caching.policy_of(path) if method == "GET" else None
        private = policy is None and caching.is_private(path, headers)
        validators: list[caching.Header] | None = None

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                allow_every_method(scope, message)
                if validators is not None:
                    caching.stamp(message, validators)
                elif private:
                    caching.private(message)
                if state.pin is not None:
                    state.missing = message["status"] == 404 and state.pin.on_replica
                if state.missing:
                    return
                state.started = True
                with_retry_after(message)
            elif state.missing:
                return
            await send(message)

        if policy is None:
            try:
                if not await self._quick_submit(scope, receive, answer):
                    await self._limited(scope, receive, answer)
            finally:
                self.caching.answered(method)
            return
        labelled = await self.caching.label(scope, policy, headers, answer)
        if labelled is None:
            return  # 304
        mark, validators = labelled
        with caching.labelled_with(mark):
            if policy is caching.OGC_ITEMS and await self._quick_item(scope, receive, answer):
                return
            await self._limited(scope, receive, answer)

    async def _quick_item(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer one OGC feature (the read asked one at a time, most often) in one thread
        hop without the framework's routing and middlewares, as ``voirie.api.ogc.item``
        would; False when that route must answer (another path, a body, HTML, a refusal)."""
        params = ogc.item_params(scope)
        if params is None or declared_length(scope):
            return False
        response = await asyncio.to_thread(ogc.quick_item, scope, params)
        if response is None:
            return False
        scope.update(path_params=params, endpoint=ogc.item, route=ogc.ITEM_ROUTE)
        await response(scope, receive, send)
        return True

    async def _quick_submit(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer an Open311 POST (the write asked most) in one hop without the framework's
        routing, exception layer and dependency solving, as ``voirie.api.open311.submit``'s
        route would, behind the same body limit; False when that route must answer (another
        request, a multipart body, a body declared too large: ``_limited`` refuses it)."""
        fmt = quick_submit.quick_format(scope)
        if fmt is None:
            return False
        limit = limit_for(scope, self.limits)
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            return False
        route = quick_submit.SUBMIT_ROUTE
        scope.update(path_params={"fmt": fmt}, endpoint=route.endpoint, route=route)
        response = await quick_submit.quick_submit(scope, counted(receive, limit), fmt)
        await response(scope, receive, send)
        return True

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app, behind the route's body limit (413 at once on a declared length over
        it, else when the body read passes it)."""
        limit = limit_for(scope, self.limits)
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            await too_large_response(scope["path"], limit)(scope, receive, send)
            return
        await self.app(scope, counted(receive, limit), send)


def install(app: FastAPI, limits: LimitSettings | None = None) -> None:
    """``Gate`` around ``app``'s routes (limits from ``VOIRIE_*`` variables unless given):
    call before the public-address and rate-limit layers are added, ``install_edge`` after."""
    app.add_middleware(Gate, limits=limits or LimitSettings())


def install_edge(app: FastAPI) -> None:
    """``Edge`` outside every other layer of ``app`` (call last)."""
    app.add_middleware(Edge)
