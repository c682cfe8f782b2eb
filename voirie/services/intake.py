"""The per-report path: one report validated, enriched, attached, routed and stored.

The API's entry point runs here rather than through the bulk path with a one-row table:
the bulk path pays pandas' fixed costs at every stage, tens of milliseconds for one
report. Every stage calls the scalar twin of a vectorized stage, each tested equal to it
on real data, so a report gets the same decisions whichever way it arrives:
``validate_report`` / ``validate``, ``CityGIS.enrich_one`` / ``enrich``, ``attach_one`` /
``attach``, ``RoutingTable.route_one`` / ``route``; and ``IncidentWriter.write_one``
writes the rows ``write_batch`` writes, in one transaction under the same deduplication
lock.

Idempotency lives here too. A report is stored once per (source, external id). A client
that retries (Open311) is recognised by a ``Retry``: its ``Idempotency-Key`` (per token;
the same key with another body is refused), or failing that the very same submission
(same token, same device or reporter contact, same content) within a time window; the
external ids it stands for are looked up once, under the lock, and a stored report is
answered as the first answer was. A submission that names no device and no contact is
never taken for a retry: two citizens of one app who report the same thing are two
reports (attached to one incident by deduplication), never one answer given twice.

A report's writer holds its service family's lock in shared mode and, exclusively, the
cells of the family's lock grid around its point and its external ids (``cell_keys``):
two reports that may be one incident, or a retry and its first send, take turns; reports
of one family far apart do not; an import, a merge or a staff edit, which hold the family
exclusively, wait for every report of it (issue 20: one lock per family made every report
of the busiest family, a third of Paris's, wait for the previous one's commit).

A report's reads go to the store together, under those locks: its client's token
(``Credential``: checked in the transaction that stores the report, so a revoked token is
refused at once), the reports a retry of it would be, the incidents it may join and every
id it may write. On PostGIS the transaction is pipelined from its BEGIN to its COMMIT:
BEGIN and the reads make one round trip, the writes and COMMIT one more.

Concurrent submissions of one process may commit together (group commit, on sqlite): the
first to find no transaction under way writes every report queued by then in one
transaction (the locks of all their services taken at once, in order), and each caller
is answered only after that commit. A report refused by the idempotency checks is
refused alone; any other failure rolls the group back and each of its reports is
written again in a transaction of its own, so one bad report never fails the others.
"""

from __future__ import annotations

import hashlib
import math
import threading
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from voirie.errors import Forbidden, IdempotencyKeyReused, InvalidInput, Unauthorized
from voirie.gis import dedupe
from voirie.ingest.validate import CHANGED_CONTENT, validate_report
from voirie.model import Flag, Report
from voirie.notify.versions import record_rules
from voirie.services.auth import Credential, record_use
from voirie.services.roles import Roles
from voirie.services.territory import outside_reason
from voirie.store.base import KnownReport, Later, TokenRecord, UnitOfWork
from voirie.values import as_instant, optional_text


@dataclass(frozen=True)
class Submission:
    """Where a single submitted report went."""

    report_id: int
    incident_id: int
    attached: bool
    """True when the report joined an open incident rather than opening one."""
    already_stored: bool
    external_id: str
    """The external id the report is stored under (Open311's token)."""


@dataclass(frozen=True)
class Retry:
    """How a client's retries of one request are recognised."""

    client: str
    """The client's API key (only digests of it are stored): keys and fingerprints are
    scoped to one token, so two tokens sending the same key make two submissions."""
    key: str | None
    """The request's Idempotency-Key: retries with the same key (per token) store once;
    the same key with another submission is refused (``IdempotencyKeyReused``)."""
    window_s: int
    """Without a key, the same submission from the same token and the same device or
    reporter contact within this many seconds (this window or the previous one) is a
    retry."""

    def since(self, now: datetime) -> datetime | None:
        """The oldest stored report a retry made ``now`` may repeat (None: any)."""
        return None if self.key is not None else now - timedelta(seconds=self.window_s)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def _folded(value: str | None) -> str:
    """Contact text as a retry repeats it: stripped, case-folded, blank when missing."""
    return (value or "").strip().casefold()


