"""A real OpenID Connect provider for the staff sign-in tests, and the app served beside it.

The provider is the reference ``oidc-provider`` npm package (``tests/oidc_provider``,
installed by ``scripts/setup`` from its lock file) run by node on a free 127.0.0.1 port,
with a sign-in page that checks a login and password. Nothing in it is voirie's code.
The app is the whole ``create_app`` served by uvicorn on 127.0.0.1 with its
``VOIRIE_OIDC_*`` settings pointing at the provider, as a city would configure it.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
import uvicorn

from voirie.api.app import create_app
from voirie.settings import CitySettings, StoreSettings

PROVIDER_DIR = Path(__file__).parent / "oidc_provider"
START_TIMEOUT_S = 120.0  # node and the app start slowly on the shared machine
CLIENT_ID, CLIENT_SECRET = "voirie-paris", "un secret de client assez long"
PROVIDER_NAME = "Paris Connect"
TESTSERVER_CALLBACK = "http://testserver/staff/oidc/callback"


@dataclass(frozen=True)
class Person:
    """An account at the provider."""

    login: str
    password: str
    sub: str
    email: str
    email_verified: bool = True


def _unavailable(reason: str) -> NoReturn:
    """Skip locally, fail in CI where node and the provider package must be there."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"OpenID Connect provider cannot run in CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    """A port nobody listens on now (for a server that binds it itself)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def oidc_provider(
    redirect_uris: list[str],
    people: list[Person],
    post_logout_redirect_uris: list[str],
    *,
    logout: bool = True,
) -> Iterator[str]:
    """Run the provider with voirie as its one client (signing in back to
    ``redirect_uris``, signing out back to ``post_logout_redirect_uris``; ``logout=False``:
    a provider without RP-Initiated Logout); yield its issuer URL."""
    node = shutil.which("node")
    if node is None:
        _unavailable("node is not installed")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").exists():
        _unavailable("tests/oidc_provider/node_modules missing: run scripts/setup")
    port = free_port()
    clients = [
        {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": redirect_uris,
            "post_logout_redirect_uris": post_logout_redirect_uris,
        }
    ]
    accounts = {
        p.login: {
            "password": p.password,
            "sub": p.sub,
            "email": p.email,
            "email_verified": p.email_verified,
            "name": p.login.title(),
        }
        for p in people
    }
    env = os.environ | {
        "OIDC_CLIENTS": json.dumps(clients),
        "OIDC_ACCOUNTS": json.dumps(accounts),
        "NODE_ENV": "test",
        "OIDC_LOGOUT": "on" if logout else "off",
    }
    process = subprocess.Popen(
        [node, "server.mjs", str(port)],
        cwd=PROVIDER_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_S)
        line = process.stdout.readline() if ready else ""  # "ready <issuer>" once it listens
        assert line.startswith("ready "), f"the provider did not start: {line!r}"
        yield line.split()[1]
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def oidc_environment(issuer: str, **extra: str) -> dict[str, str]:
    """The ``VOIRIE_OIDC_*`` settings of a city using the provider at ``issuer``."""
    return {
        "VOIRIE_OIDC_ISSUER": issuer,
        "VOIRIE_OIDC_CLIENT_ID": CLIENT_ID,
        "VOIRIE_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "VOIRIE_OIDC_PROVIDER_NAME": PROVIDER_NAME,
        **extra,
    }


@contextmanager
def served_app(database_url: str, sock: socket.socket, env: dict[str, str]) -> Iterator[str]:
    """``create_app`` for Paris on ``database_url``, built with ``env`` set, served by
    uvicorn on the bound socket ``sock``; yield its base URL."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        app = create_app(StoreSettings(database_url=database_url), CitySettings(city="paris"))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", ws="none"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def bound_socket() -> socket.socket:
    """A socket bound to a free 127.0.0.1 port (the app's, known before it starts)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock
