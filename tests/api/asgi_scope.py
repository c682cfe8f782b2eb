"""An HTTP request's ASGI scope as the test client's server would build it, for tests that
call the edge's own code (``Gate``'s quick answers) on a request without sending it."""

from __future__ import annotations

from typing import Any


def http_scope(method: str, path: str, query: str, app: Any, **headers: str) -> dict[str, Any]:
    """The scope of ``method path?query`` with ``headers`` (latin-1, as HTTP carries them)
    sent to ``app`` from the test client's address."""
    return {
        "type": "http",
        "method": method,
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("testclient", 50000),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(b"host", b"testserver")]
        + [(k.encode(), v.encode("latin-1")) for k, v in headers.items()],
        "app": app,
    }
