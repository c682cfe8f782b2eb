"""The per-report path: one report validated, enriched, attached, routed and stored.

``Pipeline.submit`` (the API's entry point) runs here rather than through the bulk path
with a one-row table: the bulk path pays pandas' fixed costs at every stage, tens of
milliseconds for one report. Every stage calls the scalar twin of a vectorized stage,
each tested equal to it on real data, so a report gets the same decisions whichever way
it arrives: ``validate_report`` / ``validate``, ``CityGIS.enrich_one`` / ``enrich``,
``attach_one`` / ``attach``, ``RoutingTable.route_one`` / ``route``; and the same rows
are written (``UnitOfWork.insert_rows``), in one transaction under the same
deduplication lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from voirie.errors import InvalidInput
from voirie.gis import dedupe
from voirie.ingest.validate import CHANGED_CONTENT, validate_report
from voirie.model import EventKind, Flag, Report, Status
from voirie.notify.outbox import record_routing_one
from voirie.notify.versions import record_rules
from voirie.routing.table import Decision
from voirie.services.events import SYSTEM_ACTOR
from voirie.store.base import UnitOfWork

if TYPE_CHECKING:
    from voirie.pipeline import Pipeline

Fields = dict[str, object]


@dataclass(frozen=True)
class Submission:
    """Where a single submitted report went."""

    report_id: int
    incident_id: int
    attached: bool
    """True when the report joined an open incident rather than opening one."""
    already_stored: bool


class Intake:
    """One city's per-report path over its pipeline's store, GIS and routing table."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.city = pipeline.city
        self._rules_stored = False
        self._rules_lock = threading.Lock()

    def submit(self, report: Report) -> Submission:
        """Store one report and say where it went (see ``Pipeline.submit``)."""
        pipeline, city = self.pipeline, self.city
        fields = validate_report(report, city)
        fields.update(pipeline.gis.enrich_one(report.lon, report.lat, _text(fields["address"])))
        if fields[Flag.OUTSIDE_TERRITORY]:
            raise InvalidInput(
                f"lat/lon: {pipeline.outside_reason(report.lon, report.lat)}", field="lat/lon"
            )
        fields.update(pipeline.thresholds(str(fields["service_code"])))
        self._store_rule_versions()
        source, external_id = str(fields["source"]), str(fields["external_id"])
        with pipeline.store.transaction(city.jurisdiction_id) as uow:
            uow.lock(pipeline.dedupe_lock_keys([str(fields["service_code"])]))
            known = uow.known_report(source, external_id)
            if known is not None:
                if known.content_hash != fields["content_hash"]:
                    raise InvalidInput(f"external_id: {CHANGED_CONTENT}", field="external_id")
                incident = dedupe.NO_INCIDENT if known.incident_id is None else known.incident_id
                return Submission(known.report_id, incident, False, True)
            link = self._attach(uow, fields)
            return self._write(uow, fields, report, link)

    def _store_rule_versions(self) -> None:
        """The city's rule versions, stored once per process in their own transaction
        before the first report (``record_rules`` checks them against what is stored)."""
        if self._rules_stored:
            return
        with self._rules_lock:
            if not self._rules_stored:
                with self.pipeline.store.transaction(self.city.jurisdiction_id) as uow:
                    record_rules(uow, self.city)
                self._rules_stored = True

    def _attach(self, uow: UnitOfWork, fields: Fields) -> dedupe.Link:
        """The open incident the report joins (or none), as ``attach`` would decide."""
        candidates = self.pipeline.dedupe_candidates(uow, fields)
        return dedupe.attach_one(fields, candidates, self.city.config.dedupe)

    def _write(
        self, uow: UnitOfWork, fields: Fields, report: Report, link: dedupe.Link
    ) -> Submission:
        """Every row of the report, its link, and of the incident it opened if it did."""
        jurisdiction, now = self.city.jurisdiction_id, datetime.now(UTC)
        report_id = int(uow.reserve_ids("reports", 1)[0])
        ids = {"id": report_id, "report_id": report_id, "jurisdiction_id": jurisdiction}
        uow.insert_rows("reports", [{**fields, **ids, "received_at": now}])
        contact = {
            "name": fields["contact_name"],
            "email": fields["contact_email"],
            "phone": fields["contact_phone"],
            "device_id": fields["device_id"],
        }
        if any(value is not None for value in contact.values()):
            uow.insert_rows("report_contacts", [{**ids, **contact}])
        uow.insert_rows("enrichments", [{**fields, **ids}])
        uow.insert_rows(
            "report_zones",
            [
                {
                    **ids,
                    "layer": layer,
                    "code": fields[f"zone_{layer}"],
                    "name": fields[f"zone_{layer}_name"],
                    "boundary_m": fields[f"zone_{layer}_boundary_m"],
                }
                for layer in self.pipeline.gis.zones
                if fields[f"zone_{layer}"] is not None
            ],
        )
        uow.insert_rows(
            "report_attributes",
            [{**ids, "code": code, "value": value} for code, value in report.attributes],
        )
        opened = link.incident_id == dedupe.NO_INCIDENT
        decision = None
        if opened:
            incident_id = int(uow.reserve_ids("incidents", 1)[0])
            decision = self._open(uow, fields, incident_id, report_id, now)
        else:
            incident_id = int(link.incident_id)
            uow.add_report_to_incident(incident_id, _instant(fields["requested_at"]), now)
        uow.insert_rows(
            "incident_reports",
            [
                {
                    **ids,
                    "incident_id": incident_id,
                    "score": link.score,
                    "reason": link.reason,
                    "linked_at": now,
                }
            ],
        )
        events = [
            ("report", report_id, EventKind.RECEIVED, f"received from {fields['source']}"),
            (
                "report",
                report_id,
                EventKind.OPENED if opened else EventKind.ATTACHED,
                f"incident {incident_id}: {link.reason}",
            ),
        ]
        if decision is not None:
            events.append(("incident", incident_id, EventKind.ROUTED, decision.routing_reason))
        event_ids = uow.reserve_ids("events", len(events))
        uow.insert_rows(
            "events",
            [
                {
                    "id": int(event_id),
                    "jurisdiction_id": jurisdiction,
                    "entity": entity,
                    "entity_id": entity_id,
                    "kind": kind.value,
                    "actor": SYSTEM_ACTOR,
                    "reason": reason,
                    "at": now,
                }
                for event_id, (entity, entity_id, kind, reason) in zip(
                    event_ids, events, strict=True
                )
            ],
        )
        return Submission(report_id, incident_id, not opened, False)

    def _open(
        self, uow: UnitOfWork, fields: Fields, incident_id: int, report_id: int, now: datetime
    ) -> Decision:
        """Route and write the incident the report opens, with its assignment."""
        jurisdiction = self.city.jurisdiction_id
        decision = self.pipeline.routing.route_one(fields)
        incident: Fields = {
            "id": incident_id,
            "jurisdiction_id": jurisdiction,
            "service_code": fields["service_code"],
            "origin_report_id": report_id,
            "lon": fields["lon"],
            "lat": fields["lat"],
            "segment_id": fields["segment_id"],
            "street_name": fields["street_name"],
            "status": Status.NEW.value,
            "team": decision.team,
            "priority": decision.priority,
            "due_at": decision.due_at,
            "report_count": 1,
            "first_reported_at": fields["requested_at"],
            "last_reported_at": fields["requested_at"],
            "updated_at": now,
        }
        uow.insert_rows("incidents", [incident])
        record_routing_one(uow, self.city, incident, decision, now)
        uow.insert_rows(
            "assignments",
            [
                {
                    "id": int(uow.reserve_ids("assignments", 1)[0]),
                    "jurisdiction_id": jurisdiction,
                    "incident_id": incident_id,
                    "team": decision.team,
                    "rule_id": decision.rule_id,
                    "rule_version": decision.rule_version,
                    "reason": decision.routing_reason,
                    "priority": decision.priority,
                    "due_at": decision.due_at,
                    "assigned_at": now,
                    "actor": SYSTEM_ACTOR,
                }
            ],
        )
        return decision


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _instant(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {value!r}")
    return value
