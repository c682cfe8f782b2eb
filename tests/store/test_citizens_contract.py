"""Storage contract of supporters and followers: both backends count and forget alike."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from voirie.services.pipeline import Pipeline
from voirie.store.selection import Selection

AT = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def _first(pipeline: Pipeline) -> int:
    return int(pipeline.reads.incidents(Selection(limit=1))["incident_id"].iloc[0])


def test_supporters_count_an_email_once(pipeline: Pipeline) -> None:
    incident_id = _first(pipeline)
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        outcomes = [
            uow.citizens.add_supporter(incident_id, "a@example.org", AT),
            uow.citizens.add_supporter(incident_id, "a@example.org", AT),
            uow.citizens.add_supporter(incident_id, None, AT),
            uow.citizens.add_supporter(incident_id, None, AT),
        ]
    assert outcomes == [(True, 1), (False, 1), (True, 2), (True, 3)]
    found = pipeline.reads.incidents(Selection(ids=(incident_id,)))
    assert int(found["supporters"].iloc[0]) == 3


def test_followers_are_added_and_removed_once(pipeline: Pipeline) -> None:
    incident_id = _first(pipeline)
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        added = [uow.citizens.add_follower(incident_id, "b@example.org", AT) for _ in range(2)]
        removed = [uow.citizens.remove_follower(incident_id, "b@example.org") for _ in range(2)]
    assert added == [True, False]
    assert removed == [True, False]


def _support_then_fail(pipeline: Pipeline, incident_id: int) -> None:
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        uow.citizens.add_supporter(incident_id, "c@example.org", AT)
        raise RuntimeError("the event write after it failed")


def test_a_rolled_back_support_leaves_nothing(pipeline: Pipeline) -> None:
    incident_id = _first(pipeline)
    with pytest.raises(RuntimeError):
        _support_then_fail(pipeline, incident_id)
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        assert uow.citizens.add_supporter(incident_id, "c@example.org", AT) == (True, 1)
