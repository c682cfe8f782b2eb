"""Photo uploads for Open311 clients: the ``media_url`` to send with POST requests.

GeoReport v2 takes a ``media_url`` (https://wiki.open311.org/GeoReport_v2#POST_Service_Request)
but has no upload; this extension accepts one JPEG, PNG or WebP image per multipart POST,
within the configured size and pixel limits. The image is decoded and re-encoded as JPEG
without its metadata (EXIF, GPS position, camera serial: a reporter's photo must not
publish where they live), oriented as the camera said, and a thumbnail is made. Files
are named by the SHA-256 of the stored bytes, so the same photo is stored once.

Limits before work: the body is read as it streams in (``media_form``), in memory and
never to a temporary file; the ``api_key`` is checked as soon as its field has arrived
(send it before the photo to be refused before the photo is read); the photo is refused
the moment it passes ``VOIRIE_MEDIA_MAX_BYTES``; its pixel count is read from the header
and checked (Pillow's decompression-bomb guard set to ``VOIRIE_MEDIA_MAX_PIXELS``) before
anything is decoded. Both files are written to temporary names then renamed, and the
temporary files are removed whatever fails; a full disk answers 507, with nothing stored.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import tempfile
import warnings
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from PIL import Image, ImageOps, UnidentifiedImageError
from starlette.concurrency import run_in_threadpool

from voirie.api.deps import PipelineDep
from voirie.api.ogc import public_base
from voirie.api.open311 import wire
from voirie.api.open311.deps import JurisdictionDep, SettingsDep, check_jurisdiction, client
from voirie.api.open311.media_form import MEDIA_FIELD, MediaForm
from voirie.api.open311.render import Format, render, responses
from voirie.api.open311.settings import Open311Settings
from voirie.errors import InsufficientStorage, NotFound, TooLarge, UnsupportedMedia
from voirie.services.auth import Role

router = APIRouter(prefix="/open311/v2", tags=["open311"])

ACCEPTED = ("JPEG", "PNG", "WEBP")
MEDIA_NAME = re.compile(r"^[0-9a-f]{64}(\.thumb)?\.jpg$")
_QUALITY = 85
_CHUNK = 64 * 1024
_CLIENTS = frozenset({Role.CLIENT})
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
# The multipart body as the OpenAPI document shows it (the handler reads it as a stream).
_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [MEDIA_FIELD, "api_key"],
                "properties": {
                    "api_key": {
                        "type": "string",
                        "description": "an Open311 client key; send it before the photo",
                    },
                    "jurisdiction_id": {"type": "string"},
                    MEDIA_FIELD: {
                        "type": "string",
                        "format": "binary",
                        "description": "a JPEG, PNG or WebP photo",
                    },
                },
            },
            "encoding": {MEDIA_FIELD: {"contentType": "image/jpeg, image/png, image/webp"}},
        }
    },
}


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=_QUALITY, optimize=True)
    return out.getvalue()


def clean_image(data: bytes, settings: Open311Settings) -> tuple[bytes, bytes, tuple[int, int]]:
    """(image, thumbnail, size): JPEG bytes without metadata, upright, and a thumbnail."""
    # Pillow's own guard at the product's limit: Image.open reads the header only, and
    # refuses an image over the limit there, before a single pixel is decoded.
    Image.MAX_IMAGE_PIXELS = settings.media_max_pixels
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
        raise TooLarge(
            f"media: more than {settings.media_max_pixels} pixels", field="media"
        ) from exc
    # One decoded copy at most: turned upright in place, kept as is when JPEG takes its
    # mode (a copy of a 40-megapixel image is 120 MB; there were four).
    ImageOps.exif_transpose(image, in_place=True)
    clean = image if image.mode in ("L", "RGB") else image.convert("RGB")
    # The pixels alone: a JPEG writer falls back to the image's info for some metadata.
    clean.info = {}
    return _jpeg(clean), _jpeg(_thumbnail(clean, settings.thumbnail_px)), clean.size


def _thumbnail(image: Image.Image, side: int) -> Image.Image:
    """``image`` scaled to fit ``side`` x ``side`` (never enlarged), without copying the
    full-size image first as ``Image.thumbnail`` needs."""
    width, height = image.size
    scale = side / max(width, height)
    if scale >= 1:
        return image.copy()
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def media_url(request: Request, name: str) -> str:
    """Absolute URL of a stored photo, on ``VOIRIE_PUBLIC_URL`` when set (never on the
    request's Host header then)."""
    return public_base(request) + str(request.app.url_path_for("get_media", name=name))


def _temporary(folder: Path, data: bytes) -> Path:
    """``data`` written and flushed to disk under a temporary name in ``folder``."""
    handle, name = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def store_files(folder: Path, files: dict[str, bytes]) -> None:
    """Store files (name -> bytes) all or none: each is written in full under a temporary
    name, then all are renamed; a reader never sees half a file, a failure (a full disk:
    ``InsufficientStorage``, 507) leaves no temporary file and no new file behind. Same
    name, same bytes: a file already stored is kept."""
    folder.mkdir(parents=True, exist_ok=True)
    pending = {name: data for name, data in files.items() if not (folder / name).exists()}
    written: dict[str, Path] = {}
    try:
        for name, data in pending.items():
            written[name] = _temporary(folder, data)
        for name, temporary in written.items():
            os.replace(temporary, folder / name)
    except OSError as exc:
        for temporary in written.values():
            temporary.unlink(missing_ok=True)
        if exc.errno in _DISK_FULL:
            raise InsufficientStorage(
                "media: the server's photo storage is full; nothing was stored, try again later",
                field=MEDIA_FIELD,
            ) from exc
        raise


@router.post(
    "/media.{fmt}",
    summary="Upload a photo (extension)",
    dependencies=[JurisdictionDep],
    status_code=201,
    response_class=Response,
    responses=responses(wire.MediaStored, 403, 413, 415, 507, ok=201, description="Stored."),
    openapi_extra={"requestBody": _BODY},
)
async def upload_media(
    fmt: Format,
    request: Request,
    pipeline: PipelineDep,
    settings: SettingsDep,
) -> Response:
    """Store a photo without its metadata; answer the media_url to send with the report.

    The body is read as it arrives: a bad ``api_key`` sent before the photo is refused
    before the photo is read, and nothing reaches the disk before the image is clean.
    """
    form = MediaForm(request.headers.get("content-type"), settings.media_max_bytes)
    key_checked = False
    async for chunk in request.stream():
        form.feed(chunk)
        if not key_checked and "api_key" in form.fields:
            await run_in_threadpool(client, pipeline, form.fields["api_key"], _CLIENTS)
            key_checked = True
    media = form.finish()
    if not key_checked:
        await run_in_threadpool(client, pipeline, form.fields.get("api_key"), _CLIENTS)
    check_jurisdiction(pipeline, form.fields.get("jurisdiction_id"))
    image, thumbnail, (width, height) = await run_in_threadpool(clean_image, media, settings)
    digest = hashlib.sha256(image).hexdigest()
    files = {f"{digest}.jpg": image, f"{digest}.thumb.jpg": thumbnail}
    await run_in_threadpool(store_files, settings.media_dir, files)
    stored = wire.MediaStored(
        media_url=media_url(request, f"{digest}.jpg"),
        thumbnail_url=media_url(request, f"{digest}.thumb.jpg"),
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
    if not MEDIA_NAME.fullmatch(name) or not path.is_file():
        raise NotFound(f"media: no photo {name[:80]!r}", field="media")
    return FileResponse(path, media_type="image/jpeg")
