"""The one place where attached and routed reports become rows: the incident writer.

A bulk import writes a batch of reports (DataFrames, written by ``UnitOfWork.insert``); the
per-report path writes one report (a dict of Python scalars, written by
``UnitOfWork.insert_rows``, because a one-row DataFrame costs pandas' fixed overhead at
every table; on PostGIS every table's rows of the report go as one statement,
``Tables.gathering``). Both entries build their rows with the same builders: each reads a table's
columns from a source that is either the batch (a DataFrame: every value a column) or the
report (a dict: every value a scalar), constants broadcasting, and a sink writes them the
one way or the other. So the tables (reports, contacts, enrichments, zones, attributes,
links, incidents, assignments, events) are built once; a new column is one edit, and
``tests/test_intake.py`` checks that both entries write the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionArray

from voirie.city import City
from voirie.gis import dedupe
from voirie.model import SYSTEM_ACTOR, EventKind, Status
from voirie.notify.outbox import record_routing, record_routing_one, team_channels
from voirie.routing.table import Decision, route
from voirie.services.learned_routing import LiveRouting
from voirie.store.base import UnitOfWork
from voirie.values import as_instant

CONTACT_FIELDS = ("name", "email", "phone", "device_id")


class Source(Protocol):
    """Where rows are read from: a batch (a DataFrame) or one report (a dict of scalars)."""

    def __getitem__(self, key: str, /) -> Any: ...

    def __setitem__(self, key: str, value: Any, /) -> None: ...


Part = dict[str, Any]
"""Some rows of a table, by column: each value a column (array or Series) or a scalar."""
Table = pd.DataFrame | Part
"""A batch's rows (a DataFrame) or one report's row (a dict of scalars)."""


class _Sink(Protocol):
    def column(self, ids: np.ndarray) -> Any:
        """Reserved ids as a column: the array for a batch, the one int for a report."""
        ...

    def insert(
        self, table: str, parts: Sequence[Table], *, unless_missing: tuple[str, ...] = ()
    ) -> None:
        """Write the rows of ``parts``, without those where every ``unless_missing``
        column is missing."""
        ...


class _Frames:
    """A batch's sink: one DataFrame per table, written with ``insert`` (COPY)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def column(self, ids: np.ndarray) -> np.ndarray:
        return ids

    def insert(
        self, table: str, parts: Sequence[Table], *, unless_missing: tuple[str, ...] = ()
    ) -> None:
        frames = [part if isinstance(part, pd.DataFrame) else pd.DataFrame(part) for part in parts]
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        if unless_missing:
            frame = frame[frame[list(unless_missing)].notna().any(axis=1)]
        self.uow.tables.insert(table, frame)


class _Holding(_Frames):
    """A batch's sink that writes ``first`` at once and holds the other tables' rows until
    ``flush``: ``write_batch`` sends them after the new incidents, so that the statement
    of the routing records that waits for the inserts sent before it (on PostGIS they are
    sent behind) waits for the reports and incidents only; the others are stored while
    the rest of the batch is built, and at its commit."""

    def __init__(self, uow: UnitOfWork, first: str) -> None:
        super().__init__(uow)
        self.first = first
        self.held: list[tuple[str, Sequence[Table], tuple[str, ...]]] = []

    def insert(
        self, table: str, parts: Sequence[Table], *, unless_missing: tuple[str, ...] = ()
    ) -> None:
        if table == self.first:
            super().insert(table, parts, unless_missing=unless_missing)
        else:
            self.held.append((table, parts, unless_missing))

    def flush(self) -> None:
        """Write the rows held, in the order they came."""
        held, self.held = self.held, []
        for table, parts, unless_missing in held:
            super().insert(table, parts, unless_missing=unless_missing)


