"""The storage interface every backend implements: small protocols, one per concern.

Stages never hold a connection: a use case opens a unit of work (one transaction) and
reaches the stored data through its repositories, one small protocol per concern
(``uow.incidents.update(...)``, ``uow.citizens.add_supporter(...)``). Both backends share one
implementation of them, written once over a ``Dialect`` (``voirie.store.statements``). Rows
follow the column lists of ``voirie.store.schema``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import date, datetime
from importlib import resources
from typing import NamedTuple, Protocol, TypedDict, TypeVar

import numpy as np
import pandas as pd

from voirie.model import EventKind
from voirie.store.candidates import BBox, OpenIncidents
from voirie.store.public_points import Placement
from voirie.store.selection import Layer, Selection
from voirie.store.stats import Timings

KNOWN_REPORT_COLUMNS = [
    "external_id",
    "content_hash",
    "report_id",
    "incident_id",
    "received_at",
    "raw_digest",
]
STORED_DIGEST_COLUMNS = ["external_id", "content_hash", "raw_digest"]
"""What a bulk import's first pass reads of the reports stored under a chunk's ids
(``Reports.digests_later``)."""
MEMBER_COLUMNS = [
    "report_id",
    "incident_id",
    "service_code",
    "lon",
    "lat",
    "address",
    "requested_at",
    "segment_id",
    "street_name",
    "score",
    "reason",
]
RESHAPE_COLUMNS = [
    "id",
    "origin_report_id",
    "lon",
    "lat",
    "segment_id",
    "street_name",
    "report_count",
    "first_reported_at",
    "last_reported_at",
    "status",
    "merged_into",
    "updated_at",
]


T = TypeVar("T")
Later = Callable[[], T]
"""A read already sent to the store, whose answer is read (waited for) when called."""


class TokenRecord(NamedTuple):
    """What the store keeps of an API token besides its hash: who holds it and their scope,
    and its lifecycle (the store's id, when created, expires, was last used, was revoked)."""

    name: str
    role: str
    teams: tuple[str, ...]
    expires_at: datetime | None = None
    id: int | None = None
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class StaffUserRecord(NamedTuple):
    """A staff account as stored (migration 0012): its argon2 password hash, role, teams,
    consecutive failed sign-ins and the lock they set, and when it was disabled."""

    id: int
    name: str
    password_hash: str
    role: str
    teams: tuple[str, ...]
    failed_attempts: int = 0
    locked_until: datetime | None = None
    disabled_at: datetime | None = None
    created_at: datetime | None = None


class StaffSessionRecord(NamedTuple):
    """A signed-in session (stored under the SHA-256 of its id) and its user."""

    user: StaffUserRecord
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


class ChangeMark(NamedTuple):
    """Where a city's change counter stands: its version (one more per committed write
    of the city's public data), when that write happened, and the database's clock now
    (HTTP caching sends a Last-Modified only once the second of the change is over)."""

    version: int
    changed_at: datetime
    now: datetime


class MetricCRS(NamedTuple):
    """A city's metric CRS as the store measures metres in it: its EPSG code, where the
    database can project (None when the CRS has none), and the projection of WGS84
    longitudes/latitudes to metric x/y that measures them otherwise (``CityGIS.project``:
    the same transformation, so both give the same distances)."""

    srid: int | None
    project: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class TrackedReport(NamedTuple):
    """The report a private tracking link opens, and the names of its stored photos."""

    report_id: int
    photos: tuple[str, ...]


class ConsentRecord(NamedTuple):
    """Whether an email address agreed to be written to (``pending``, ``confirmed``,
    ``stopped``), in which language, the secret of its links, and when it was last asked."""

    email: str
    state: str
    language: str
    link_token: str
    asked_at: datetime


class ModerationRecord(NamedTuple):
    """What a citizen sent of a moderated report and what staff hid of it."""

    report_id: int
    original_description: str | None
    original_media_url: str | None
    description_state: str
    """``shown``, ``edited`` or ``hidden``."""
    hidden_photos: tuple[str, ...]


class KnownReport(NamedTuple):
    """What the per-report path needs of a report already stored under its external id."""

    content_hash: str
    report_id: int
    incident_id: int | None
    received_at: datetime


class AssignmentRecord(NamedTuple):
    """An incident's current assignment: its team, the rule and version that decided it
    (none for a person's reassignment or an escalation; version 0 without a rule id for
    the city's default team) and who recorded it."""

    team: str
    rule_id: str | None
    rule_version: int | None
    actor: str


class IncidentRow(TypedDict):
    """One stored incident as ``Incidents.get`` reads it, in Python types (missing values
    are None, instants aware in UTC): the columns of ``schema.COLUMNS["incidents"]``."""

    id: int
    jurisdiction_id: str
    service_code: str
    origin_report_id: int | None
    lon: float
    lat: float
    segment_id: str | None
    street_name: str | None
    status: str
    team: str
    priority: int
    due_at: datetime | None
    report_count: int
    first_reported_at: datetime
    last_reported_at: datetime
    updated_at: datetime
    merged_into: int | None


class Tables(Protocol):
    """Rows appended to any schema table (reports, enrichments, events, assignments...)."""

    def reserve_ids(self, table: str, n: int) -> np.ndarray:
        """``n`` fresh ids for ``table`` (one of ``schema.ID_TABLES``, else KeyError), so
        rows written in this batch can refer to each other."""

    def insert(self, table: str, rows: pd.DataFrame) -> None:
        """Append rows (columns as in ``schema.COLUMNS[table]``)."""

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, object]]) -> None:
        """Append rows of Python scalars: the per-report path's ``insert``."""

    def prefetch_ids(self, counts: Mapping[str, int]) -> None:
        """Reserve ids of several tables in one round trip (table -> how many), handed
        out by the next ``reserve_ids`` calls of this transaction."""

    def gathering(self) -> AbstractContextManager[None]:
        """A block whose ``insert_rows`` are held and sent as one statement when it ends
        (the per-report path's dozen tables in one round trip; dropped if the block
        raises). Nothing in it may read the rows it appended; ``insert`` is refused in it.
        A backend without data-modifying CTEs (sqlite) writes them as they come."""


