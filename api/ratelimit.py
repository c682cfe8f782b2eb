"""Request rates, refused with 429 and ``Retry-After`` before any other work.

Three budgets, counted with the maintained ``limits`` library (in the process by default,
in a shared store such as redis for several workers):

- **per client address**, one for reads and one for writes, charged by a pure ASGI
  middleware before the body is read or a token checked. The address is the TCP peer's,
  or, when the peer is one of ``VOIRIE_TRUSTED_PROXIES``, the right-most address of
  ``X-Forwarded-For`` that is not a trusted proxy (what a client cannot forge: every proxy
  appends the address it saw). IPv6 clients are counted per /64, the block one subscriber
  gets. The middleware also puts that address in the request's ``client``.
- **per API key**: a bearer token or an ``api_key`` in the query string is charged by the
  middleware; an ``api_key`` in a form body by the Open311 handlers, through
  :func:`refuse_key`, once the form is read. Keys are counted by digest, never stored.
- **per "me too"** of one address on one incident (:func:`support_limit`): changing the
  User-Agent, the email or ``X-Forwarded-For`` gives a new supporter to the store, never a
  new budget.

The middleware, the 429 answers and the OpenAPI declarations are in
:mod:`voirie.api.throttle`; this module holds the budgets, so that the Open311 handlers
can charge a key without importing the middleware (which renders Open311 errors).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from fastapi import Depends, Request
from limits import RateLimitItem, parse_many
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.storage import storage_from_string
from starlette.exceptions import HTTPException

from voirie.api.deps import IncidentId
from voirie.settings import RateLimitSettings

STATUS = HTTPStatus.TOO_MANY_REQUESTS
_STRATEGIES: dict[str, type[RateLimiter]] = {
    "fixed-window": FixedWindowRateLimiter,
    "moving-window": MovingWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
}
Networks = Sequence[IPv4Network | IPv6Network]
KEY_BUDGET = "with this key"


@dataclass(frozen=True)
class Refusal:
    """A budget that is spent: what it counts and the whole seconds until it allows again."""

    budget: str
    retry_after_s: int

    @property
    def detail(self) -> str:
        """The message sent to the client."""
        return f"too many requests {self.budget}; retry in {self.retry_after_s} s"

    @property
    def headers(self) -> dict[str, str]:
        """The headers of the 429 (RFC 9110 ``Retry-After``, in seconds)."""
        return {"Retry-After": str(self.retry_after_s)}


class RateLimits:
    """The budgets of one app over one counter store."""

    def __init__(self, settings: RateLimitSettings) -> None:
        options: dict[str, str] = {"key_prefix": settings.rate_storage_prefix}
        url = settings.rate_storage_url
        if url.startswith(("redis://", "rediss://")):
            options["implementation"] = "redispy"  # redis-py's asyncio client, no extra package
        elif not url.startswith("memory://"):
            raise ValueError(f"VOIRIE_RATE_STORAGE_URL: {url!r} is neither memory:// nor redis://")
        storage = storage_from_string(f"async+{url}", **options)
        self.limiter = _STRATEGIES[settings.rate_strategy](storage)
        self.address_reads = parse_many(settings.rate_address_reads)
        self.address_writes = parse_many(settings.rate_address_writes)
        self.key = parse_many(settings.rate_key)
        self.support = parse_many(settings.rate_support)
        self.proxies: Networks = settings.proxy_networks()

    async def close(self) -> None:
        """Close the counter store's connections (redis: its client, on the event loop that
        opened them); left open, they are reported unclosed when the app is collected."""
        bridge = getattr(self.limiter.storage, "bridge", None)  # limits' redis storages
        if bridge is not None:
            await bridge.get_connection().aclose()

    async def charge(
        self, budget: str, items: Sequence[RateLimitItem], *identity: str
    ) -> Refusal | None:
        """Count one request against each of ``items`` for ``identity``; the refusal of
        the first one spent, if any."""
        for item in items:
            if not await self.limiter.hit(item, budget, *identity):
                stats = await self.limiter.get_window_stats(item, budget, *identity)
                wait = max(1, math.ceil(stats.reset_time - time.time()))
                return Refusal(f"{budget} (at most {item})", wait)
        return None


def client_address(peer: str, forwarded_for: str | None, proxies: Networks) -> str:
    """The client's address: the peer's unless the peer is a trusted proxy, then the
    right-most ``X-Forwarded-For`` hop that is not one."""
    if forwarded_for is None or not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


def _trusted(address: str, proxies: Networks) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in proxies)


def address_bucket(address: str) -> str:
    """What one client's budget is counted on: the address, or its /64 for IPv6."""
    try:
        parsed = ip_address(address)
    except ValueError:
        return address  # e.g. "testclient", or a hop a trusted proxy failed to parse
    if isinstance(parsed, IPv6Address):
        if parsed.ipv4_mapped is not None:  # ::ffff:a.b.c.d is the IPv4 client a.b.c.d
            return str(parsed.ipv4_mapped)
        return str(ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def key_digest(key: str) -> str:
    """An API key as counted: a digest, so the counter store never holds a usable key."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def limits_of(request: Request) -> RateLimits | None:
    """The running app's budgets (``None`` when rate limiting is off)."""
    limits: RateLimits | None = request.app.state.rate_limits
    return limits


async def charge_key(request: Request, api_key: str | None) -> Refusal | None:
    """Count a request made with ``api_key``: for handlers that read the key from a form
    body (the middleware charges keys sent in headers or the query string)."""
    limits = limits_of(request)
    if limits is None or not api_key:
        return None
    return await limits.charge(KEY_BUDGET, limits.key, key_digest(api_key))


async def _support(request: Request, incident_id: IncidentId) -> None:
    limits = limits_of(request)
    if limits is None:
        return
    address = request.client.host if request.client else ""
    refusal = await limits.charge(
        'of "me too" on this incident from this address',
        limits.support,
        str(incident_id),
        address_bucket(address),
    )
    if refusal is not None:
        raise HTTPException(STATUS, detail=refusal.detail, headers=refusal.headers)


# A route dependency: 429 once one address has said "me too" too often on one incident.
SupportLimit = Depends(_support)