def submission_digest(report: Report) -> str:
    """A digest of everything a client submitted (not the time it arrived): what tells a
    retry of one submission, byte for byte the same, from another submission."""
    contact = report.contact
    return _digest(
        report.service_code or "",
        f"{report.lon:.7f}",
        f"{report.lat:.7f}",
        report.description or "",
        report.address or "",
        report.media_url or "",
        contact.name or "",
        _folded(contact.email),
        _folded(contact.phone),
        contact.device_id or "",
        *(f"{code}={value}" for code, value in sorted(report.attributes)),
    )


def external_ids(report: Report, retry: Retry) -> list[str]:
    """The external id a new report gets (first), then the ids a retry of it may carry.

    With an Idempotency-Key it is the key (per token). Without, it is the submission's
    fingerprint (token, device or contact, everything submitted) in the report's window
    or the previous one; a submission naming neither a device nor a contact has nothing
    that says who sent it, so it gets an id of its own and is never a retry.
    """
    if retry.key is not None:
        return [f"k-{_digest(retry.client, retry.key)}"]
    contact = report.contact
    if not (contact.device_id or _folded(contact.email) or _folded(contact.phone)):
        return [f"u-{uuid.uuid4().hex}"]
    material = (retry.client, submission_digest(report))
    bucket = int(report.requested_at.timestamp()) // retry.window_s
    return [f"f-{_digest(*material, str(b))}" for b in (bucket, bucket - 1)]


CELL_MARGIN_M = 2.0
"""Metres added to the side of a lock cell, so that the point halfway between two reports
lies in the square of each whatever the rounding of their coordinates."""


def cell_keys(family: str, side: float, x: float, y: float) -> list[str]:
    """The lock keys of the cells (``side`` metres wide) that the square of side ``side``
    centred on a metric point touches: 1 to 4. Two points less than ``side`` apart on each
    axis share one: the cell of the point halfway between them."""
    half = side / 2
    cells = {
        (math.floor((x + dx) / side), math.floor((y + dy) / side))
        for dx in (-half, half)
        for dy in (-half, half)
    }
    return [f"{family}@{side:g}/{i},{j}" for i, j in sorted(cells)]


MAX_GROUP = 32
"""At most this many reports in one group commit (bounds the locks held and the wait of
the first report of a group on the last)."""
GROUPS_AT_ONCE = {"sqlite": 1}
"""How many groups one process writes at once, per backend (``Store.backend``). sqlite's
writers take turns on the database's write lock: one group at a time gets one turn (and
one fsync) for many reports, instead of threads waiting on the lock. A backend not named
here (PostGIS) writes each report in its own transaction as it comes: its transactions
overlap, and grouping, which writes a group's reports one after the other, measured
slower there (bench/RESULTS.md, "Group commit and the other levers of issue 20")."""


REFUSALS = (InvalidInput, IdempotencyKeyReused, Forbidden, Unauthorized)
"""What refuses one report of a group alone, before any row of its own is written: its
content or Idempotency-Key repeats another submission, or its token is not admitted."""


@dataclass(eq=False)
class _Waiting:
    """One enriched report waiting for a group commit, and what became of it."""

    report: Report
    ids: list[str]
    retry: Retry | None
    fields: dict[str, object]
    arrival: dedupe.NewReport
    credential: Credential | None = None
    token: TokenRecord | None = None
    """The credential's record as the report's transaction read it."""
    done: threading.Event = field(default_factory=threading.Event)
    """Set when the report's group committed (or failed), or when it is to lead one."""
    group: list[_Waiting] | None = None
    """The group this report is to lead (itself first), handed over by the last leader."""
    submission: Submission | None = None
    error: Exception | None = None

    def answer(self) -> Submission:
        """Where the report went, or the error that refused it."""
        if self.error is not None:
            raise self.error
        if self.submission is None:
            raise RuntimeError("a group commit ended without answering a report")
        return self.submission