class Events(Protocol):
    """The append-only history of reports and incidents."""

    def append(
        self,
        entity: str,
        entity_id: int,
        kind: EventKind,
        actor: str,
        reason: str,
        at: datetime | None = None,
    ) -> int:
        """Append one event (``entity`` is ``"report"`` or ``"incident"``) at ``at`` (now
        when None); return its id."""


class Reports(Protocol):
    """Reports already stored, looked up by their source's ids."""

    def known(self, source: str, external_ids: Sequence[str]) -> pd.DataFrame:
        """The given ids already stored for a source: a keyed lookup, never a layer scan.

        Columns ``KNOWN_REPORT_COLUMNS``: external_id, content_hash, report_id, incident_id
        (null while the report is not yet attached), received_at and raw_digest (null
        when the report was not imported, or before migration 0024).
        """

    def digests_later(self, source: str, external_ids: Sequence[str]) -> Later[pd.DataFrame]:
        """The digests of the given ids already stored for a source, sent now, read when
        called (in a pipelined block, the store looks them up while the caller works).

        Columns ``STORED_DIGEST_COLUMNS``: external_id, content_hash and raw_digest (null
        as in ``known``): all a bulk import needs to tell a row stored unchanged, or
        with the same or other content, from a new one; the report's incident and
        reception time, which only the per-report path and the import's second pass
        read, are left out (their join and parsing were 40 % of the look-up's time).
        """

    def known_one(self, source: str, external_id: str) -> KnownReport | None:
        """The stored report of a source under this external id, if any (one row)."""

    def known_one_later(self, source: str, external_id: str) -> Later[KnownReport | None]:
        """``known_one`` sent now, read when called (in a pipelined block, with the
        statements sent alongside it: one round trip for all)."""


