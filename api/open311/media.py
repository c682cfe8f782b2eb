"""Photo uploads for Open311 clients: the ``media_url`` to send with POST requests.

GeoReport v2 takes a ``media_url`` (https://wiki.open311.org/GeoReport_v2#POST_Service_Request)
but has no upload; this extension accepts one JPEG, PNG or WebP image per multipart POST,
within the configured size and pixel limits. The image is decoded and re-encoded as JPEG
without its metadata (EXIF, GPS position, camera serial: a reporter's photo must not
publish where they live), oriented as the camera said, and a thumbnail is made. Files
are named by the SHA-256 of the stored bytes, so the same photo is stored once.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.responses import FileResponse
from PIL import Image, ImageOps, UnidentifiedImageError

from voirie.api.deps import PipelineDep
from voirie.api.open311 import wire
from voirie.api.open311.deps import JurisdictionDep, SettingsDep, check_jurisdiction, client
from voirie.api.open311.render import Format, render, responses
from voirie.api.open311.settings import Open311Settings
from voirie.errors import NotFound, TooLarge, UnsupportedMedia
from voirie.services.auth import Role

router = APIRouter(prefix="/open311/v2", tags=["open311"])

ACCEPTED = ("JPEG", "PNG", "WEBP")
_NAME = re.compile(r"^[0-9a-f]{64}(\.thumb)?\.jpg$")
_CHUNK = 64 * 1024
_QUALITY = 85


def _read_limited(upload: UploadFile, limit: int) -> bytes:
    data = bytearray()
    while chunk := upload.file.read(_CHUNK):
        data += chunk
        if len(data) > limit:
            raise TooLarge(f"media: larger than {limit} bytes", field="media")
    return bytes(data)


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=_QUALITY, optimize=True)
    return out.getvalue()


def clean_image(data: bytes, settings: Open311Settings) -> tuple[bytes, bytes, tuple[int, int]]:
    """(image, thumbnail, size): JPEG bytes without metadata, upright, and a thumbnail."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            kind = image.format
            if kind not in ACCEPTED:
                raise UnsupportedMedia(
                    f"media: {kind or 'unknown'} images are not accepted; "
                    f"send {', '.join(ACCEPTED)}",
                    field="media",
                )
            width, height = image.size
            if width * height > settings.media_max_pixels:
                raise TooLarge(
                    f"media: {width}x{height} pixels; at most {settings.media_max_pixels}",
                    field="media",
                )
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UnsupportedMedia(
            f"media: not a readable {', '.join(ACCEPTED)} image", field="media"
        ) from exc
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise TooLarge("media: too many pixels", field="media") from exc
    upright = ImageOps.exif_transpose(image).convert("RGB")
    # A new image from the pixels alone: nothing of the original's metadata comes along.
    clean = Image.new("RGB", upright.size)
    clean.paste(upright)
    thumb = clean.copy()
    thumb.thumbnail((settings.thumbnail_px, settings.thumbnail_px))
    return _jpeg(clean), _jpeg(thumb), clean.size


def _store(folder: Path, name: str, data: bytes) -> None:
    """Write a file atomically (a reader never sees half of it); same name, same bytes."""
    target = folder / name
    if target.exists():
        return
    handle, temp = tempfile.mkstemp(dir=folder, prefix=".upload-")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.replace(temp, target)


@router.post(
    "/media.{fmt}",
    summary="Upload a photo (extension)",
    dependencies=[JurisdictionDep],
    status_code=201,
    response_class=Response,
    responses=responses(wire.MediaStored, 403, 413, 415, ok=201, description="Stored."),
)
def upload_media(
    fmt: Format,
    request: Request,
    pipeline: PipelineDep,
    settings: SettingsDep,
    media: Annotated[UploadFile, File(description="a JPEG, PNG or WebP photo")],
    api_key: Annotated[str | None, Form()] = None,
    jurisdiction_id: Annotated[str | None, Form()] = None,
) -> Response:
    """Store a photo without its metadata; answer the media_url to send with the report."""
    check_jurisdiction(pipeline, jurisdiction_id)
    client(pipeline, api_key, frozenset({Role.CLIENT}))
    image, thumbnail, (width, height) = clean_image(
        _read_limited(media, settings.media_max_bytes), settings
    )
    digest = hashlib.sha256(image).hexdigest()
    folder = settings.media_dir
    folder.mkdir(parents=True, exist_ok=True)
    _store(folder, f"{digest}.jpg", image)
    _store(folder, f"{digest}.thumb.jpg", thumbnail)
    stored = wire.MediaStored(
        media_url=str(request.url_for("get_media", name=f"{digest}.jpg")),
        thumbnail_url=str(request.url_for("get_media", name=f"{digest}.thumb.jpg")),
        sha256=digest,
        content_type="image/jpeg",
        size_bytes=len(image),
        width=width,
        height=height,
    )
    return render(fmt, stored, root="media", status=201)


@router.get(
    "/media/{name}",
    summary="A stored photo or its thumbnail (extension)",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The photo."},
        404: responses(None)[404],
    },
)
def get_media(name: str, settings: SettingsDep) -> FileResponse:
    """A photo by the name its upload answered (``SHA256.jpg`` or ``SHA256.thumb.jpg``)."""
    path = settings.media_dir / name
    if not _NAME.fullmatch(name) or not path.is_file():
        raise NotFound(f"media: no photo {name[:80]!r}", field="media")
    return FileResponse(path, media_type="image/jpeg")
