"""Domain errors. Each carries its HTTP status, its Open311 code and a message safe to show.

Handlers at the edge (CLI, API) render them; the domain never raises web-framework
exceptions.
"""

from __future__ import annotations


class VoirieError(Exception):
    """Base class: ``message`` is safe to show to the person who caused it."""

    status: int = 500
    open311_code: int = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(VoirieError):
    """A value a client sent is missing or malformed; ``field`` names it."""

    status = 400
    open311_code = 400


class Unauthorized(VoirieError):
    """No credentials, or credentials voirie does not know (HTTP 401)."""

    status = 401
    open311_code = 401


class Forbidden(VoirieError):
    """Known credentials whose role or team does not allow the operation (HTTP 403)."""

    status = 403
    open311_code = 403


class NotFound(VoirieError):
    """The thing asked for does not exist in this jurisdiction (HTTP 404)."""

    status = 404
    open311_code = 404


class Conflict(VoirieError):
    """The request is valid but the current state refuses it (HTTP 409), e.g. a status
    change the workflow does not allow; ``allowed`` lists what the state would accept."""

    status = 409
    open311_code = 409

    def __init__(
        self, message: str, *, field: str | None = None, allowed: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message, field=field)
        self.allowed = allowed


class IdempotencyKeyReused(VoirieError):
    """An Idempotency-Key sent again with another request body (HTTP 422, as the IETF
    draft on the Idempotency-Key header says): a new request needs a new key."""

    status = 422
    open311_code = 422


class TooLarge(VoirieError):
    """An upload or a request is larger than the configured limit (HTTP 413)."""

    status = 413
    open311_code = 413


class UnsupportedMedia(VoirieError):
    """An upload is not of an accepted type (HTTP 415); the message lists the accepted ones."""

    status = 415
    open311_code = 415


class InsufficientStorage(VoirieError):
    """The server's disk is full (HTTP 507): nothing was stored; worth a retry later."""

    status = 507
    open311_code = 507


class CityConfigError(VoirieError):
    """A city folder is invalid; ``problems`` lists every problem with its file and key."""

    status = 500

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid city configuration:\n  - " + "\n  - ".join(problems))
        self.problems = problems


class SourceError(VoirieError):
    """An input file cannot be read at all (as opposed to bad rows, which are quarantined)."""

    status = 400
    open311_code = 400


class StoreError(VoirieError):
    """The storage backend failed or is not reachable."""

    status = 503
    open311_code = 503
