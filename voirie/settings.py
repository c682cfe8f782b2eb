"""Settings, one class per concern, read from ``VOIRIE_*`` variables when built.

Nothing here is instantiated at import time: the CLI builds settings and passes them in,
tests build them explicitly.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
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
