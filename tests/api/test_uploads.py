"""Photo uploads hold at the edges: bad keys, pixel bombs and a full disk.

- A bad ``api_key`` sent before the photo is refused while the photo has not even been
  sent: a real ``voirie serve`` answers 403 to a raw socket that stopped after the first
  64 KiB of the photo, so nothing of it can have been read, let alone written.
- A pixel bomb (a small PNG whose header says 30,000 x 30,000) is refused with 413 from
  its header: the server's peak memory does not move, and its pixel data (cut short on
  purpose) is never decoded, or the answer would be a 415 for a truncated image.
- A full disk (a 256 KiB tmpfs as the photo folder) answers 507 with a message, leaves no
  ``.upload-*`` file and no half photo, and the next upload works once there is room.
- An image just under the pixel limit costs about one decoded copy, and malformed bodies
  (no boundary, too many or too long fields, two photos, no photo) are 400s naming the
  field, with nothing written.
"""

from __future__ import annotations

import io
import os
import random
import socket
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest
from liveserver import LiveServer, serving
from open311_support import API, Served, assert_error, serve
from PIL import Image

from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.services.auth import issue_token
from voirie.settings import StoreSettings
from voirie.store import open_store

BOUNDARY = "voirie-test-boundary"
BOMB_SIDE = 30_000  # 900 million pixels: 2.7 GB decoded as RGB
MAX_GROWTH_KB = 20 * 1024


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _pixel_bomb(side: int = BOMB_SIDE, rows: int = 200) -> bytes:
    """A grey PNG of ``side`` x ``side`` pixels whose data stops after ``rows`` rows."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    squeeze = zlib.compressobj(9)
    row = b"\0" + b"\0" * side  # filter byte, then the row's pixels
    pixels = b"".join(squeeze.compress(row) for _ in range(rows)) + squeeze.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", pixels)
        + _png_chunk(b"IEND", b"")
    )


def _part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    kind = "Content-Type: image/png\r\n" if filename else ""
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{kind}\r\n".encode() + value


def _multipart(api_key: str, photo: bytes) -> bytes:
    return (
        _part("api_key", api_key.encode())
        + b"\r\n"
        + _part("media", photo, "photo.png")
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def _answer(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of the answer on ``sock`` (the server closes or says its length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length and (piece := sock.recv(65536)):
        body += piece
    return int(head.split()[1]), body


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, paris: City
) -> Iterator[tuple[LiveServer, Path, str]]:
    """``voirie serve`` on an sqlite store holding one Open311 client key."""
    folder = tmp_path_factory.mktemp("uploads")
    url = f"sqlite:///{folder / 'voirie.gpkg'}"
    store = open_store(StoreSettings(database_url=url))
    try:
        store.upgrade()
        key = issue_token(store, paris.jurisdiction_id, "appli-mobile", "client")
    finally:
        store.close()
    with serving(url, folder) as server:
        yield server, folder, key


def test_a_bad_key_is_refused_before_the_photo_is_read(
    live: tuple[LiveServer, Path, str],
) -> None:
    server, folder, _ = live
    photo_bytes = 6 * 1024 * 1024
    body_start = _part("api_key", b"voirie_not-a-key") + b"\r\n"
    body_start += _part("media", b"", "photo.png")
    length = len(body_start) + photo_bytes + len(f"\r\n--{BOUNDARY}--\r\n")
    url = urlsplit(server.base)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(
            f"POST {API}/media.json HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {length}\r\n\r\n".encode()
            + body_start
            + b"\0" * 65536  # then stop: the rest of the photo is never sent
        )
        started = time.monotonic()
        status, body = _answer(sock)
    assert status == 403, body
    assert time.monotonic() - started < 5
    assert b"api_key" in body
    media = folder / "voirie-media"
    assert not media.exists() or not any(media.iterdir())


def test_a_pixel_bomb_is_refused_from_its_header(live: tuple[LiveServer, Path, str]) -> None:
    server, folder, key = live
    bomb = _pixel_bomb()
    assert len(bomb) < 64 * 1024  # a few kB that would decode to gigabytes
    url = urlsplit(server.base)

    def post() -> tuple[int, bytes]:
        body = _multipart(key, bomb)
        with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
            sock.sendall(
                f"POST {API}/media.json HTTP/1.1\r\nHost: {url.netloc}\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            return _answer(sock)

    post()  # warm up: lazy imports (Pillow's plugins)
    before = _peak_rss_kb(server.pid)
    status, body = post()
    grown = _peak_rss_kb(server.pid) - before
    # 413 from the header: a decode would have failed on the cut pixel data (415).
    assert status == 413, body
    assert b"pixels" in body
    assert grown < MAX_GROWTH_KB, f"server peak memory grew by {grown} kB"
    media = folder / "voirie-media"
    assert not media.exists() or not any(media.iterdir())


def test_an_image_just_under_the_pixel_limit_is_decoded_once(
    live: tuple[LiveServer, Path, str],
) -> None:
    """36 megapixels in a 34 KB PNG (the limit is 40): stored, at the cost of about one
    decoded copy (it took 450 MB when the image was copied four times)."""
    server, _, key = live
    photo = _pixel_bomb(6000, rows=6000)
    assert len(photo) < 64 * 1024
    body = _multipart(key, photo)
    url = urlsplit(server.base)
    before = _peak_rss_kb(server.pid)
    with socket.create_connection((url.hostname, url.port), timeout=60) as sock:
        sock.sendall(
            f"POST {API}/media.json HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        status, answer = _answer(sock)
    grown = _peak_rss_kb(server.pid) - before
    assert status == 201, answer
    assert b'"width":6000' in answer.replace(b" ", b"")
    assert grown < 160 * 1024, f"server peak memory grew by {grown} kB"


def _noise_photo(side: int = 300) -> bytes:
    """A photo that JPEG cannot shrink much: random pixels (about 60 kB at this size)."""
    noise = random.Random(13).randbytes(side * side * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), noise).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (the test needs to be allowed to mount one), unmounted after."""
    folder = tmp_path / "full"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_answers_507_and_leaves_nothing_half_written(
    tiny_disk: Path, tmp_path: Path, paris: City, paris_gis: CityGIS
) -> None:
    served: Served = serve(f"sqlite:///{tmp_path / 'v.gpkg'}", paris, paris_gis, tiny_disk)
    try:
        free = os.statvfs(tiny_disk)
        filler = tiny_disk / "filler"
        filler.write_bytes(b"\0" * (free.f_bavail * free.f_frsize - 16 * 1024))
        photo = _noise_photo()

        def upload() -> httpx2.Response:
            return served.client.post(
                f"{API}/media.json",
                data={"api_key": served.client_key},
                files={"media": ("photo.png", photo, "image/png")},
            )

        full = upload()
        assert_error(full, 507, "storage is full", "nothing was stored")
        assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]  # no .upload-*

        filler.unlink()
        stored = upload()
        assert stored.status_code == 201, stored.text
        names = sorted(p.name for p in tiny_disk.iterdir())
        assert len(names) == 2
        assert all(name.endswith(".jpg") and not name.startswith(".") for name in names)
    finally:
        served.store.close()


