"""JSON logs, one object a line, each carrying the id of the request it was written for.

The request id is the client's ``X-Request-ID`` when it is a sensible token (a proxy or a
client tracing a call), otherwise a new one; it is echoed in the response and kept in a
context variable, so that every line written while the request runs (in the event loop
or in a worker thread) says which request it belongs to.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

REQUEST_ID: ContextVar[str | None] = ContextVar("voirie_request_id", default=None)
_SENSIBLE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Attributes every LogRecord has: anything else was passed with ``extra=`` and is logged.
# uvicorn's color_message repeats the message with terminal colours.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "request_id",
    "color_message",
}


def request_id(offered: str | None) -> str:
    """The client's id when it is 1 to 128 characters of ``[A-Za-z0-9._:-]``, else a new one."""
    if offered is not None and _SENSIBLE_ID.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Put the current request's id on every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time (UTC), level, logger, message, request id, the
    fields given with ``extra=`` and the traceback, if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "pid": record.process,  # which worker, with voirie serve --workers N
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def log_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` (also uvicorn's ``log_config``) writing JSON lines
    to stderr, for voirie's loggers and uvicorn's own (its access log is replaced by
    ``voirie.access``, which knows the request id and the route)."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_id"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": handler},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
