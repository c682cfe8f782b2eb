"""Photo uploads: limits, metadata stripped, thumbnails, content-addressed files."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import httpx2
import pytest
from open311_support import (
    ALL_OF_2023,
    API,
    CARTONS,
    SQLITE_ONLY,
    VALMY,
    Served,
    assert_error,
    xml,
)
from PIL import Image

from voirie.api.open311.settings import Open311Settings

GPS_IFD = 0x8825
ORIENTATION = 0x0112

pytestmark = pytest.mark.empty_store


def _photo(kind: str = "JPEG", size: tuple[int, int] = (1200, 800)) -> bytes:
    """A photo as a phone sends it: camera make, GPS position, turned a quarter."""
    image = Image.new("RGB", size, (90, 120, 200))
    image.paste((200, 30, 30), (0, 0, size[0] // 2, size[1] // 4))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[ORIENTATION] = 6  # rotate 90° clockwise to display
    exif[GPS_IFD] = {1: "N", 2: (48.0, 52.0, 24.6), 3: "E", 4: (2.0, 21.0, 47.2)}
    out = io.BytesIO()
    image.save(out, kind, exif=exif.tobytes())
    return out.getvalue()


def _upload(
    served: Served,
    data: bytes,
    fmt: str = "json",
    name: str = "photo.jpg",
    api_key: str | None = None,
) -> httpx2.Response:
    return served.client.post(
        f"{API}/media.{fmt}",
        data={"api_key": served.client_key if api_key is None else api_key},
        files={"media": (name, data, "image/jpeg")},
    )


@SQLITE_ONLY  # uploads touch the store only to check the api_key
def test_upload_strips_metadata_and_makes_a_thumbnail(served: Served, tmp_path: Path) -> None:
    original = _photo()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)
    response = _upload(served, original)
    assert response.status_code == 201, response.text
    stored = response.json()
    digest = stored["sha256"]
    assert stored["media_url"] == f"http://testserver{API}/media/{digest}.jpg"
    assert (stored["width"], stored["height"]) == (800, 1200)  # upright, as displayed
    path = tmp_path / "media" / f"{digest}.jpg"
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == digest
    assert stored["size_bytes"] == len(data)
    with Image.open(path) as clean:
        assert clean.format == "JPEG"
        assert not clean.getexif()
    assert b"PhoneMaker" not in data
    assert b"Exif" not in data
    with Image.open(tmp_path / "media" / f"{digest}.thumb.jpg") as thumb:
        assert thumb.size == (213, 320)

    served_photo = served.client.get(f"{API}/media/{digest}.jpg")
    assert served_photo.status_code == 200
    assert served_photo.headers["content-type"] == "image/jpeg"
    assert served_photo.content == data
    # The same photo again is the same file.
    again = _upload(served, original, "xml")
    root = xml(again.text)
    assert root.tag == "media"
    assert root.findtext("sha256") == digest
    assert len(list((tmp_path / "media").glob("*.jpg"))) == 2


@SQLITE_ONLY
def test_png_and_webp_are_accepted(served: Served) -> None:
    for kind in ("PNG", "WEBP"):
        response = _upload(served, _photo(kind, (640, 480)), name=f"p.{kind.lower()}")
        assert response.status_code == 201, response.text


@SQLITE_ONLY
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_upload_limits_and_errors(served: Served, fmt: str) -> None:
    gif = io.BytesIO()
    Image.new("RGB", (10, 10)).save(gif, "GIF")
    assert_error(_upload(served, gif.getvalue(), fmt), 415, "GIF")
    assert_error(_upload(served, b"not an image at all", fmt), 415, "media")
    assert_error(_upload(served, _photo(), fmt, api_key=""), 403, "api_key")
    no_file = served.client.post(f"{API}/media.{fmt}", data={"api_key": served.client_key})
    assert_error(no_file, 400, "media")
    state = served.client.app.state
    state.open311_settings = Open311Settings(
        media_dir=state.open311_settings.media_dir,
        media_max_bytes=10_000,
        media_max_pixels=500_000,
    )
    assert_error(_upload(served, _photo(), fmt), 413, "10000 bytes")
    flat = io.BytesIO()
    Image.new("L", (1000, 1000)).save(flat, "PNG")  # tiny file, a million pixels
    assert_error(_upload(served, flat.getvalue(), fmt), 413, "pixels")
    assert_error(served.client.get(f"{API}/media/../../etc/passwd"), 404)
    assert_error(served.client.get(f"{API}/media/{'0' * 64}.jpg"), 404, "media")


def test_posted_media_url_is_published(served: Served) -> None:
    media_url = _upload(served, _photo()).json()["media_url"]
    created = served.client.post(
        f"{API}/requests.json",
        data={
            "api_key": served.client_key,
            "service_code": CARTONS,
            "lat": VALMY["lat"],
            "long": VALMY["long"],
            "media_url": media_url,
        },
    )
    assert created.status_code == 201
    rid = created.json()[0]["service_request_id"]
    (request,) = served.client.get(f"{API}/requests/{rid}.json").json()
    assert request["media_url"] == media_url
    assert served.client.get(media_url).status_code == 200
    assert served.client.get(f"{API}/requests.json", params=ALL_OF_2023).json() == []