@pytest.mark.parametrize(
    ("content_type", "parts", "status", "words"),
    [
        ("multipart/form-data", [], 400, "multipart/form-data"),  # no boundary
        (None, [("api_key", b"k")] * 9, 400, "more than 8 form fields"),
        (None, [("api_key", b"k" * 5000)], 400, "api_key: longer than 4096 bytes"),
        (None, [("media", b"a"), ("media", b"b")], 400, "one photo per upload"),
        (None, [("api_key", b"\xff\xfe")], 400, "api_key: not UTF-8"),
        (None, [("jurisdiction_id", b"x")], 400, "media: missing"),
    ],
    ids=["no-boundary", "too-many-fields", "long-field", "two-photos", "not-utf8", "no-photo"],
)
def test_malformed_upload_bodies_are_400s_naming_the_field(
    tmp_path: Path,
    paris: City,
    paris_gis: CityGIS,
    content_type: str | None,
    parts: list[tuple[str, bytes]],
    status: int,
    words: str,
) -> None:
    served = serve(f"sqlite:///{tmp_path / 'v.gpkg'}", paris, paris_gis, tmp_path / "m", load=False)
    try:
        body = (
            b"".join(
                _part(name, value, "p.png" if name == "media" else None) + b"\r\n"
                for name, value in parts
            )
            + f"--{BOUNDARY}--\r\n".encode()
        )
        answer = served.client.post(
            f"{API}/media.json",
            content=body,
            headers={"Content-Type": content_type or f"multipart/form-data; boundary={BOUNDARY}"},
        )
        assert_error(answer, status, words)
        assert not (tmp_path / "m").exists()
    finally:
        served.store.close()
