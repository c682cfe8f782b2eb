"""The incident workflow on real Paris incidents, on every storage backend: transitions as
data, each change written with its event in one transaction, under the incident's lock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pandas as pd
import pytest

from voirie.city import TRIAGE_TEAM
from voirie.errors import Conflict, Forbidden, InvalidInput, NotFound, VoirieError
from voirie.model import OPEN_STATUSES, EventKind, Status
from voirie.services import workflow
from voirie.services.auth import Principal, Role
from voirie.services.pipeline import Pipeline
from voirie.services.workflow import REASSIGNED_PUBLICLY
from voirie.settings import StoreSettings
from voirie.store import open_store
from voirie.store.selection import Selection

OWN, OTHER = "graffitis", "Ramen"
DISPATCHER = Principal("Dominique (dispatch)", Role.DISPATCHER)
AGENT = Principal("Ali (graffitis)", Role.AGENT, frozenset({OWN}))
GIS = Principal("Gaëlle (SIG)", Role.GIS)
AT = datetime(2024, 5, 2, 9, 30, tzinfo=UTC)


def _incident(pipeline: Pipeline, incident_id: int) -> pd.Series:
    return pipeline.reads.incidents(Selection(ids=(incident_id,))).iloc[0]


def _first(pipeline: Pipeline, team: str) -> int:
    frame = pipeline.reads.incidents(Selection(teams=(team,), limit=1))
    return int(frame["incident_id"].iloc[0])


def _events(pipeline: Pipeline, incident_id: int) -> pd.DataFrame:
    events = pipeline.store.lookup(
        "events", pipeline.city.jurisdiction_id, "entity_id", [incident_id]
    )
    return events[events["entity"] == "incident"].reset_index(drop=True)


def _status(
    pipeline: Pipeline,
    incident_id: int,
    to: Status | str,
    who: Principal = DISPATCHER,
    reason: str = "",
) -> int:
    return workflow.change_status(
        pipeline.store, pipeline.city, incident_id, who, to, reason, at=AT
    )


def test_the_workflow_table_covers_every_status() -> None:
    assert set(workflow.TRANSITIONS) == set(Status)
    for source, targets in workflow.TRANSITIONS.items():
        assert source not in targets
        assert Status.DUPLICATE not in targets  # only merging sets it
    # Every open incident can be resolved, directly or through another open status.
    for status in OPEN_STATUSES:
        assert Status.RESOLVED in workflow.allowed_statuses(status)
    assert workflow.allowed_statuses(Status.CLOSED) == ()


def test_status_change_writes_the_incident_and_its_event(pipeline: Pipeline) -> None:
    incident_id = _first(pipeline, OWN)
    before = _incident(pipeline, incident_id)
    event_id = _status(pipeline, incident_id, "acknowledged", reason="vu par l'équipe")
    after = _incident(pipeline, incident_id)
    assert after["status"] == Status.ACKNOWLEDGED
    assert after["updated_at"] == pd.Timestamp(AT)
    assert after["team"] == before["team"]
    event = _events(pipeline, incident_id).set_index("id").loc[event_id]
    assert event["kind"] == EventKind.STATUS_CHANGED
    assert event["actor"] == DISPATCHER.name
    assert event["reason"] == "new → acknowledged: vu par l'équipe"
    assert event["at"] == pd.Timestamp(AT)


def test_a_walk_through_the_workflow_and_refusals_listing_what_is_allowed(
    pipeline: Pipeline,
) -> None:
    incident_id = _first(pipeline, OWN)
    for step in ("acknowledged", "scheduled", "in_progress", "resolved", "closed"):
        _status(pipeline, incident_id, step, who=AGENT)
    with pytest.raises(Conflict) as refused:
        _status(pipeline, incident_id, "in_progress")
    assert refused.value.allowed == ()
    assert "none (closed is final)" in refused.value.message
    other = _first(pipeline, OTHER)
    with pytest.raises(Conflict) as early:
        _status(pipeline, other, "closed")
    assert early.value.allowed == (
        "acknowledged",
        "scheduled",
        "in_progress",
        "resolved",
        "rejected",
    )
    assert early.value.field == "status"
    with pytest.raises(InvalidInput, match="reason: must not be empty"):
        _status(pipeline, other, "rejected", reason="  ")
    with pytest.raises(InvalidInput, match="unknown status 'done'"):
        _status(pipeline, other, "done")
    assert _incident(pipeline, other)["status"] == Status.NEW
    assert len(_events(pipeline, incident_id)) == 1 + 5  # routed + five changes


def test_agents_act_on_their_team_only_and_gis_never(pipeline: Pipeline) -> None:
    own, other = _first(pipeline, OWN), _first(pipeline, OTHER)
    with pytest.raises(Forbidden, match="'Ramen'"):
        _status(pipeline, other, "acknowledged", who=AGENT)
    with pytest.raises(Forbidden, match="any team"):
        _status(pipeline, own, "acknowledged", who=GIS)
    with pytest.raises(Forbidden):
        workflow.comment(pipeline.store, pipeline.city, other, AGENT, "pas chez nous")
    with pytest.raises(NotFound, match="incident 999999"):
        _status(pipeline, 999_999, "acknowledged")
    assert _events(pipeline, other)["kind"].tolist() == [EventKind.ROUTED]


def test_reassign_writes_an_assignment_by_a_person_and_keeps_the_promise(
    pipeline: Pipeline,
) -> None:
    incident_id = _first(pipeline, OWN)
    before = _incident(pipeline, incident_id)
    workflow.reassign(
        pipeline.store, pipeline.city, incident_id, DISPATCHER, OTHER, "tag on a Ramen site", at=AT
    )
    after = _incident(pipeline, incident_id)
    assert after["team"] == OTHER
    assert after["priority"] == before["priority"]
    assert (
        pd.isna(after["due_at"])
        if pd.isna(before["due_at"])
        else (after["due_at"] == before["due_at"])
    )
    assert pd.isna(after["rule_id"])
    assert after["routing_reason"] == REASSIGNED_PUBLICLY  # who and why stay internal
    assignments = pipeline.store.lookup(
        "assignments", pipeline.city.jurisdiction_id, "incident_id", [incident_id]
    )
    latest = assignments.iloc[-1]
    assert len(assignments) == 2
    assert (latest["team"], latest["actor"]) == (OTHER, DISPATCHER.name)
    assert pd.isna(latest["rule_id"])
    assert pd.isna(latest["rule_version"])
    event = _events(pipeline, incident_id).iloc[-1]
    assert (event["kind"], event["reason"]) == (
        EventKind.REASSIGNED,
        f"{OWN} → {OTHER}: tag on a Ramen site",
    )
    due = datetime(2024, 5, 10, 17, 0, tzinfo=UTC)
    workflow.reassign(
        pipeline.store,
        pipeline.city,
        incident_id,
        DISPATCHER,
        OWN,
        "back",
        priority=1,
        due_at=due,
        at=AT,
    )
    again = _incident(pipeline, incident_id)
    assert (again["team"], again["priority"], again["due_at"]) == (OWN, 1, pd.Timestamp(due))
    # The stored due date is kept by a reassignment that does not give one.
    workflow.reassign(pipeline.store, pipeline.city, incident_id, DISPATCHER, TRIAGE_TEAM, "unsure")
    kept = _incident(pipeline, incident_id)
    assert (kept["team"], kept["priority"], kept["due_at"]) == (TRIAGE_TEAM, 1, pd.Timestamp(due))


@pytest.mark.parametrize(
    ("who", "team", "error", "words"),
    [
        (AGENT, OTHER, Forbidden, "only hand incidents back to triage"),
        (GIS, TRIAGE_TEAM, Forbidden, "may not hand back incidents of any team"),
        (DISPATCHER, "NOPE", InvalidInput, "team: unknown team 'NOPE'"),
        (DISPATCHER, OWN, Conflict, "already assigned to 'graffitis'"),
    ],
)
def test_reassign_refusals(
    pipeline: Pipeline, who: Principal, team: str, error: type[VoirieError], words: str
) -> None:
    incident_id = _first(pipeline, OWN)
    with pytest.raises(error, match=words):
        workflow.reassign(pipeline.store, pipeline.city, incident_id, who, team, "why")
    assert _incident(pipeline, incident_id)["team"] == OWN


def test_an_agent_hands_back_to_triage_then_no_longer_acts_on_it(pipeline: Pipeline) -> None:
    incident_id = _first(pipeline, OWN)
    workflow.reassign(pipeline.store, pipeline.city, incident_id, AGENT, TRIAGE_TEAM, "pas un tag")
    assert _incident(pipeline, incident_id)["team"] == TRIAGE_TEAM
    with pytest.raises(Forbidden):
        _status(pipeline, incident_id, "acknowledged", who=AGENT)


def test_a_failed_transaction_leaves_no_change_and_no_event(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The status is written, then the citizens' notification fails: nothing is kept."""
    incident_id = _first(pipeline, OWN)

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the outbox write after the change failed")

    monkeypatch.setattr(workflow, "notify_citizens", fail)
    with pytest.raises(RuntimeError):
        workflow.change_status(
            pipeline.store, pipeline.city, incident_id, DISPATCHER, "acknowledged"
        )
    assert _incident(pipeline, incident_id)["status"] == Status.NEW
    assert _events(pipeline, incident_id)["kind"].tolist() == [EventKind.ROUTED]


