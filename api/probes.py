"""``/readyz``: whether this process should get traffic (``/healthz`` says it is alive).

Ready means the database answers and its schema is the one this code was written for
(every migration applied). The read replicas' states are shown, not required: with none
keeping up, the primary answers the public reads too. A load balancer takes a worker out
while it answers 503, for instance while the database is down or before ``voirie db
upgrade`` has run.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from voirie.errors import VoirieError
from voirie.services.pipeline import Pipeline
from voirie.store.base import migrations
from voirie.store.replicas import ReplicaStatus, ReplicatedStore

router = APIRouter(tags=["operations"])


def readiness(pipeline: Pipeline) -> tuple[bool, dict[str, object]]:
    """(ready, what was checked): the database reached and its migrations current."""
    store = pipeline.store
    expected = max(version for version, _, _ in migrations(store.backend))
    try:
        applied = store.schema_version()
    except VoirieError as exc:
        return False, {"database": "unreachable", "detail": exc.message}
    checks: dict[str, object] = {
        "database": "reachable",
        "schema_version": applied,
        "expected_schema_version": expected,
    }
    if applied != expected:
        checks["detail"] = (
            f"schema at migration {applied}, this code needs {expected}: run voirie db upgrade"
        )
    if isinstance(store, ReplicatedStore):
        # Shown, not required: with no replica keeping up the primary answers every read.
        checks["read_replicas"] = [replica_check(status) for status in store.statuses()]
    return applied == expected, checks


def replica_check(status: ReplicaStatus) -> dict[str, object]:
    """One read replica as ``/readyz`` shows it: its state, lag and why it is not used."""
    shown: dict[str, object] = {"replica": status.name, "state": status.state}
    if status.lag_s is not None:
        shown["lag_s"] = round(status.lag_s, 3)
    if status.detail is not None:
        shown["detail"] = status.detail
    return shown


@router.get(
    "/readyz",
    summary="Readiness: database reachable and migrations current",
    responses={503: {"description": "Not ready: the database is unreachable or behind"}},
)
async def readyz(request: Request) -> JSONResponse:
    """200 when the database answers and every migration is applied; 503 otherwise."""
    ready, checks = await run_in_threadpool(readiness, request.app.state.pipeline)
    status = "ready" if ready else "not ready"
    return JSONResponse({"status": status, **checks}, status_code=200 if ready else 503)
