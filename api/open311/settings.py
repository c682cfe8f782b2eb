"""Settings of the Open311 endpoint (``VOIRIE_*`` variables), built when the app is built."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Open311Settings(BaseSettings):
    """Limits of GET requests, the retry window of POST requests and photo uploads."""

    model_config = SettingsConfigDict(env_prefix="VOIRIE_")

    media_dir: Path = Field(
        default=Path("voirie-media"), description="folder where uploaded photos are stored"
    )
    media_max_bytes: int = Field(default=8 * 1024 * 1024, gt=0, description="largest upload")
    media_max_pixels: int = Field(
        default=40_000_000, gt=0, description="largest image (width x height) decoded"
    )
    thumbnail_px: int = Field(default=320, gt=0, description="longest side of a thumbnail")
    resubmit_window_s: int = Field(
        default=600,
        gt=0,
        description="a POST without Idempotency-Key repeating one from the same client, "
        "device, service, place and description within this many seconds returns the first",
    )
    page_size: int = Field(default=100, gt=0, le=1000, description="default page_size")
    max_page_size: int = Field(default=1000, gt=0)
    max_radius_m: float = Field(default=5000.0, gt=0)
    max_range_days: int = Field(default=90, gt=0, description="longest start_date..end_date")
