"""The unit of work both backends hand out: one session, and a repository per concern."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

from voirie.store.base import (
    Citizens,
    Consents,
    Escalations,
    Events,
    Incidents,
    LearnedRules,
    Links,
    Moderation,
    Outbox,
    Reports,
    Rules,
    StaffAccounts,
    Tables,
    Tokens,
    Tracking,
)
from voirie.store.statements.citizens import SqlCitizens
from voirie.store.statements.consent import SqlConsents
from voirie.store.statements.delivery import SqlEscalations, SqlOutbox, SqlRules
from voirie.store.statements.events import SqlEvents
from voirie.store.statements.gathered import GatheredTables
from voirie.store.statements.incidents import SqlIncidents
from voirie.store.statements.learned_rules import SqlLearnedRules
from voirie.store.statements.links import SqlLinks
from voirie.store.statements.moderation import SqlModeration
from voirie.store.statements.reports import SqlReports
from voirie.store.statements.session import Session
from voirie.store.statements.staff import SqlStaff
from voirie.store.statements.tokens import SqlTokens
from voirie.store.statements.tracking import SqlTracking


class SqlUnitOfWork:
    """``UnitOfWork`` over a backend's session: every statement written once."""

    def __init__(self, session: Session, *, pipelined: bool = False) -> None:
        """``pipelined``: the session's whole transaction is pipelined already (see
        ``Store.transaction``)."""
        self.session = session
        self._pipelined = pipelined
        gathered = GatheredTables(session)
        self.tables: Tables = gathered
        self.events: Events = SqlEvents(self.tables, session.jurisdiction_id)
        self.reports: Reports = SqlReports(session)
        self.incidents: Incidents = SqlIncidents(session, gathered)
        self.links: Links = SqlLinks(session)
        self.citizens: Citizens = SqlCitizens(session)
        self.tracking: Tracking = SqlTracking(session)
        self.consents: Consents = SqlConsents(session)
        self.moderation: Moderation = SqlModeration(session)
        self.outbox: Outbox = SqlOutbox(session)
        self.rules: Rules = SqlRules(session)
        self.escalations: Escalations = SqlEscalations(session)
        self.staff: StaffAccounts = SqlStaff(session)
        self.learned_rules: LearnedRules = SqlLearnedRules(session)
        self.tokens: Tokens = SqlTokens(session)

    def lock(self, keys: Sequence[str], shared: Sequence[str] = ()) -> None:
        """Serialize writers that touch the same keys (e.g. one service in one city);
        ``shared`` keys first, in shared mode."""
        self.session.lock(keys, shared)

    def pipelined(self) -> AbstractContextManager[object]:
        """Statements sent together until the block ends (the session's pipeline); in a
        transaction pipelined as a whole, they are already (a nested pipeline would wait
        for every result sent before it)."""
        return nullcontext() if self._pipelined else self.session.pipelined()
