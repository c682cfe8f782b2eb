"""Bulk actions of the staff queue: one status change, reassignment or merge over a
selection of incidents, in one transaction.

Each incident goes through the very use case a single change uses (``workflow``,
``merging``: same checks, same events, same notifications), but all of them share one
transaction: either every incident of the selection changes, with every event, or none
does, and the error names the incident that refused.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, cast

from voirie.errors import InvalidInput, NotFound
from voirie.model import Status
from voirie.services import merging, workflow
from voirie.services.auth import Action, Principal
from voirie.services.pipeline import Pipeline
from voirie.store.base import Store, UnitOfWork
from voirie.store.selection import Selection

MAX_BULK = 200
"""Incidents one bulk action may change (a page of the queue, with room)."""


class _Joined:
    """The store as seen from inside one open transaction: ``transaction()`` hands out
    that transaction again (committed or rolled back by its owner), every other method
    is the store's own. It lets the single-incident use cases run in a bulk transaction."""

    def __init__(self, store: Store, uow: UnitOfWork) -> None:
        self._store = store
        self._uow = uow

    @contextmanager
    def transaction(self, jurisdiction_id: str, *, pipelined: bool = False) -> Iterator[UnitOfWork]:
        yield self._uow

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@contextmanager
def _one_transaction(pipeline: Pipeline) -> Iterator[Pipeline]:
    """A copy of the pipeline whose store runs every use case in one transaction."""
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        joined = copy.copy(pipeline)
        # _Joined implements what the use cases call of a Store (transaction) and passes
        # the rest through: a structural stand-in, not a subclass.
        joined.store = cast(Store, _Joined(pipeline.store, uow))
        yield joined


def checked_ids(ids: Sequence[int]) -> tuple[int, ...]:
    """The selection's ids, each once in the order given; ``InvalidInput`` naming ``ids``
    when empty or larger than ``MAX_BULK``."""
    unique = tuple(dict.fromkeys(int(i) for i in ids))
    if not unique:
        raise InvalidInput("ids: select at least one incident", field="ids")
    if len(unique) > MAX_BULK:
        raise InvalidInput(
            f"ids: at most {MAX_BULK} incidents at once, got {len(unique)}", field="ids"
        )
    return unique


def bulk_status(
    pipeline: Pipeline,
    principal: Principal,
    ids: Sequence[int],
    status: Status | str,
    reason: str = "",
    *,
    at: datetime | None = None,
) -> tuple[int, ...]:
    """Move every selected incident to ``status``; the incidents changed."""
    selected = checked_ids(ids)
    now = at or datetime.now(UTC)
    with _one_transaction(pipeline) as joined:
        for incident_id in selected:
            workflow.change_status(
                joined.store, joined.city, incident_id, principal, status, reason, at=now
            )
    return selected


def bulk_reassign(
    pipeline: Pipeline,
    principal: Principal,
    ids: Sequence[int],
    team: str,
    reason: str,
    *,
    at: datetime | None = None,
) -> tuple[int, ...]:
    """Give every selected incident to ``team`` (those already there are left alone);
    the incidents changed."""
    selected = checked_ids(ids)
    now = at or datetime.now(UTC)
    current = _teams(pipeline, selected)
    moved = tuple(i for i in selected if current[i] != team)
    with _one_transaction(pipeline) as joined:
        for incident_id in moved:
            workflow.reassign(
                joined.store, joined.city, incident_id, principal, team, reason, at=now, learn=False
            )
    # Learned from once committed, on the store's own connections.
    if moved:
        services = _teams(pipeline, moved, "service_code")
        workflow.learn_from(pipeline.store, pipeline.city, sorted(set(services.values())))
    return moved


def bulk_merge(
    pipeline: Pipeline,
    principal: Principal,
    ids: Sequence[int],
    reason: str,
    *,
    at: datetime | None = None,
) -> tuple[int, ...]:
    """Merge every selected incident into the first one; the incidents merged away."""
    selected = checked_ids(ids)
    if len(selected) < 2:
        raise InvalidInput("ids: select at least two incidents to merge", field="ids")
    for team in _teams(pipeline, selected).values():
        principal.check(Action.MERGE, team)
    survivor, merged = selected[0], selected[1:]
    now = at or datetime.now(UTC)
    with _one_transaction(pipeline) as joined:
        for incident_id in merged:
            merging.merge(joined, survivor, incident_id, principal.name, reason, at=now)
    return merged


def _teams(pipeline: Pipeline, ids: tuple[int, ...], column: str = "team") -> dict[int, str]:
    """Each incident's team (or other ``column``), or ``NotFound`` naming the first that
    does not exist."""
    found = pipeline.reads.incidents(Selection(ids=ids))
    teams = dict(zip(found["incident_id"].astype(int), found[column].astype(str), strict=True))
    for incident_id in ids:
        if incident_id not in teams:
            raise NotFound(f"ids: incident {incident_id} does not exist", field="ids")
    return teams