class Incidents(Protocol):
    """Incidents: dedupe candidates, one incident locked and changed, counts, merges."""

    def open_in_bbox(
        self,
        bbox: BBox,
        service_codes: Sequence[str],
        since: datetime,
        until: datetime | None = None,
    ) -> pd.DataFrame:
        """Open incidents of these services in a WGS84 bbox, last reported at or after
        ``since`` (or in hand), first reported at or before ``until`` (when given), by id
        (columns ``candidates.OPEN_INCIDENT_COLUMNS``)."""

    def open_near(
        self,
        lon: float,
        lat: float,
        reach_m: float,
        service_codes: Sequence[str],
        since: datetime,
        until: datetime | None = None,
    ) -> OpenIncidents:
        """``open_in_bbox`` in the bbox ``gis.metric.bbox_around(lon, lat, reach_m)``, as
        arrays ordered by incident id: every open incident within ``reach_m`` metres of the
        point, and a few beyond it (the caller measures exact distances)."""

    def open_near_later(
        self,
        lon: float,
        lat: float,
        reach_m: float,
        service_codes: Sequence[str],
        since: datetime,
        until: datetime | None = None,
    ) -> Later[OpenIncidents]:
        """``open_near`` sent now, read when called."""

    def get(self, incident_id: int) -> IncidentRow | None:
        """The stored incident row (``schema.COLUMNS["incidents"]``), locked until commit."""

    def update(self, incident_id: int, changes: Mapping[str, object]) -> None:
        """Set columns of one incident (names from ``schema.COLUMNS["incidents"]``); its
        point follows a new lon or lat."""

    def set_status(self, incident_id: int, status: str, at: datetime) -> None:
        """Move one incident to ``status`` at ``at``, with its ``updated_at`` and the
        dashboard's moments (``refresh_timings``'s, this change included), in one
        statement; the caller appends the change's event at ``at``."""

    def add_report(self, incident_id: int, reported_at: datetime, at: datetime) -> None:
        """``add_reports`` for one attached report."""

    def add_reports(self, rows: pd.DataFrame) -> None:
        """Count attached reports (columns incident_id, added, last_reported_at, updated_at,
        and first_reported_at where a report may be older than its incident: it moves the
        first-reported time back)."""

    def reshape(self, rows: pd.DataFrame) -> None:
        """Update many incidents at once (columns ``RESHAPE_COLUMNS``): where
        origin_report_id is given, the origin and its place (lon, lat, segment_id,
        street_name, point) are set; elsewhere a null keeps the stored value."""

    def refresh_timings(self, incident_ids: Sequence[int]) -> None:
        """Set these incidents' first acknowledgement and first resolution from their status
        events (``voirie.store.stats.REFRESH_TIMINGS``): call it after writing status
        changes in bulk (``set_status`` keeps them for one), in the same transaction, so
        the dashboard's moments follow the history."""

    def absorb(self, from_incident: int, to_incident: int) -> int:
        """Move one incident's supporters, followers and merge pointers to another (someone
        supporting or following both is kept once); return the target's supporters now."""

    def set_zones(self, incident_id: int, zones: Mapping[str, tuple[str, str | None]]) -> None:
        """Replace an incident's zones (``incident_zones``: layer -> (code, name), no entry
        for a layer it is outside of)."""

    def zones_from_origin(self, incident_ids: Sequence[int]) -> None:
        """Set these incidents' zones to those of their first report (``report_zones``)."""

    def latest_assignment(self, incident_id: int) -> AssignmentRecord | None:
        """The incident's newest assignment row, if any."""


class Links(Protocol):
    """Reports linked to incidents, and pairs of incidents marked not duplicates."""

    def members(self, incident_ids: Sequence[int] | None = None) -> pd.DataFrame:
        """Reports linked to these incidents (to every open incident when None), with what
        deduplication reads: columns ``MEMBER_COLUMNS``, in time order then by id."""

    def relink(self, links: pd.DataFrame) -> None:
        """Point reports at other incidents (columns report_id, incident_id, score, reason,
        linked_at)."""

    def mark_not_duplicates(
        self, incident_a: int, incident_b: int, actor: str, reason: str, at: datetime
    ) -> bool:
        """Remember that two incidents are not duplicates; False when already remembered."""

    def not_duplicates(self, incident_ids: Sequence[int] | None = None) -> pd.DataFrame:
        """Pairs marked not duplicates (columns incident_a < incident_b) that involve one of
        these incidents (every pair when None)."""


