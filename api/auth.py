"""FastAPI dependencies that authenticate a request and check its role.

Staff routes take ``Authorization: Bearer TOKEN`` (Open311 routes read the same tokens
as ``api_key`` through ``voirie.services.auth.authenticate``), checked against the store
on every request, so a revoked or expired token is refused at once on every worker.
Failures are domain errors (``Unauthorized`` 401, ``Forbidden`` 403) rendered by the app's
error handler, never ``HTTPException``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from voirie.api.deps import PipelineDep
from voirie.errors import Forbidden, Unauthorized
from voirie.services.auth import Principal, Role, identify

# auto_error=False: a missing header becomes our Unauthorized (problem+json), not
# FastAPI's own 403; the scheme still appears in the OpenAPI document.
bearer_scheme = HTTPBearer(
    auto_error=False,
    description="An API token created with `voirie tokens add NAME --role ROLE`.",
)


def bearer_principal(
    pipeline: PipelineDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The holder of the request's bearer token; 401 when missing, unknown, revoked or
    expired (read from the store on every request: a revoke applies at once)."""
    if credentials is None:
        raise Unauthorized("missing API token: send the header 'Authorization: Bearer TOKEN'")
    return identify(pipeline.store, pipeline.city.jurisdiction_id, credentials.credentials)


def require(*roles: Role) -> Callable[..., Principal]:
    """A dependency returning the request's principal when their role is one of ``roles``."""
    allowed = frozenset(roles)

    def dependency(
        principal: Annotated[Principal, Depends(bearer_principal)],
    ) -> Principal:
        if principal.role not in allowed:
            raise Forbidden(
                f"role {principal.role} may not use this route; "
                f"allowed: {', '.join(sorted(allowed))}"
            )
        return principal

    return dependency
