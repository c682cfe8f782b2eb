"""Request bodies over their route's limit are refused with 413 while they stream in.

A real ``voirie serve`` receives 200 MB bodies over a raw socket, with a Content-Length
and chunked without one, on a staff route (no token: the limit comes before
authentication), an Open311 form route and the photo upload: each answers 413 in the
route's error shape within seconds, and the server's peak memory does not grow.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from liveserver import LiveServer, serving

BODY_BYTES = 200 * 1024 * 1024
CHUNK = b"\0" * (64 * 1024)
ANSWER_WITHIN_S = 5.0
MAX_GROWTH_KB = 4 * 1024  # "a few MB": the 200 MB must never be held
STAFF = "/api/v1/incidents/1/status"
OPEN311_FORM = "/open311/v2/requests.json"
OPEN311_MEDIA = "/open311/v2/media.json"
MULTIPART = "multipart/form-data; boundary=xyz"
# A well-formed start of an upload, so the parser goes on reading the file part.
PHOTO_PART = (
    b'--xyz\r\nContent-Disposition: form-data; name="media"; filename="p.jpg"\r\n'
    b"Content-Type: image/jpeg\r\n\r\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("limits")
    with serving(f"sqlite:///{folder / 'voirie.gpkg'}", folder) as live:
        yield live


@dataclass
class Answer:
    """What the server answered, how fast, and how much of the body it let us send."""

    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float
    sent: int


def _body(chunked: bool) -> Iterator[bytes]:
    """200 MB in 64 KiB pieces (the upload's part header first), framed or not."""
    for number in range(BODY_BYTES // len(CHUNK)):
        piece = PHOTO_PART + CHUNK[len(PHOTO_PART) :] if number == 0 else CHUNK
        yield b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
    if chunked:
        yield b"0\r\n\r\n"


def _post(server: LiveServer, path: str, content_type: str, *, chunked: bool) -> Answer:
    """POST a 200 MB body while reading the answer, as an abusive client would."""
    url = urlsplit(server.base)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {BODY_BYTES}"
    head = f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: {content_type}\r\n"
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    sent = 0

    def feed() -> None:
        nonlocal sent
        try:
            for piece in _body(chunked):
                sock.sendall(piece)
                sent += len(piece)
        except OSError:
            pass  # the server answered and closed: what we want

    started = time.monotonic()
    sock.sendall(f"{head}{framing}\r\n\r\n".encode())
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data) < _length(data):
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    finally:
        seconds = time.monotonic() - started
        with contextlib.suppress(OSError):  # already reset by the server
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        feeder.join(timeout=30)
    head_text, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head_text.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return Answer(int(status_line.split()[1]), headers, body, seconds, sent)


def _length(data: bytes) -> int:
    """Bytes of a complete answer whose head is in ``data`` (head, then Content-Length)."""
    head, _, _ = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    return len(data)


def _peak_rss_kb(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    ("path", "content_type", "open311"),
    [
        (STAFF, "application/json", False),
        (OPEN311_FORM, "application/x-www-form-urlencoded", True),
        (OPEN311_MEDIA, MULTIPART, True),
    ],
    ids=["staff-json", "open311-form", "open311-media"],
)
def test_200_mb_body_is_refused_while_streaming(
    server: LiveServer, path: str, content_type: str, open311: bool, chunked: bool
) -> None:
    _post(server, path, content_type, chunked=chunked)  # warm up: lazy imports, pools
    before = _peak_rss_kb(server.pid)
    answer = _post(server, path, content_type, chunked=chunked)
    grown = _peak_rss_kb(server.pid) - before

    assert answer.status == 413, answer.body
    assert answer.seconds < ANSWER_WITHIN_S
    assert answer.sent < BODY_BYTES // 4, "the server kept reading past the limit"
    assert grown < MAX_GROWTH_KB, f"server peak memory grew by {grown} kB"
    document = json.loads(answer.body)
    # A photo upload meets the photo's limit (the parser's) or the body's, a multipart
    # overhead above it (the edge's), first as the server's reads happen to cut the
    # stream: either refuses it while streaming.
    limits = ("request body", "media") if path == OPEN311_MEDIA else ("request body",)
    if open311:
        assert answer.headers["content-type"].startswith("application/json")
        assert [e["code"] for e in document] == [413]
        assert document[0]["description"].startswith(tuple(f"{w}: larger than" for w in limits))
    else:
        assert answer.headers["content-type"] == "application/problem+json"
        assert document["status"] == 413
        assert "request body: larger than" in document["detail"]


def test_bodies_within_the_limit_still_reach_the_route(server: LiveServer) -> None:
    """A small unauthenticated JSON body goes on to authentication (401), not 413."""
    url = urlsplit(server.base)
    body = b'{"status": "closed"}'
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(
            f"POST {STAFF} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        data = b""
        while piece := sock.recv(65536):
            data += piece
    assert data.split()[1] == b"401", data
