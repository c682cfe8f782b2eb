"""Concurrent submissions of one process commit together (``Intake``'s group commit).

Group commit is on by default on sqlite only (``GROUPS_AT_ONCE``); these tests turn it on
(one group at a time) on both backends, so that PostgreSQL's ``xmin`` can show which
reports one transaction wrote. Threads of one API worker submit while another
transaction holds the service's lock (on PostGIS its advisory lock, on sqlite the
database's write lock): the first submission waits for the lock, the others queue, and
once the lock is released they are written in one transaction. Each is answered only
after that commit, reports of one problem still make one incident, and a report refused
or failing in the group fails alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from voirie.city import City
from voirie.errors import IdempotencyKeyReused
from voirie.gis.enrich import CityGIS
from voirie.model import Contact, Report
from voirie.services.intake import GROUPS_AT_ONCE, Retry, Submission
from voirie.services.pipeline import Pipeline
from voirie.settings import StoreSettings
from voirie.store import open_store

THREADS = 6
# A real DansMaRue report: cardboard left at 91 Quai de Valmy, 75010; the others a few
# metres east of it, the same problem.
SERVICE = "Cartons ou sacs de déchets ménagers"
LON, LAT = 2.363114595220107, 48.87350463761569
M_PER_DEG_LON = 73_300.0
START = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)
QUEUED_S = 1.0
"""Time for every thread to reach the queue (or the lock) while the lock is held."""

Outcome = Submission | Exception


@pytest.fixture
def pipeline(store_url: str, paris: City, paris_gis: CityGIS) -> Iterator[Pipeline]:
    store = open_store(StoreSettings(database_url=store_url, pool_min_size=1, pool_max_size=4))
    store.upgrade()
    pipeline = Pipeline(paris, store, paris_gis)
    assert pipeline.intake.groups_at_once == GROUPS_AT_ONCE.get(store.backend)
    pipeline.intake.groups_at_once = 1
    yield pipeline
    store.close()


def _report(paris: City, index: int) -> Report:
    return Report(
        external_id=f"g-{index}",
        source="app",
        service_code=paris.services_by_name[SERVICE.casefold()].code,
        lon=LON + 2 * index / M_PER_DEG_LON,
        lat=LAT,
        requested_at=START + timedelta(seconds=index),
        contact=Contact(email=f"habitant{index}@example.org"),
    )


def _submit_at_once(pipeline: Pipeline, jobs: list[tuple[Report, Retry | None]]) -> list[Outcome]:
    """Submit every job from its own thread while the service's lock is held elsewhere;
    release it once they are all waiting; each job's submission or error."""
    outcomes: list[Outcome | None] = [None] * len(jobs)

    def run(i: int, report: Report, retry: Retry | None) -> None:
        try:
            outcomes[i] = pipeline.intake.submit(report, retry)
        except Exception as exc:
            outcomes[i] = exc

    code = jobs[0][0].service_code
    threads = [
        threading.Thread(target=run, args=(i, report, retry))
        for i, (report, retry) in enumerate(jobs)
    ]
    with pipeline.store.transaction(pipeline.city.jurisdiction_id) as uow:
        uow.lock(pipeline.policy.lock_keys([code]))
        for thread in threads:
            thread.start()
            time.sleep(0.05)  # the first thread leads, the others queue behind it
        time.sleep(QUEUED_S)
        assert outcomes == [None] * len(jobs), "answered before the lock was released"
    for thread in threads:
        thread.join(120)
    assert all(outcome is not None for outcome in outcomes)
    return [outcome for outcome in outcomes if outcome is not None]


def _transactions(store_url: str, report_ids: list[int]) -> int:
    """How many transactions wrote these reports (PostgreSQL's ``xmin``)."""
    with psycopg.connect(store_url) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT xmin::text) FROM reports WHERE id = ANY(%s)", (report_ids,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_concurrent_submissions_commit_together_in_one_incident(
    pipeline: Pipeline, paris: City, store_url: str
) -> None:
    # A first report elsewhere (Place de la Nation) stores the rule versions beforehand:
    # on sqlite that transaction would wait for the write lock before the queue forms.
    far = replace(_report(paris, 99), external_id="far", lon=2.3958, lat=48.8483)
    pipeline.intake.submit(far)
    outcomes = _submit_at_once(pipeline, [(_report(paris, i), None) for i in range(THREADS)])
    submissions = [o for o in outcomes if isinstance(o, Submission)]
    assert len(submissions) == THREADS, [o for o in outcomes if isinstance(o, Exception)]
    assert len({s.incident_id for s in submissions}) == 1
    assert [s.attached for s in submissions].count(False) == 1
    assert pipeline.store.count("reports", paris.jurisdiction_id) == THREADS + 1
    incidents = pipeline.store.read("incidents", paris.jurisdiction_id).set_index("incident_id")
    assert incidents.loc[submissions[0].incident_id, "report_count"] == THREADS
    if store_url.startswith("postgresql"):
        # The first waited for the lock alone; the others queued and committed together.
        assert _transactions(store_url, [s.report_id for s in submissions]) == 2


def test_a_refused_report_is_refused_alone_within_the_group(
    pipeline: Pipeline, paris: City, store_url: str
) -> None:
    keyed = Retry("client-a", "key-1", 600)
    first = pipeline.intake.submit(_report(paris, 0), keyed)
    jobs: list[tuple[Report, Retry | None]] = [
        (_report(paris, 1), None),
        # The same key with other content: refused inside the group, before any write.
        (replace(_report(paris, 0), description="encore"), keyed),
        (_report(paris, 2), None),
        # A retry of the first: answered as the first time.
        (_report(paris, 0), keyed),
        (_report(paris, 3), None),
    ]
    outcomes = _submit_at_once(pipeline, jobs)
    assert isinstance(outcomes[1], IdempotencyKeyReused)
    assert outcomes[3] == replace(first, already_stored=True)
    stored = [o for i, o in enumerate(outcomes) if i in (0, 2, 4)]
    assert all(isinstance(s, Submission) and not s.already_stored for s in stored), outcomes
    assert pipeline.store.count("reports", paris.jurisdiction_id) == 4
    if store_url.startswith("postgresql"):
        # The refusal did not break the group: the reports around it committed together.
        ids = [s.report_id for s in stored if isinstance(s, Submission)]
        assert _transactions(store_url, ids[1:]) == 1


def test_a_failing_report_fails_alone(pipeline: Pipeline, paris: City) -> None:
    jobs: list[tuple[Report, Retry | None]] = [
        (_report(paris, 0), None),
        (_report(paris, 1), None),
        # Twice the same answer: the second row breaks report_attributes' primary key in
        # the database, which rolls the group back; each is then written alone.
        (replace(_report(paris, 2), attributes=(("c", "v"), ("c", "v"))), None),
        (_report(paris, 3), None),
    ]
    outcomes = _submit_at_once(pipeline, jobs)
    assert isinstance(outcomes[2], Exception)
    stored = [o for i, o in enumerate(outcomes) if i != 2]
    assert all(isinstance(s, Submission) for s in stored), outcomes
    ids = {s.report_id for s in stored if isinstance(s, Submission)}
    reports = pipeline.store.read("reports", paris.jurisdiction_id)
    assert set(reports["report_id"].tolist()) == ids
    incidents = pipeline.store.read("incidents", paris.jurisdiction_id)
    assert incidents["report_count"].tolist() == [3]
