"""Settings, one class per concern, read from ``VOIRIE_*`` variables when built.

Nothing here is instantiated at import time: the CLI builds settings and passes them in,
tests build them explicitly.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_FILE = "voirie.gpkg"


class StoreSettings(BaseSettings):
    """Where the data lives: an sqlite/GeoPackage file path or a ``postgresql://`` URL."""

    model_config = SettingsConfigDict(env_prefix="VOIRIE_")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_DATABASE_FILE}",
        description="sqlite:///path/to/file.gpkg or postgresql://user@host:port/db",
    )
    pool_min_size: int = 1
    pool_max_size: int = 8
    pool_timeout_s: float = Field(
        default=3.0,
        gt=0,
        description="PostGIS: wait at most this long for a pooled connection, then answer 503",
    )
    connect_timeout_s: int = Field(
        default=2, ge=2, description="PostGIS: give up opening a connection after this long"
    )
    statement_timeout_ms: int = Field(
        default=60_000,
        ge=0,
        description="PostGIS: cancel a statement running longer (0: no limit; not applied "
        "to migrations and ANALYZE)",
    )
    read_database_url: str | None = Field(
        default=None,
        description="PostGIS: one or more streaming replicas (postgresql:// URLs, comma-"
        "separated) the public reads go to; writes and staff reads stay on "
        "VOIRIE_DATABASE_URL, which also answers when no replica does",
    )
    read_max_lag_s: float = Field(
        # Replicas streaming from a healthy primary stay within a fraction of a second;
        # several seconds behind means one is struggling (replay paused or in conflict, a
        # cut link). 5 s is short next to how long shared caches keep the same answers
        # (30-60 s of max-age), so a citizen never sees a replica older than a cached page.
        default=5.0,
        gt=0,
        description="PostGIS: a replica further behind the primary than this is skipped "
        "until it catches up",
    )
    read_check_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="PostGIS: how often each replica's lag is measured",
    )

    @field_validator("read_database_url", mode="after")
    @classmethod
    def _read_urls(cls, value: str | None) -> str | None:
        for part in filter(None, (p.strip() for p in (value or "").split(","))):
            if not part.startswith(("postgresql://", "postgres://")):
                raise ValueError(
                    f"VOIRIE_READ_DATABASE_URL: {part!r} is not a postgresql:// URL "
                    "(one or more, comma-separated)"
                )
        return value

    def read_urls(self) -> tuple[str, ...]:
        """The replicas' URLs (none when ``read_database_url`` is unset)."""
        return tuple(p.strip() for p in (self.read_database_url or "").split(",") if p.strip())


class CitySettings(BaseSettings):
    """Which city folder the pipeline runs for."""

    model_config = SettingsConfigDict(env_prefix="VOIRIE_")

    city: str = Field(
        default="paris", description="path to a city folder, or the name of a shipped city"
    )


class ServerSettings(BaseSettings):
    """The HTTP server."""

    model_config = SettingsConfigDict(env_prefix="VOIRIE_")

    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = Field(
        default=None,
        description="the address clients reach the server at (https://voirie.example.org, "
        "behind a reverse proxy): absolute links in OGC API documents and the QGIS project "
        "are built on it; without it, on the address each request was made to",
    )


class OutboxSettings(BaseSettings):
    """Delivery of notifications from the outbox: SMTP server, retries, worker pace."""

    model_config = SettingsConfigDict(env_prefix="VOIRIE_")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str = "voirie@localhost"
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="VOIRIE_PUBLIC_URL, as the links in emails start (confirmation, "
        "tracking, unsubscribe, staff case page)",
    )
    outbox_max_attempts: int = Field(default=8, ge=1, description="then dead-lettered")
    outbox_backoff_s: float = Field(
        default=10.0, gt=0, description="delay before the first retry, doubled each time"
    )
    outbox_lease_s: float = Field(
        default=60.0, gt=0, description="a claimed message another worker may take after"
    )
    outbox_batch: int = Field(default=50, ge=1)
    http_timeout_s: float = Field(default=10.0, gt=0)
    worker_interval_s: float = Field(default=5.0, gt=0)


class LimitSettings(BaseSettings):
    """Request body sizes, refused with 413 while the body streams in, before any work.

    The photo upload's limit is ``VOIRIE_MEDIA_MAX_BYTES`` (the Open311 settings) plus
    ``multipart_overhead_bytes`` for the multipart envelope and the form fields around it.
    """

    model_config = SettingsConfigDict(env_prefix="VOIRIE_")

    body_max_bytes: int = Field(
        default=1024 * 1024, gt=0, description="largest body of a JSON or form request"
    )
    multipart_overhead_bytes: int = Field(
        default=64 * 1024,
        ge=0,
        description="allowed above VOIRIE_MEDIA_MAX_BYTES on a photo upload",
    )


