"""Routing that learns from dispatchers, live (issue 18 item 2), on every backend: real
reassignments of real Paris incidents become a versioned, explained rule that routes the
next report (``auto``) or waits for a reviewer (``review``), and can be reverted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from clirunner import run_voirie
from datafiles import SAMPLE_200

from voirie.city import City
from voirie.errors import NotFound
from voirie.gis.enrich import CityGIS
from voirie.ingest.mapping import DANSMARUE
from voirie.ingest.sources import read_csv
from voirie.model import Report
from voirie.services import learned_routing, workflow
from voirie.services.auth import Principal, Role
from voirie.services.pipeline import Pipeline
from voirie.settings import StoreSettings
from voirie.store import open_store
from voirie.store.base import Store
from voirie.store.selection import Selection

DISPATCHER = Principal("Dominique (dispatch)", Role.DISPATCHER)
# Points spread over Paris: a new report is placed at the one farthest from the service's
# incidents, so that it opens an incident of its own (and is routed) rather than joining one.
POINTS = [(2.2950, 48.8738), (2.4100, 48.8350), (2.3500, 48.8950), (2.2700, 48.8450)]


def _learning(city: City, mode: str) -> City:
    """The city with live learning in ``mode``, from 2 agreeing reassignments, re-read at
    every write."""
    learning = city.config.routing.learning.model_copy(
        update={"mode": mode, "min_support": 2, "refresh_s": 1e-6}
    )
    routing = city.config.routing.model_copy(update={"learning": learning})
    return City(city.folder, city.config.model_copy(update={"routing": routing}))


def _corrected(store: Store, city: City, gis: CityGIS, mode: str) -> tuple[Pipeline, str, str, str]:
    """A pipeline of ``city`` in ``mode`` over the 200 sample reports, after a dispatcher
    reassigned most incidents of one sub-category (2 of 3, or 3 of 4) to another team:
    the pipeline, the sub-category, the team its rule gives and the one corrected to."""
    pipeline = Pipeline(_learning(city, mode), store, gis)
    incidents = pipeline.reads.incidents(Selection())
    counts = incidents.groupby("service_code")["team"].agg(["count", "nunique", "first"])
    service = str(counts[(counts["count"].between(3, 4)) & (counts["nunique"] == 1)].index[0])
    given = str(counts.loc[service, "first"])
    other = next(t for t in sorted(pipeline.city.teams) if t not in (given, "triage"))
    ids = incidents.loc[incidents["service_code"] == service, "incident_id"].astype(int)
    for incident_id in ids.iloc[: len(ids) // 2 + 1]:
        workflow.reassign(
            store, pipeline.city, incident_id, DISPATCHER, other, "c'est leur secteur"
        )
    return pipeline, service, given, other


def _new_report(pipeline: Pipeline, service: str, n: int) -> tuple[str, str]:
    """Submit a report of ``service`` away from its incidents: its team and routing reason."""
    known = pipeline.reads.incidents(Selection())
    known = known[known["service_code"] == service]
    lon, lat = max(
        POINTS,
        key=lambda p: min(
            (x - p[0]) ** 2 + (y - p[1]) ** 2
            for x, y in zip(known["lon"], known["lat"], strict=True)
        ),
    )
    submitted = pipeline.intake.submit(
        Report(
            external_id=f"learned-{service}-{n}",
            source="app",
            service_code=service,
            lon=lon,
            lat=lat,
            requested_at=datetime.now(UTC),
            description="nouveau signalement",
        )
    )
    row = pipeline.reads.incidents(Selection(ids=(submitted.incident_id,))).iloc[0]
    return str(row["team"]), str(row["routing_reason"])


def test_auto_mode_routes_the_next_report_with_the_learned_rule_until_reverted(
    store: Store, paris: City, paris_gis: CityGIS, pipeline: Pipeline
) -> None:
    learning, service, given, other = _corrected(store, paris, paris_gis, "auto")
    (rule,) = learned_routing.versions(store, learning.city)
    assert (rule.service_code, rule.team, rule.version) == (service, other, 1)
    assert rule.status == learned_routing.ACTIVE
    assert rule.decided_by == learned_routing.AUTO_ACTOR
    team, reason = _new_report(learning, service, 1)
    assert team == other
    assert f"learned from {rule.corrections} reassignments by dispatchers since" in reason
    # Reverted: the next report goes back to the city's rule; the version is kept.
    learned_routing.decide(store, learning.city, service, learned_routing.REVERTED, "Camille")
    team, reason = _new_report(learning, service, 2)
    assert team == given
    assert "learned from" not in reason
    (kept,) = learned_routing.versions(store, learning.city)
    assert (kept.status, kept.decided_by) == (learned_routing.REVERTED, "Camille")


def test_review_mode_waits_for_a_reviewer(
    store: Store, paris: City, paris_gis: CityGIS, pipeline: Pipeline
) -> None:
    learning, service, given, other = _corrected(store, paris, paris_gis, "review")
    (proposed,) = learned_routing.versions(store, learning.city)
    assert (proposed.status, proposed.team, proposed.decided_by) == ("proposed", other, None)
    assert _new_report(learning, service, 1)[0] == given  # not in force before review
    learned_routing.decide(store, learning.city, service, learned_routing.ACTIVE, "Camille")
    assert _new_report(learning, service, 2)[0] == other
    # Nothing left to accept; a rejected or unknown sub-category is a clear error.
    with pytest.raises(NotFound, match="has no proposed learned rule"):
        learned_routing.decide(store, learning.city, service, learned_routing.REJECTED, "C")


def test_off_mode_learns_nothing(
    store: Store, paris: City, paris_gis: CityGIS, pipeline: Pipeline
) -> None:
    learning, service, given, _ = _corrected(store, paris, paris_gis, "off")
    assert learned_routing.versions(store, learning.city) == []
    assert _new_report(learning, service, 1)[0] == given


def test_the_review_list_at_the_command_line(
    tmp_path: Path, paris: City, paris_gis: CityGIS
) -> None:
    # The city as shipped (review mode, support 3): 3 of a sub-category's 4 incidents
    # reassigned to one team propose a rule, which an operator accepts, then reverts.
    store = open_store(StoreSettings(database_url=f"sqlite:///{tmp_path / 't.gpkg'}"))
    try:
        store.upgrade()
        pipeline = Pipeline(paris, store, paris_gis)
        pipeline.imports.import_table(read_csv(SAMPLE_200), DANSMARUE)
        incidents = pipeline.reads.incidents(Selection())
        counts = incidents.groupby("service_code")["team"].agg(["count", "nunique", "first"])
        service = str(counts[(counts["count"] == 4) & (counts["nunique"] == 1)].index[0])
        given = str(counts.loc[service, "first"])
        other = next(t for t in sorted(paris.teams) if t not in (given, "triage"))
        ids = incidents.loc[incidents["service_code"] == service, "incident_id"].astype(int)
        for incident_id in ids.iloc[:3]:
            workflow.reassign(store, paris, incident_id, DISPATCHER, other, "leur secteur")
    finally:
        store.close()
    listed = run_voirie(tmp_path, "rules", "review", "--city", "paris")
    assert listed.returncode == 0, listed.stderr
    assert "1 learned rule versions" in listed.stdout
    assert "proposed" in listed.stdout
    # A pass over everything finds nothing new while the proposal waits for its review.
    again = run_voirie(tmp_path, "rules", "learn-live", "--city", "paris")
    assert "routing.learning.mode review: 0 new rules" in again.stdout, again.stderr
    accepted = run_voirie(tmp_path, "rules", "accept", service, "--city", "paris", "--by", "C")
    assert accepted.returncode == 0, accepted.stderr
    assert f"live-{service} v1 ({other}): active" in accepted.stdout
    reverted = run_voirie(tmp_path, "rules", "revert", service, "--city", "paris", "--by", "C")
    assert f"live-{service} v1 ({other}): reverted" in reverted.stdout, reverted.stderr
    refused = run_voirie(tmp_path, "rules", "revert", service, "--city", "paris", "--by", "C")
    assert refused.returncode != 0
    assert "has no active learned rule" in refused.stderr + refused.stdout