class _Rows:
    """One report's sink: each part is one row, written with ``insert_rows``."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def column(self, ids: np.ndarray) -> int:
        return int(ids[0])

    def insert(
        self, table: str, parts: Sequence[Table], *, unless_missing: tuple[str, ...] = ()
    ) -> None:
        rows: list[Part] = []
        for part in parts:
            if isinstance(part, pd.DataFrame):
                raise TypeError(f"{table}: one report's rows are dicts, not a DataFrame")
            if not (unless_missing and all(_missing(part[name]) for name in unless_missing)):
                rows.append(part)
        if rows:
            self.uow.tables.insert_rows(table, rows)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _contact(src: Source, jurisdiction: str) -> Part:
    return {
        "report_id": src["id"],
        "jurisdiction_id": jurisdiction,
        "name": src["contact_name"],
        "email": src["contact_email"],
        "phone": src["contact_phone"],
        "device_id": src["device_id"],
    }


def _zone(src: Source, jurisdiction: str, layer: str) -> Part:
    return {
        "report_id": src["id"],
        "jurisdiction_id": jurisdiction,
        "layer": layer,
        "code": src[f"zone_{layer}"],
        "name": src[f"zone_{layer}_name"],
        "boundary_m": src[f"zone_{layer}_boundary_m"],
    }


def _incident_zone(opener: Source, incident_id: object, jurisdiction: str, layer: str) -> Part:
    """An incident's zone in one layer: its opening report's (migration 0018)."""
    return {
        "jurisdiction_id": jurisdiction,
        "incident_id": incident_id,
        "layer": layer,
        "code": opener[f"zone_{layer}"],
        "name": opener[f"zone_{layer}_name"],
    }


def _attribute(report_id: object, jurisdiction: str, code: object, value: object) -> Part:
    return {"report_id": report_id, "jurisdiction_id": jurisdiction, "code": code, "value": value}


def _link(
    report_id: object,
    jurisdiction: str,
    incident_id: object,
    score: object,
    reason: object,
    now: object,
) -> Part:
    return {
        "report_id": report_id,
        "jurisdiction_id": jurisdiction,
        "incident_id": incident_id,
        "score": score,
        "reason": reason,
        "linked_at": now,
    }


def _incident(
    opener: Source,
    incident_id: object,
    jurisdiction: str,
    routed: Source,
    report_count: object,
    last_reported_at: object,
    now: object,
) -> Part:
    return {
        "id": incident_id,
        "jurisdiction_id": jurisdiction,
        "service_code": opener["service_code"],
        "origin_report_id": opener["id"],
        "lon": opener["lon"],
        "lat": opener["lat"],
        "segment_id": opener["segment_id"],
        "street_name": opener["street_name"],
        "status": Status.NEW.value,
        "team": routed["team"],
        "priority": routed["priority"],
        "due_at": routed["due_at"],
        "report_count": report_count,
        "first_reported_at": opener["requested_at"],
        "last_reported_at": last_reported_at,
        "updated_at": now,
    }


def _assignment(
    assignment_id: object, jurisdiction: str, incident_id: object, routed: Source, now: object
) -> Part:
    return {
        "id": assignment_id,
        "jurisdiction_id": jurisdiction,
        "incident_id": incident_id,
        "team": routed["team"],
        "rule_id": routed["rule_id"],
        "rule_version": routed["rule_version"],
        "reason": routed["routing_reason"],
        "priority": routed["priority"],
        "due_at": routed["due_at"],
        "assigned_at": now,
        "actor": SYSTEM_ACTOR,
    }


def _decision(decision: Decision) -> dict[str, object]:
    """One decision as the routing columns ``route`` gives a batch."""
    return {
        "team": decision.team,
        "rule_id": decision.rule_id,
        "rule_version": decision.rule_version,
        "priority": decision.priority,
        "routing_reason": decision.routing_reason,
        "due_at": decision.due_at,
    }


@dataclass(frozen=True)
class Written:
    """Where a batch went, per report in batch order: its incident, whether it opened
    it, whether that incident was stored before the batch; and the incidents opened."""

    incident_id: np.ndarray
    opened: np.ndarray
    attached_stored: np.ndarray
    new_ids: np.ndarray


@dataclass(frozen=True)
class WrittenReport:
    """Where one report went."""

    report_id: int
    incident_id: int
    opened: bool


@dataclass(frozen=True)
class BatchPlan:
    """A batch's ids and links, settled before it is written (``IncidentWriter.plan``)."""

    links: pd.DataFrame
    leaders: np.ndarray
    """The reports opening an incident, by position in the batch (in ``new_ids``' order)."""
    event_ids: np.ndarray
    assignment_ids: np.ndarray
    counts: pd.Series
    """Reports of the batch per incident (new or stored)."""
    last: pd.Series
    first: pd.Series
    """The latest and the earliest ``requested_at`` of the batch's reports per incident."""
    written: Written
    now: pd.Timestamp
    """When the batch is written (its rows' received, linked, updated... times)."""