class Citizens(Protocol):
    """Supporters, followers and the salt of anonymous clients' keys."""

    def add_supporter(
        self, incident_id: int, email: str | None, at: datetime, client_key: str | None = None
    ) -> tuple[bool, int]:
        """Record one "me too" on an incident: (counted, the incident's supporters now).

        An email supports an incident once (``counted`` is False the second time); so does
        an anonymous client's key (see ``client_salt``); an anonymous supporter without a
        key always counts. The email is kept apart, never read back into a public row.
        """

    def client_salt(self, day: str) -> str:
        """The salt of the day (ISO date) for anonymous clients' keys, made on first use;
        earlier days' salts are deleted."""

    def add_follower(self, incident_id: int, email: str, at: datetime) -> bool:
        """Subscribe an email to an incident's updates; False when it already followed."""

    def remove_follower(self, incident_id: int, email: str) -> bool:
        """Unsubscribe an email from an incident; False when it did not follow it."""

    def subscribers(self, incident_id: int) -> list[str]:
        """Emails to tell about an incident: its followers' and its reporters' (personal
        data: only for notices to them)."""


class Tracking(Protocol):
    """Private tracking links of reports, kept as the hashes of their tokens."""

    def add(self, token_hash: str, report_id: int, photos: Sequence[str], at: datetime) -> None:
        """Keep a new link's token hash for a report, with the report's photo names."""

    def find(self, token_hash: str) -> TrackedReport | None:
        """The report a token hash opens, or None."""


class Consents(Protocol):
    """Consent of citizens' email addresses (double opt-in) and their opt-outs."""

    def get(self, email: str) -> ConsentRecord | None:
        """The consent of one address, or None when it was never given."""

    def by_link(self, link_token: str) -> ConsentRecord | None:
        """The consent whose links carry ``link_token``, or None."""

    def many(self, emails: Sequence[str]) -> dict[str, ConsentRecord]:
        """The consents of these addresses that exist, by address."""

    def add(self, record: ConsentRecord) -> ConsentRecord:
        """Keep a new address's consent unless it exists; the stored one either way."""

    def asked(self, email: str, token_hash: str, at: datetime) -> None:
        """Record a confirmation email queued for ``email`` with its token's hash."""

    def confirmation(self, token_hash: str) -> str | None:
        """The address a confirmation token's hash was sent to, or None."""

    def confirm(self, email: str, at: datetime) -> int:
        """Mark an address confirmed and release its held messages; how many."""

    def stop(self, email: str, at: datetime) -> int:
        """Stop every email to an address; how many queued messages were cancelled."""

    def follows(self, email: str, incident_id: int) -> bool:
        """Whether ``email`` is told about an incident (a follower or a reporter)."""

    def opt_out(self, email: str, incident_id: int, at: datetime) -> bool:
        """Stop telling ``email`` about one incident; False when already opted out."""

    def opted_in_again(self, email: str, incident_id: int) -> None:
        """Forget an opt-out when the address follows the incident again."""

    def opted_out(self, incident_id: int) -> set[str]:
        """Addresses that asked to hear no more of an incident."""


class Moderation(Protocol):
    """Moderated public content of reports and what the citizen sent (staff only)."""

    def get(self, report_id: int) -> ModerationRecord | None:
        """What the citizen sent and what is hidden of a moderated report, or None."""

    def public(self, report_id: int) -> tuple[str | None, str | None] | None:
        """The report's public description and media_url, or None; serializes moderators."""

    def save(
        self, record: ModerationRecord, description: str | None, media_url: str | None, at: datetime
    ) -> None:
        """Publish the moderated version of a report and keep ``record`` for staff."""

    def photos(self, report_id: int) -> tuple[str, ...]:
        """Names of the photos a report was sent with."""

    def shown_elsewhere(self, report_id: int, names: Sequence[str]) -> tuple[str, ...]:
        """Which of these photos (one file per content) another report still shows."""


class Outbox(Protocol):
    """Messages waiting to be delivered, leased to one worker at a time."""

    def claim(self, worker: str, now: datetime, lease_until: datetime, limit: int) -> pd.DataFrame:
        """Lease up to ``limit`` pending outbox rows due by ``now`` to ``worker`` until
        ``lease_until``; rows leased to another worker are skipped (columns of ``outbox``)."""

    def finish(self, rows: pd.DataFrame) -> None:
        """Record delivery attempts (columns id, status, attempts, next_attempt_at,
        last_error, delivered_at) and release the rows' lease."""


