"""Settings, one class per concern, read from ``VOIRIE_*`` variables when built.

Nothing here is instantiated at import time: the CLI builds settings and passes them in,
tests build them explicitly.
"""

from __future__ import annotations

from pydantic import Field
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