class IncidentWriter:
    """One city's writer of reports and of the incidents they open or join."""

    def __init__(self, city: City, zones: Sequence[str], routing: LiveRouting) -> None:
        self.city = city
        self.zones = list(zones)
        self.routing = routing

    def plan(self, uow: UnitOfWork, batch: pd.DataFrame, links: pd.DataFrame) -> BatchPlan:
        """The ids of a batch of new enriched reports (a RangeIndex, in time order: each
        report's ``id`` set here) and of what it opens, and where each report goes by the
        links ``dedupe.attach`` gave it: ``write_batch``'s first part, which reads and
        changes no stored row (ids come from sequences, outside transactions), so the
        importer makes it while the batch before commits. A plan fits those links only."""
        n = len(batch)
        batch["id"] = uow.tables.reserve_ids("reports", n)
        leaders = np.flatnonzero(links["leader"].to_numpy() == np.arange(n))
        new_ids = uow.tables.reserve_ids("incidents", len(leaders))
        # Each report received, then opening or joining; each new incident routed.
        event_ids = uow.tables.reserve_ids("events", 2 * n + len(new_ids))
        assignment_ids = uow.tables.reserve_ids("assignments", len(new_ids))
        incident_of_leader = pd.Series(new_ids, index=leaders)
        attached_stored = links["incident_id"].to_numpy() != dedupe.NO_INCIDENT
        incident_id = np.where(
            attached_stored,
            links["incident_id"].to_numpy(),
            incident_of_leader.reindex(links["leader"].to_numpy()).to_numpy(),
        ).astype(np.int64)
        opened = np.zeros(n, dtype=bool)
        opened[leaders] = True
        # The instants as they are (``array``): ``to_numpy`` of zoned instants makes a
        # Timestamp object per value, then grouped and compared one by one.
        requested = pd.Series(batch["requested_at"].array).groupby(incident_id)
        return BatchPlan(
            links,
            leaders,
            event_ids,
            assignment_ids,
            pd.Series(incident_id).value_counts(),
            requested.max(),
            requested.min(),
            Written(incident_id, opened, attached_stored, new_ids),
            pd.Timestamp.now("UTC"),
        )

    def write_batch(
        self,
        uow: UnitOfWork,
        batch: pd.DataFrame,
        plan: BatchPlan,
        attributes: pd.DataFrame | None = None,
    ) -> Written:
        """Write a batch of new enriched reports as planned (``plan`` of this batch, with
        its links), and the incidents they open, routed.

        ``attributes`` (external_id, code, value) are answers to the services' questions.
        The city's rule versions must have been stored first (``record_rules``, committed:
        the importer does it once per import), so that no batch waits for that read.

        Only inserts: the counts of the stored incidents the batch joins are the caller's
        to write, in the same transaction after this (``count_joined``). On PostGIS a
        bulk insert is sent while the next rows are built and a statement waits for the
        inserts sent before it: the importer writes them as the transaction commits.
        """
        sink, n, now = _Frames(uow), len(batch), plan.now
        written, links = plan.written, plan.links
        new_ids, incident_id = written.new_ids, written.incident_id
        counts, last = plan.counts, plan.last
        held = _Holding(uow, "reports")
        self._reports(held, batch, now)
        if attributes is not None and len(attributes):
            answers = attributes.merge(batch[["external_id", "id"]], on="external_id")
            j = self.city.jurisdiction_id
            held.insert(
                "report_attributes",
                [_attribute(answers["id"], j, answers["code"], answers["value"])],
            )
        routed = self.open_incidents(
            uow,
            batch.iloc[plan.leaders].reset_index(drop=True),
            new_ids,
            counts.reindex(new_ids).to_numpy(),
            last.reindex(new_ids).array,
            now,
            plan.assignment_ids,
            rules=False,
        )
        held.flush()
        reason = dedupe.reasons(links)
        self._history(
            uow,
            sink,
            reports=(batch["id"], n),
            incident_id=incident_id,
            link=(links["score"].to_numpy(float), reason),
            kind=np.where(written.opened, EventKind.OPENED.value, EventKind.ATTACHED.value),
            linked="incident " + pd.Series(incident_id).astype(str) + ": " + reason,
            received="imported from " + batch["source"] + " row " + batch["row"].astype(str),
            routing=[(new_ids, routed["routing_reason"].to_numpy(), len(new_ids))],
            now=now,
            event_ids=plan.event_ids,
        )
        return written

    def count_joined(self, uow: UnitOfWork, plan: BatchPlan) -> None:
        """Add a written batch's reports to the counts and report times of the stored
        incidents it joined: one statement for all of them, after ``write_batch`` in its
        transaction."""
        written = plan.written
        existing = np.unique(written.incident_id[written.attached_stored])
        if len(existing):
            uow.incidents.add_reports(
                pd.DataFrame(
                    {
                        "incident_id": existing,
                        "added": plan.counts.reindex(existing).to_numpy(),
                        "last_reported_at": plan.last.reindex(existing).to_numpy(),
                        "updated_at": plan.now,
                        "first_reported_at": plan.first.reindex(existing).to_numpy(),
                    }
                )
            )

    def open_incidents(
        self,
        uow: UnitOfWork,
        new: pd.DataFrame,
        new_ids: np.ndarray,
        report_count: np.ndarray,
        last_reported_at: np.ndarray | ExtensionArray,
        now: pd.Timestamp,
        assignment_ids: np.ndarray | None = None,
        *,
        rules: bool = True,
    ) -> pd.DataFrame:
        """Route and write new incidents, each opened by one enriched report of ``new``
        (a RangeIndex, same order as ``new_ids``), with their assignments (ids reserved
        here unless given: reserving waits for the inserts sent before it) and routing
        records (with the rule versions unless ``rules=False``: ``record_routing``);
        return their routing (``route``'s columns)."""
        j, sink = self.city.jurisdiction_id, _Frames(uow)
        routed = route(self.city, new, self.routing.table(uow))
        incidents = pd.DataFrame(
            _incident(new, new_ids, j, routed, report_count, last_reported_at, now)
        )
        uow.tables.insert("incidents", incidents)
        self._incident_zones(sink, new, new_ids)
        record_routing(uow, self.city, incidents, routed, now, rules=rules)
        if assignment_ids is None:
            assignment_ids = uow.tables.reserve_ids("assignments", len(new_ids))
        sink.insert("assignments", [_assignment(assignment_ids, j, new_ids, routed, now)])
        return routed

    def ids_one(self) -> dict[str, int]:
        """Every id ``write_one`` may need, per table, before it is known whether the
        report opens an incident: its report, its events (received, opened or attached,
        routed), the incident it may open with its assignment and its team's notices (as
        many as the best-reached team has channels). Prefetched with the report's first
        reads, they cost no round trip of their own; those an attached report leaves
        unused are gaps in the sequences, as a rolled back transaction leaves."""
        return dict(self._most_ids_one)

    @cached_property
    def _most_ids_one(self) -> dict[str, int]:
        """``ids_one``, counted once per writer (the city's teams do not change)."""
        channels = max((len(team_channels(self.city, team)) for team in self.city.teams), default=0)
        return {"reports": 1, "events": 3, "incidents": 1, "assignments": 1, "outbox": channels}

    def write_one(
        self,
        uow: UnitOfWork,
        fields: dict[str, object],
        attributes: Sequence[tuple[str, str]],
        link: dedupe.Link,
        now: datetime,
    ) -> WrittenReport:
        """``write_batch`` of one enriched report (``fields``, which gets its ids) with the
        link ``attach_one`` gave it, and of the incident it opens, routed. Its ids come
        from those the caller prefetched (``ids_one``), else are reserved as needed."""
        with uow.tables.gathering():  # the rows of every table in one statement
            sink, j = _Rows(uow), self.city.jurisdiction_id
            opened = link.incident_id == dedupe.NO_INCIDENT
            decision = self.routing.table(uow).route_one(fields) if opened else None
            report_id = sink.column(uow.tables.reserve_ids("reports", 1))
            fields["id"] = report_id
            self._reports(sink, fields, now)
            sink.insert(
                "report_attributes", [_attribute(report_id, j, code, v) for code, v in attributes]
            )
            routing: list[tuple[object, object, int]] = []
            if decision is not None:
                incident_id = sink.column(uow.tables.reserve_ids("incidents", 1))
                routed = _decision(decision)
                first = fields["requested_at"]
                incident = _incident(fields, incident_id, j, routed, 1, first, now)
                uow.tables.insert_rows("incidents", [incident])
                self._incident_zones(sink, fields, incident_id)
                record_routing_one(uow, self.city, incident, decision, now)
                assignment_id = sink.column(uow.tables.reserve_ids("assignments", 1))
                sink.insert(
                    "assignments", [_assignment(assignment_id, j, incident_id, routed, now)]
                )
                routing.append((incident_id, decision.routing_reason, 1))
            else:
                incident_id = link.incident_id
                requested_at = as_instant(fields["requested_at"], "requested_at")
                uow.incidents.add_report(incident_id, requested_at, now)
            self._history(
                uow,
                sink,
                reports=(report_id, 1),
                incident_id=incident_id,
                link=(link.score, link.reason),
                kind=(EventKind.OPENED if opened else EventKind.ATTACHED).value,
                linked=f"incident {incident_id}: {link.reason}",
                received=f"received from {fields['source']}",
                routing=routing,
                now=now,
            )
            return WrittenReport(report_id, incident_id, opened)

    def _reports(self, sink: _Sink, src: Table, now: datetime) -> None:
        """The reports (``src``, with their ``id``) with their contacts, enrichments and
        zones."""
        j = self.city.jurisdiction_id
        src["report_id"] = src["id"]
        src["jurisdiction_id"] = j
        src["received_at"] = now
        sink.insert("reports", [src])
        sink.insert("report_contacts", [_contact(src, j)], unless_missing=CONTACT_FIELDS)
        sink.insert("enrichments", [src])
        sink.insert(
            "report_zones", [_zone(src, j, layer) for layer in self.zones], unless_missing=("code",)
        )

    def _incident_zones(self, sink: _Sink, openers: Table, incident_ids: object) -> None:
        """The zones of new incidents (``incident_ids``, in the order of ``openers``, the
        enriched reports opening them): their opening reports' zones."""
        j = self.city.jurisdiction_id
        sink.insert(
            "incident_zones",
            [_incident_zone(openers, incident_ids, j, layer) for layer in self.zones],
            unless_missing=("code",),
        )

    def _history(
        self,
        uow: UnitOfWork,
        sink: _Sink,
        *,
        reports: tuple[object, int],
        incident_id: object,
        link: tuple[object, object],
        kind: object,
        linked: object,
        received: object,
        routing: list[tuple[object, object, int]],
        now: object,
        event_ids: np.ndarray | None = None,
    ) -> None:
        """The reports' links ((score, reason) to ``incident_id``) and their events: each
        report received then opening or joining its incident (``kind``, ``linked`` the
        words), each new incident routed ((incident ids, reasons, how many)); the events'
        ids are ``event_ids`` when the caller reserved them, else reserved here."""
        report_id, n = reports
        j = self.city.jurisdiction_id
        sink.insert("incident_reports", [_link(report_id, j, incident_id, *link, now)])
        parts = [
            (_event("report", report_id, EventKind.RECEIVED.value, received), n),
            (_event("report", report_id, kind, linked), n),
            *(
                (_event("incident", ids, EventKind.ROUTED.value, reason), count)
                for ids, reason, count in routing
            ),
        ]
        total = sum(count for _, count in parts)
        ids = uow.tables.reserve_ids("events", total) if event_ids is None else event_ids
        if len(ids) != total:
            raise ValueError(f"events: {len(ids)} ids reserved for {total} events")
        start = 0
        for part, count in parts:
            part["id"] = sink.column(ids[start : start + count])
            part["jurisdiction_id"] = j
            part["actor"] = SYSTEM_ACTOR
            part["at"] = now
            start += count
        sink.insert("events", [part for part, _ in parts])


def _event(entity: str, entity_id: object, kind: object, reason: object) -> Part:
    return {"entity": entity, "entity_id": entity_id, "kind": kind, "reason": reason}