@dataclass(eq=False)
class Intake(Roles):
    """One city's per-report path over one store."""

    def __post_init__(self) -> None:
        """The rule versions are stored once per process, by the first submission; the
        queue of reports waiting for the next group commit."""
        self._rules_stored = False
        self._rules_lock = threading.Lock()
        self.groups_at_once: int | None = GROUPS_AT_ONCE.get(self.store.backend)
        """Groups written at once (None: no limit, so no report ever waits for a group)."""
        self._queue: list[_Waiting] = []
        self._queue_lock = threading.Lock()
        self._leaders = 0
        self._cell_sides: dict[str, float] = {}

    def submit(
        self, report: Report, retry: Retry | None = None, credential: Credential | None = None
    ) -> Submission:
        """Store one report and say where it went (the API's entry point).

        Raises ``InvalidInput`` naming the field when the report is refused. Without
        ``retry``, a report whose external id is already stored with the same content
        answers with the stored ids (other content is refused); with one, the report's
        external id is derived from it (``external_ids``) and a stored retry is answered
        as the first time; an Idempotency-Key already used for another submission raises
        ``IdempotencyKeyReused``. With ``credential``, its token is read in the report's
        transaction and the report is stored only if ``credential.admit`` accepts it
        (whose error it raises otherwise); the report's channel is the token's holder.
        """
        ids = [report.external_id] if retry is None else external_ids(report, retry)
        report = replace(report, external_id=ids[0])
        fields, arrival = self._enrich(report)
        if retry is not None:
            # A retry arrives later than its first send: its content, not its time, says
            # whether a reused key carries the same submission.
            fields["content_hash"] = submission_digest(report)
        self._store_rule_versions()
        waiting = _Waiting(report, ids, retry, fields, arrival, credential)
        submission = self._committed(waiting)
        if waiting.token is not None:  # after the commit, outside the lock
            record_use(self.store, self.city.jurisdiction_id, waiting.token, datetime.now(UTC))
        return submission

    def _committed(self, waiting: _Waiting) -> Submission:
        """Queue a report for the next group commit and answer once it is committed.

        A caller that finds fewer than ``groups_at_once`` groups under way leads one: it
        writes the reports queued by then (its own first) and wakes them; when it is done,
        the reports queued meanwhile make the next group, handed to the first of them to
        lead. No collecting window: a lone report waits for nothing."""
        with self._queue_lock:
            self._queue.append(waiting)
            lead = self.groups_at_once is None or self._leaders < self.groups_at_once
            if lead:
                self._leaders += 1
                group = self._next_group()
        if not lead:
            waiting.done.wait()
            if waiting.group is None:
                return waiting.answer()
            group = waiting.group
        try:
            self._write_group(group)
        finally:
            with self._queue_lock:
                following = self._next_group()
                if following:
                    following[0].group = following
                    following[0].done.set()
                else:
                    self._leaders -= 1
            for other in group:
                if other is not waiting:
                    other.done.set()
        return waiting.answer()

    def _next_group(self) -> list[_Waiting]:
        """The reports waiting for a group, taken off the queue (``_queue_lock`` held)."""
        group = self._queue[:MAX_GROUP]
        del self._queue[:MAX_GROUP]
        return group

    def _write_group(self, group: list[_Waiting]) -> None:
        """Write a group's reports in one transaction (under the locks of all their
        services); after a failure, each alone. Every report gets its answer or error; a
        group of one raises its failure."""
        try:
            with self.store.transaction(self.city.jurisdiction_id, pipelined=True) as uow:
                families = self.policy.lock_keys(w.arrival.service_code for w in group)
                uow.lock([key for w in group for key in self._lock_keys(w)], shared=families)
                for waiting in group:
                    waiting.submission, waiting.error = None, None
                    sent = self._send(uow, waiting)
                    try:
                        self._admit(waiting, sent)
                        stored = self._repeated(uow, waiting, sent)
                    except REFUSALS as exc:
                        waiting.error = exc  # refused before any row of its own
                        continue
                    waiting.submission = stored or self._written(uow, waiting, sent)
        except Exception:
            for waiting in group:
                waiting.submission, waiting.error = None, None
            if len(group) == 1:
                raise
            for waiting in group:
                try:
                    self._write_group([waiting])
                except Exception as exc:
                    waiting.error = exc

    def _lock_keys(self, waiting: _Waiting) -> list[str]:
        """What a report's writer holds exclusively (its service family held shared):
        the cells of its family's lock grid near its point, and its external ids.

        Two reports whose decisions may depend on each other lie at most twice the
        family's reach apart (one may open an incident at its point or join one within
        its reach, which the other may see only within its own); the grid's cells are
        that far plus ``CELL_MARGIN_M`` wide and each report takes those its square of
        half that side touches (1 to 4): two such reports share the cell of the point
        halfway between them, so they never race, while reports farther apart do not
        wait for each other. A retry (or a reused Idempotency-Key) shares its external
        ids with the first send, wherever it is placed."""
        arrival = waiting.arrival
        (family,) = self.policy.lock_keys([arrival.service_code])
        keys = cell_keys(family, self._cell_side(family), arrival.x, arrival.y)
        j = self.city.jurisdiction_id
        return keys + [f"{j}/external id/{waiting.report.source}/{i}" for i in waiting.ids]

    def _cell_side(self, family: str) -> float:
        """The side of a family's lock cells: twice the longest reach of its services,
        plus ``CELL_MARGIN_M`` (rounding)."""
        side = self._cell_sides.get(family)
        if side is None:
            reach = max(
                max(rule.radius_m, self.policy.reach_m(rule.radius_m, rule.street_radius_m))
                for code, rule in self.policy.rules.items()
                if self.policy.lock_keys([code]) == [family]
            )
            side = self._cell_sides[family] = 2 * reach + CELL_MARGIN_M
        return side

    def _send(self, uow: UnitOfWork, waiting: _Waiting) -> _Sent:
        """Every read a report needs, sent at once (under the lock sent before them): its
        token, the stored reports a retry of it would be, the incidents it may join, and
        the ids it may write. Pipelined, they share one round trip; what a retry or a
        refused report does not use is a few ids left as gaps."""
        report, arrival = waiting.report, waiting.arrival
        credential = waiting.credential
        token = None if credential is None else uow.tokens.find_later(credential.hash)
        known = [uow.reports.known_one_later(report.source, i) for i in waiting.ids]
        candidates = self.attacher.candidates_later(
            uow, report.lon, report.lat, arrival.service_code, arrival.requested_at
        )
        uow.tables.prefetch_ids(self.writer.ids_one())
        return _Sent(token, known, candidates)

    def _admit(self, waiting: _Waiting, sent: _Sent) -> None:
        """Check the report's token as its transaction read it (``Credential.admit``
        raises the refusal); the report's channel is then the token's holder."""
        if waiting.credential is None or sent.token is None:
            return
        waiting.token = sent.token()
        principal = waiting.credential.admit(waiting.token, datetime.now(UTC))
        waiting.fields["channel"] = principal.name

    def _repeated(self, uow: UnitOfWork, waiting: _Waiting, sent: _Sent) -> Submission | None:
        """The stored report this one repeats (under its service's lock), if any; refused
        (``InvalidInput``, ``IdempotencyKeyReused``) when it repeats it with other content."""
        ids, fields = waiting.ids, waiting.fields
        known = [read() for read in sent.known]
        if waiting.retry is None:
            return _stored_as(known[0], ids[0], fields["content_hash"])
        return _retried(
            uow,
            list(zip(ids, known, strict=True)),
            waiting.retry,
            waiting.arrival.requested_at,
            fields["content_hash"],
        )

    def _written(self, uow: UnitOfWork, waiting: _Waiting, sent: _Sent) -> Submission:
        """A new report attached to an incident (or opening one), routed and written.

        Pipelined: its reads came back together (``_send``), every write goes at the end
        of the block; nothing is answered before the commit."""
        report, arrival = waiting.report, waiting.arrival
        link = dedupe.attach_one(arrival, sent.candidates(), self.city.config.dedupe)
        now = datetime.now(UTC)
        written = self.writer.write_one(uow, waiting.fields, report.attributes, link, now)
        return Submission(
            written.report_id, written.incident_id, not written.opened, False, waiting.ids[0]
        )

    def _enrich(self, report: Report) -> tuple[dict[str, object], dedupe.NewReport]:
        """The report's row as the bulk path's batch holds it (validated, enriched, with
        its service's thresholds), and what deduplication reads of it, typed."""
        fields = validate_report(report, self.city)
        fields.update(self.gis.enrich_one(report.lon, report.lat, optional_text(fields["address"])))
        if fields[Flag.OUTSIDE_TERRITORY]:
            reason = outside_reason(self.city, self.gis, report.lon, report.lat)
            raise InvalidInput(f"lat/lon: {reason}", field="lat/lon")
        code = str(fields["service_code"])
        rule = self.policy.rule(code)
        fields.update(
            group=rule.group,
            match=rule.match,
            radius_m=rule.radius_m,
            window_days=rule.window_days,
            street_radius_m=rule.street_radius_m,
        )
        x, y = fields["x"], fields["y"]
        if not isinstance(x, float) or not isinstance(y, float):
            raise TypeError(f"enrich_one gave no metric point: {x!r}, {y!r}")
        arrival = dedupe.NewReport(
            x=x,
            y=y,
            service_code=code,
            group=rule.group,
            match=rule.match,
            radius_m=rule.radius_m,
            window_days=rule.window_days,
            requested_at=as_instant(fields["requested_at"], "requested_at"),
            segment_id=optional_text(fields["segment_id"]),
            street_name=optional_text(fields["street_name"]),
            street_radius_m=rule.street_radius_m,
        )
        return fields, arrival

    def _store_rule_versions(self) -> None:
        """The city's rule versions, stored once per process in their own transaction
        before the first report (``record_rules`` checks them against what is stored)."""
        if self._rules_stored:
            return
        with self._rules_lock:
            if not self._rules_stored:
                with self.store.transaction(self.city.jurisdiction_id) as uow:
                    record_rules(uow, self.city)
                self._rules_stored = True


