"""What every Open311 route needs: its settings, the jurisdiction check, the client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Query, Request

from voirie.api.deps import PipelineDep
from voirie.api.open311.settings import Open311Settings
from voirie.errors import Forbidden, NotFound, Unauthorized
from voirie.services.auth import Principal, Role, identify
from voirie.services.pipeline import Pipeline


async def _settings(request: Request) -> Open311Settings:
    settings: Open311Settings = request.app.state.open311_settings
    return settings


SettingsDep = Annotated[Open311Settings, Depends(_settings)]


def check_jurisdiction(pipeline: Pipeline, jurisdiction_id: str | None) -> None:
    """Accept the city's own jurisdiction_id (or none); 404 for any other, naming ours."""
    if jurisdiction_id is not None and jurisdiction_id != pipeline.city.jurisdiction_id:
        raise NotFound(
            f"jurisdiction_id: {jurisdiction_id[:80]!r} is not served here; this server "
            f"serves {pipeline.city.jurisdiction_id!r} ({pipeline.city.config.name})",
            field="jurisdiction_id",
        )


async def _jurisdiction(
    pipeline: PipelineDep,
    jurisdiction_id: Annotated[
        str | None, Query(description="the city's jurisdiction id; optional here")
    ] = None,
) -> None:
    check_jurisdiction(pipeline, jurisdiction_id)


JurisdictionDep = Depends(_jurisdiction)


def client(pipeline: Pipeline, api_key: str | None, roles: frozenset[Role]) -> Principal:
    """The holder of an Open311 ``api_key`` whose role is one of ``roles``; 403 otherwise,
    as GeoReport v2 answers an invalid api_key, saying (as the staff API does) whether the
    key is unknown, revoked or expired, so that a client's operator knows what to fix."""
    if not api_key:
        raise Forbidden("api_key: missing; ask the city for an Open311 client key", field="api_key")
    return admitted(lambda: identify(pipeline.store, pipeline.city.jurisdiction_id, api_key), roles)


def admitted(holder: Callable[[], Principal], roles: frozenset[Role]) -> Principal:
    """The principal ``holder`` finds, if its role is one of ``roles``; 403 naming
    ``api_key`` otherwise (``Unauthorized``'s words: unknown, revoked or expired). Shared
    by ``client`` and the POST, which reads the key in its own transaction."""
    try:
        principal = holder()
    except Unauthorized as refused:
        raise Forbidden(f"api_key: {refused.message}", field="api_key") from None
    if principal.role not in roles:
        raise Forbidden(
            f"api_key: a {principal.role} key may not do this; allowed: {', '.join(sorted(roles))}",
            field="api_key",
        )
    return principal