def test_concurrent_changes_of_one_incident_serialize(pipeline: Pipeline, store_url: str) -> None:
    """Two dispatchers acknowledge the same incident at once: one wins, the other is told
    the transition is no longer allowed (the incident is read under its lock)."""
    incident_id = _first(pipeline, OWN)
    results: list[str] = []
    start = threading.Barrier(2)

    def acknowledge() -> None:
        store = open_store(StoreSettings(database_url=store_url, pool_min_size=1, pool_max_size=1))
        try:
            start.wait()
            workflow.change_status(store, pipeline.city, incident_id, DISPATCHER, "acknowledged")
            results.append("ok")
        except Conflict:
            results.append("conflict")
        finally:
            store.close()

    threads = [threading.Thread(target=acknowledge) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["conflict", "ok"]
    kinds = _events(pipeline, incident_id)["kind"].tolist()
    assert kinds.count(EventKind.STATUS_CHANGED) == 1


def test_comments_are_events_and_must_say_something(pipeline: Pipeline) -> None:
    incident_id = _first(pipeline, OTHER)
    stored = workflow.comment(
        pipeline.store, pipeline.city, incident_id, DISPATCHER, "  rappeler lundi  "
    )
    event = _events(pipeline, incident_id).iloc[-1]
    assert (event["id"], event["kind"], event["actor"], event["reason"], event["at"]) == (
        stored.event_id,
        EventKind.COMMENTED,
        DISPATCHER.name,
        stored.text,
        pd.Timestamp(stored.at),
    )
    assert stored.text == "rappeler lundi"
    with pytest.raises(InvalidInput, match="text: at most 5000"):
        workflow.comment(pipeline.store, pipeline.city, incident_id, DISPATCHER, "x" * 5_001)


def test_store_lookup_reads_rows_by_column(pipeline: Pipeline) -> None:
    """``Store.lookup``, which the case file reads through, on every backend."""
    store, j = pipeline.store, pipeline.city.jurisdiction_id
    incident_id = _first(pipeline, OWN)
    rows = store.lookup("assignments", j, "incident_id", [incident_id, 999_999])
    assert list(rows.columns) == [
        "id",
        "jurisdiction_id",
        "incident_id",
        "team",
        "rule_id",
        "rule_version",
        "reason",
        "priority",
        "due_at",
        "assigned_at",
        "actor",
    ]
    assert rows["incident_id"].tolist() == [incident_id]
    assert isinstance(rows["assigned_at"].iloc[0], pd.Timestamp)
    assert str(rows["assigned_at"].iloc[0].tz) == "UTC"
    events = store.lookup("events", j, "entity_id", [3, 1, 2])
    assert events["entity_id"].tolist() == sorted(events["entity_id"].tolist())
    assert set(events["entity_id"]) == {1, 2, 3}
    assert store.lookup("events", "elsewhere.example", "entity_id", [1]).empty
    empty = store.lookup("report_contacts", j, "report_id", [])
    assert empty.empty
    assert "email" in empty.columns
    with pytest.raises(KeyError):
        store.lookup("events", j, "entity_id; DROP TABLE events", [1])