@dataclass(frozen=True)
class _Sent:
    """A report's reads, sent together; each read when called."""

    token: Later[TokenRecord | None] | None
    known: list[Later[KnownReport | None]]
    """The stored report under each of the report's external ids, if any."""
    candidates: Later[dedupe.Candidates]


def _stored_as(
    known: KnownReport | None, external_id: str, content_hash: object
) -> Submission | None:
    """The stored report of this external id (``known``), when its content is the same;
    refused as changed content when it is not."""
    if known is None:
        return None
    if known.content_hash != content_hash:
        raise InvalidInput(f"external_id: {CHANGED_CONTENT}", field="external_id")
    incident = dedupe.NO_INCIDENT if known.incident_id is None else known.incident_id
    return Submission(known.report_id, incident, False, True, external_id)


def _retried(
    uow: UnitOfWork,
    stored: list[tuple[str, KnownReport | None]],
    retry: Retry,
    now: datetime,
    content_hash: object,
) -> Submission | None:
    """The first stored report among the external ids of a retry made ``now`` (each with
    the report stored under it, if any) received within its window, answered as the first
    time: attached unless it opened its incident.

    A report stored under the same Idempotency-Key with other content is refused."""
    since = retry.since(now)
    found: list[tuple[int, int, str]] = []
    for external_id, known in stored:
        if known is None or known.incident_id is None:
            continue
        if retry.key is not None and known.content_hash != content_hash:
            raise IdempotencyKeyReused(
                "Idempotency-Key: already used for another submission; "
                "send a new key for a new report",
                field="Idempotency-Key",
            )
        if since is None or known.received_at >= since:
            found.append((known.report_id, known.incident_id, external_id))
    if not found:
        return None
    report_id, incident_id, external_id = min(found)
    incident = uow.incidents.get(incident_id)
    attached = incident is not None and incident["origin_report_id"] != report_id
    return Submission(report_id, incident_id, attached, True, external_id)
