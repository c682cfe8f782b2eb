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