class RateLimitSettings(BaseSettings):
    """Request rates: per client address, per API key and per "me too" of one person on one
    incident, refused with 429 and ``Retry-After`` beyond them.

    Rates are ``limits`` strings (``N/second|minute|hour|day``, several joined with ``;``).
    The counters live in the process (``memory://``) unless ``rate_storage_url`` names a
    shared store (``redis://host:6379``), which several workers need to share one budget.
    ``X-Forwarded-For`` is believed only from the addresses in ``trusted_proxies``.
    """

    model_config = SettingsConfigDict(env_prefix="VOIRIE_")

    rate_limits_enabled: bool = Field(default=True, description="false turns every limit off")
    rate_storage_url: str = Field(
        default="memory://", description="memory:// (per process) or redis://host:port/db"
    )
    rate_storage_prefix: str = Field(
        default="voirie", min_length=1, description="key prefix in a shared store"
    )
    rate_strategy: Literal["fixed-window", "moving-window", "sliding-window-counter"] = (
        "sliding-window-counter"
    )
    rate_address_reads: str = Field(
        # A GIS workstation copying a layer with GDAL 3.6 (Debian 12's) pages OGC items by
        # 10: ~2,300 requests in ~25 s for the Paris incidents. 1,200/minute cut it off
        # at 12,000 items; this budget lets one address page at ~200 requests a second.
        default="12000/minute",
        description="GET/HEAD requests of one client address",
    )
    rate_address_writes: str = Field(
        default="60/minute;1000/day", description="POST/PUT/PATCH/DELETE of one client address"
    )
    rate_key: str = Field(
        default="600/minute;100000/day",
        description="requests made with one API token (Open311 api_key or bearer token)",
    )
    rate_support: str = Field(
        default="5/day", description='"me too" on one incident from one client address'
    )
    trusted_proxies: str = Field(
        default="",
        description="comma-separated addresses or networks of the reverse proxies whose "
        "X-Forwarded-For is believed (e.g. 127.0.0.1,10.0.0.0/8); none by default",
    )

    @field_validator(
        "rate_address_reads", "rate_address_writes", "rate_key", "rate_support", mode="after"
    )
    @classmethod
    def _rates(cls, value: str, info: ValidationInfo) -> str:
        # Imported here: ``limits`` (with asyncio) costs ~40 ms of every CLI start, and only
        # the API's rate limits are checked with it.
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(
                f"VOIRIE_{str(info.field_name).upper()}: {value!r} is not a rate such as "
                "'60/minute' or '60/minute;1000/day'"
            ) from exc
        return value

    @field_validator("trusted_proxies", mode="after")
    @classmethod
    def _networks(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                ip_network(part, strict=False)
            except ValueError as exc:
                raise ValueError(
                    f"VOIRIE_TRUSTED_PROXIES: {part!r} is not an address or a network"
                ) from exc
        return value

    def proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        """The trusted proxies as networks (a single address is a /32 or /128)."""
        parts = (p.strip() for p in self.trusted_proxies.split(","))
        return tuple(ip_network(p, strict=False) for p in parts if p)


class LogSettings(BaseSettings):
    """What the server logs: text for a person at a terminal (uvicorn's access lines), or
    JSON lines with a request id on each, for a log collector."""

    model_config = SettingsConfigDict(env_prefix="VOIRIE_")

    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class InputSettings(BaseSettings):
    """Plausibility windows of the values clients send (``VOIRIE_*`` variables)."""

    model_config = SettingsConfigDict(env_prefix="VOIRIE_")

    due_horizon_days: int = Field(default=5 * 366, ge=1, le=100 * 366)
    """how far from now a staff-set due date may lie (past or future), in days"""


class CitiesSettings(BaseSettings):
    """Several cities served by one deployment (``VOIRIE_CITIES``), sharing one store."""

    model_config = SettingsConfigDict(env_prefix="VOIRIE_")

    cities: str | None = Field(
        default=None,
        description="comma-separated city folders or names of shipped cities "
        "(paris,chicago), or one directory whose sub-folders are city folders; each city "
        "is served under /{folder name}/ and selected by jurisdiction_id on Open311; unset: "
        "the one city of VOIRIE_CITY, at the root",
    )
    city_hosts: str = Field(
        default="",
        description="with several cities, host names that serve one city at their root: "
        "PREFIX=URL, comma-separated (paris=https://signalements.paris.fr); a request whose "
        "Host is that URL's host name is that city's, Open311 without jurisdiction_id too",
    )
