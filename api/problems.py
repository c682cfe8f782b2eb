"""The error body of every non-Open311 route (RFC 9457 problem details), declared once.

Domain errors carry their status (``voirie.errors``); the app's handler renders them as
``application/problem+json``. Every router of the app declares these responses, so the
OpenAPI document says what a client may really receive.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """An error (RFC 9457 problem details), as every non-Open311 route renders it."""

    type: str = "about:blank"
    title: str = Field(description="the error class, e.g. Forbidden")
    status: int
    detail: str = Field(description="what went wrong, safe to show")
    field: str | None = Field(default=None, description="the request field at fault")
    allowed: list[str] | None = Field(
        default=None, description="for a refused status change: the statuses allowed"
    )


# "model" registers the schema as a component (FastAPI lists it under the route's own media
# type); the body is really served as problem+json, declared beside it.
PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {
        "model": Problem,
        "description": text,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for code, text in {
        400: "Invalid input: the field and the reason",
        401: "Missing or unknown API token",
        403: "The token's role or team does not allow this",
        404: "No such incident, report, collection or feature",
        409: "Refused by the incident's current state (e.g. a workflow transition)",
        413: "The upload is too large",
        415: "The upload's media type is not accepted",
    }.items()
}