class Rules(Protocol):
    """The stored versions of routing rules."""

    def versions(self, rule_ids: Sequence[str]) -> pd.DataFrame:
        """Stored versions of these routing rules (columns of ``routing_rules``), after
        taking a lock that serializes processes recording rules."""


class Escalations(Protocol):
    """Incidents to escalate when their time has passed."""

    def due(self, now: datetime, limit: int) -> pd.DataFrame:
        """Open incidents whose escalation time has passed and that were not escalated
        (columns incident_id, escalate_at, escalate_to), locked until commit."""

    def mark_escalated(self, incident_ids: Sequence[int], at: datetime) -> None:
        """Record that these incidents were escalated at ``at``."""


class StaffAccounts(Protocol):
    """Staff accounts and their sign-in sessions, kept as hashes."""

    def add_user(
        self, name: str, password_hash: str, role: str, teams: tuple[str, ...], at: datetime
    ) -> int:
        """Store a new account; its id."""

    def user(self, name: str) -> StaffUserRecord | None:
        """The account of this name, locked until commit (its counters change)."""

    def users(self) -> list[StaffUserRecord]:
        """Every account, oldest first."""

    def set_attempts(self, user_id: int, failed: int, locked_until: datetime | None) -> None:
        """Record the count of consecutive failed sign-ins and the lock they set."""

    def set_password(self, user_id: int, password_hash: str) -> None:
        """Replace an account's password hash."""

    def disable(self, user_id: int, at: datetime) -> None:
        """Disable an account and end its sessions."""

    def add_session(
        self, session_hash: str, user_id: int, at: datetime, expires_at: datetime
    ) -> None:
        """Open a session for a user, ending at ``expires_at`` at the latest."""

    def find_session(self, session_hash: str) -> StaffSessionRecord | None:
        """The session under this hash with its user (disabled ones included)."""

    def touch_session(self, session_hash: str, at: datetime) -> None:
        """Record a session's last use (its idle expiry counts from there)."""

    def end_session(self, session_hash: str) -> None:
        """Delete a session (sign-out, or found expired)."""


class LearnedRuleRecord(NamedTuple):
    """One version of a sub-category's routing rule learned from dispatchers'
    reassignments: the team, the corrections behind it (and the decisions kept meanwhile)
    since a day, and where review left it (``proposed``, ``active``, ``rejected``,
    ``reverted``)."""

    service_code: str
    version: int
    team: str
    corrections: int
    kept: int
    since: date
    status: str
    learned_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None


class LearnedRules(Protocol):
    """Routing rules learned from dispatchers, every version kept (the review log)."""

    def versions(self) -> list[LearnedRuleRecord]:
        """Every version of every learned rule, by sub-category then version."""

    def add(self, rule: LearnedRuleRecord) -> None:
        """Keep a new version."""

    def decide(
        self, service_code: str, version: int, status: str, actor: str, at: datetime
    ) -> bool:
        """Set a version's status (accepted, rejected, reverted), with who and when; False
        when that version does not exist."""


class Tokens(Protocol):
    """API tokens read inside a unit of work (checked in the transaction they authorize)."""

    def find_later(self, token_hash: str) -> Later[TokenRecord | None]:
        """``Store.find_token`` of this unit's jurisdiction, sent now, read when called."""


class UnitOfWork(Protocol):
    """One transaction: everything written through it commits together or not at all.

    Its repositories (one per concern) share the transaction; ``lock`` serializes writers.
    """

    tables: Tables
    events: Events
    reports: Reports
    incidents: Incidents
    links: Links
    citizens: Citizens
    tracking: Tracking
    consents: Consents
    moderation: Moderation
    outbox: Outbox
    rules: Rules
    escalations: Escalations
    staff: StaffAccounts
    learned_rules: LearnedRules
    tokens: Tokens

    def lock(self, keys: Sequence[str], shared: Sequence[str] = ()) -> None:
        """Serialize writers that touch the same keys (e.g. one service in one city).

        ``shared`` keys are taken first, in shared mode: writers holding one shared key
        run together, and wait for (and hold off) a writer holding it exclusively."""

    def pipelined(self) -> AbstractContextManager[object]:
        """A block whose statements are sent together (one round trip where results are
        not read in between); errors surface at the latest when the block ends."""


