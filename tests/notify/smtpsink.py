"""A real SMTP server for the tests (aiosmtpd on 127.0.0.1) keeping every message, and
the text and HTML parts of a multipart/alternative email."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast

from aiosmtpd.controller import Controller


class Sink:
    """aiosmtpd handler keeping every message (parsed with the modern email policy)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append(cast(EmailMessage, parsed))
        return "250 OK"

    def take(self) -> list[EmailMessage]:
        """The messages received so far, forgotten."""
        taken, self.messages = self.messages, []
        return taken


def running_sink() -> Iterator[tuple[Sink, int]]:
    """A started SMTP server and its port, stopped when the generator ends."""
    sink = Sink()
    with socket.socket() as probe:  # a free port (aiosmtpd checks it can connect to it)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


def parts(message: EmailMessage) -> tuple[str, str]:
    """The text and the HTML alternatives of an email."""
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    return str(text.get_content()), str(html.get_content())