class Store(Protocol):
    """A storage backend."""

    backend: str

    @property
    def concurrent_transactions(self) -> bool:
        """Whether two units of work can be open at once, each on its own connection and
        seeing the other's rows only once committed: a bulk import then reads its next
        batch while the last one commits (``Importer._store_overlapped``). sqlite has one
        writer connection."""

    def upgrade(self) -> list[int]:
        """Apply pending numbered migrations; return the versions applied."""

    def schema_version(self) -> int:
        """The highest migration applied (0 for an empty database)."""

    def transaction(
        self, jurisdiction_id: str, *, pipelined: bool = False
    ) -> AbstractContextManager[UnitOfWork]:
        """Open a unit of work for one jurisdiction. ``pipelined``: its statements are
        sent together from its start to its commit where the backend has round trips to
        save (``UnitOfWork.pipelined`` for the whole transaction, its BEGIN and COMMIT
        included); no bulk insert (``Tables.insert``) in it then."""

    def place_publicly(self, jurisdiction_id: str, placement: Placement) -> bool:
        """Write this city's reports and incidents with their public points from now on
        (where the public sees a blurred one), and recompute the stored ones if its
        blurring changed (``voirie.store.public_points``); True when they were."""

    def read(self, query: str, jurisdiction_id: str) -> pd.DataFrame:
        """A whole layer (``"reports"``, ``"incidents"``) or a named query of ``queries``."""

    def select(self, layer: Layer, jurisdiction_id: str, selection: Selection) -> pd.DataFrame:
        """One page of the rows of a layer that a selection keeps, ordered by id."""

    def count_selected(self, layer: Layer, jurisdiction_id: str, selection: Selection) -> int:
        """How many rows of a layer a selection keeps, ignoring its page."""

    def status_counts(
        self, layer: Layer, jurisdiction_id: str, selection: Selection
    ) -> dict[str, int]:
        """How many rows of a layer a selection keeps per status, ignoring its page."""

    def page_rows(
        self,
        layer: Layer,
        jurisdiction_id: str,
        selection: Selection,
        zone_layers: Sequence[str] = (),
    ) -> list[tuple[object, ...]]:
        """``select`` as tuples of ``selection.layer_columns(layer)`` then the row's code
        in each of ``zone_layers`` (None where it has none), in one statement: no
        DataFrame."""

    def request_rows(
        self, jurisdiction_id: str, selection: Selection, kind: str
    ) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        """The page of reports a selection keeps as tuples of ``REQUEST_COLUMNS`` and
        ``(incident_id, reason)`` of their incidents' events of one kind, oldest first."""

    def nearest(
        self,
        layer: Layer,
        jurisdiction_id: str,
        selection: Selection,
        point: tuple[float, float],
        radius_m: float,
        metric: MetricCRS,
    ) -> pd.DataFrame:
        """The page of the rows a selection keeps within ``radius_m`` metres of a WGS84
        point (lon, lat), nearest first then by id: ``row_id``, ``distance_m`` (metres in
        ``metric``). The selection's bbox should hold the circle: only rows in it count."""

    def nearby_rows(
        self,
        jurisdiction_id: str,
        selection: Selection,
        point: tuple[float, float],
        radius_m: float,
        metric: MetricCRS,
    ) -> tuple[list[tuple[object, ...]], int]:
        """The incidents ``nearest`` finds, as tuples of ``reads.NEARBY_COLUMNS`` then
        ``distance_m``, nearest first then by id (no DataFrame), and how many are within
        the radius in all pages."""

    def events_between(
        self, jurisdiction_id: str, kind: str, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """Events of one kind in a time window (ends included), oldest first."""

    def select_zones(
        self, layer: Layer, jurisdiction_id: str, selection: Selection
    ) -> pd.DataFrame:
        """Zones of the rows of one page: row_id (the layer's id), layer, code, name."""

    def count(self, table: str, jurisdiction_id: str) -> int:
        """Number of rows of a table for a jurisdiction."""

    def analyze(self, tables: Sequence[str] | None = None, *, quick: bool = False) -> None:
        """Refresh the planner's statistics (after a bulk load changed the tables' sizes),
        of every table or of these (schema tables, else KeyError). ``quick``: from a small
        sample, for a refresh during a load (the sizes and rough distributions its own
        statements plan with), refreshed in full at its end (a backend may keep the small
        sample for a small table, where the full one changes no plan: PostGIS's
        ``SMALL_TABLE_BYTES``)."""

    def newest_request_before(self, jurisdiction_id: str, before: datetime) -> datetime | None:
        """When the newest request made before ``before`` was made (None when none was)."""

    def incident_timings(
        self,
        jurisdiction_id: str,
        zone_layer: str,
        since: datetime,
        now: datetime,
        open_statuses: Sequence[str],
        teams: Sequence[str] | None = None,
    ) -> Timings:
        """The incidents first reported since ``since``, one row each, and the older open
        backlog counted per team, service and zone (of ``teams`` when given), with their
        zone and when they were first acknowledged and resolved."""

    def change_mark(self, jurisdiction_id: str) -> ChangeMark:
        """The city's change counter (migrations 0011, 0021, 0023): one cheap read, for ETag and
        Last-Modified; a city never written to reads the store's counter from before 0021."""

    def rows(self, text: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        """Rows of one read query (in the backend's placeholders) as tuples: the lean read
        path's answer, without a DataFrame."""

    def incident_tile(
        self, jurisdiction_id: str, z: int, x: int, y: int, public: bool = False
    ) -> bytes:
        """Mapbox Vector Tile z/x/y (XYZ) of the incidents, layer ``incidents``; b"" if empty.

        Public attributes only (``voirie.codecs.mvt.FIELDS``); the feature id is the
        incident id. Below ``mvt.CLUSTER_BELOW_ZOOM`` one feature per ``mvt.CELL`` cell
        at its centre instead, with ``mvt.CLUSTER_FIELDS`` (the same cells on every
        backend). PostGIS encodes with ``ST_AsMVT``, sqlite with ``codecs.mvt``. With
        ``public`` (a city that blurs), each incident is selected and drawn at its stored
        public point (``voirie.store.public_points``), in features and cells alike.
        """

    def lookup(
        self, table: str, jurisdiction_id: str, column: str, values: Sequence[object]
    ) -> pd.DataFrame:
        """Rows of a schema table (its ``schema.COLUMNS``) whose ``column`` is one of
        ``values``, ordered by that column then the table's first column."""

    def add_token(self, jurisdiction_id: str, token_hash: str, token: TokenRecord) -> None:
        """Store an API token's hash with its holder, role and teams."""

    def find_token(self, jurisdiction_id: str, token_hash: str) -> TokenRecord | None:
        """The token stored under this hash in this jurisdiction, if any (also when
        revoked or expired: the caller says which)."""

    def list_tokens(self, jurisdiction_id: str) -> list[TokenRecord]:
        """Every token of a jurisdiction, revoked and expired ones included, oldest first."""

    def revoke_token(self, jurisdiction_id: str, token_id: int, at: datetime) -> None:
        """Mark a token revoked at ``at`` (kept for the record; refused from then on)."""

    def expire_token(self, jurisdiction_id: str, token_id: int, at: datetime) -> None:
        """Set a token's expiry to ``at``."""

    def touch_token(
        self, jurisdiction_id: str, token_id: int, at: datetime, since: datetime
    ) -> None:
        """Record ``at`` as a token's last use, unless it was already used after ``since``."""

    def close(self) -> None:
        """Release connections."""


def migrations(backend: str) -> Iterator[tuple[int, str, str]]:
    """(version, name, SQL) of every migration of a backend, in order."""
    folder = resources.files("voirie.store") / "migrations" / backend
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            yield version, entry.name, entry.read_text(encoding="utf-8")


def pending_migrations(backend: str, applied: Collection[int]) -> list[tuple[int, str, str]]:
    """``migrations`` of a backend not yet ``applied``, in order: one numbered below the
    highest applied (merged from another branch) included."""
    return [migration for migration in migrations(backend) if migration[0] not in applied]


@contextmanager
def applying(name: str) -> Iterator[None]:
    """A block applying the migration file ``name``: an error raised in it names the file
    (a note on the error, which keeps its type)."""
    try:
        yield
    except Exception as exc:
        exc.add_note(f"while applying migration {name}")
        raise
