"""Who is calling: API tokens, roles, and what each role may see and do.

A token is a random secret printed once by ``voirie tokens add``; the store keeps only its
SHA-256 (a token has 256 bits of entropy, so a fast hash is enough and lets us look it up
by hash). Authorization is data: the role table below, plus the agent's team scope. The
API and any other edge ask these functions; they never test role names themselves.

Roles:
- ``admin``: everything.
- ``dispatcher``: reads and changes every incident (status, assignment, merge, split).
- ``agent``: a team member; sees and changes (status, comment) only the incidents of
  their team(s), and may hand one back to the triage queue but not assign it to another
  team (the dispatcher decides who does what).
- ``gis``: reads every incident, never reporter contact data, changes nothing.
- ``client``: an Open311 ``api_key``; no staff route.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from voirie.city import TRIAGE_TEAM
from voirie.errors import Forbidden, InvalidInput
from voirie.store.base import Store, TokenRecord

TOKEN_PREFIX = "voirie_"
TOKEN_BYTES = 32
MAX_NAME_LENGTH = 100


class Role(enum.StrEnum):
    """What a token holder is."""

    ADMIN = "admin"
    DISPATCHER = "dispatcher"
    AGENT = "agent"
    GIS = "gis"
    CLIENT = "client"


class Action(enum.StrEnum):
    """What a staff member does to an incident (the columns of the authorization table)."""

    READ = "read"
    CONTACTS = "contacts"  # read reporters' name, email, phone, device id
    STATUS = "status"
    COMMENT = "comment"
    ASSIGN = "assign"  # to any team
    HAND_BACK = "hand_back"  # assign to the triage queue only
    MERGE = "merge"  # merge, split, not-duplicate


# How an action reads in an error message: "may not <words> incidents of team X".
ACTION_WORDS: dict[Action, str] = {
    Action.READ: "see",
    Action.CONTACTS: "see reporters' contact data of",
    Action.STATUS: "change the status of",
    Action.COMMENT: "comment on",
    Action.ASSIGN: "reassign",
    Action.HAND_BACK: "hand back",
    Action.MERGE: "merge, split or unlink",
}
# Which role may do what, and whether only on their own team's incidents (``OWN``) or on
# every incident (``ALL``). A role absent from an action's row may not do it at all.
ALL = "all"
OWN = "own"
PERMISSIONS: dict[Action, dict[Role, str]] = {
    Action.READ: {Role.ADMIN: ALL, Role.DISPATCHER: ALL, Role.GIS: ALL, Role.AGENT: OWN},
    Action.CONTACTS: {Role.ADMIN: ALL, Role.DISPATCHER: ALL, Role.AGENT: OWN},
    Action.STATUS: {Role.ADMIN: ALL, Role.DISPATCHER: ALL, Role.AGENT: OWN},
    Action.COMMENT: {Role.ADMIN: ALL, Role.DISPATCHER: ALL, Role.AGENT: OWN},
    Action.ASSIGN: {Role.ADMIN: ALL, Role.DISPATCHER: ALL},
    Action.HAND_BACK: {Role.ADMIN: ALL, Role.DISPATCHER: ALL, Role.AGENT: OWN},
    Action.MERGE: {Role.ADMIN: ALL, Role.DISPATCHER: ALL},
}


@dataclass(frozen=True)
class Principal:
    """An authenticated token holder: their name (the actor in events), role and teams."""

    name: str
    role: Role
    teams: frozenset[str] = frozenset()

    def may(self, action: Action, team: str | None = None) -> bool:
        """Whether this principal may do ``action`` on an incident of ``team``.

        ``team=None`` asks whether the role may do it on some incident at all.
        """
        scope = PERMISSIONS[action].get(self.role)
        if scope is None:
            return False
        return scope == ALL or team is None or team in self.teams

    def check(self, action: Action, team: str) -> None:
        """Raise ``Forbidden`` unless ``may(action, team)``."""
        if not self.may(action, team):
            which = f"team {team!r}" if self.may(action) else "any team"
            raise Forbidden(
                f"{self.role} {self.name!r} may not {ACTION_WORDS[action]} incidents of {which}"
            )

    def may_assign(self, team: str, to_team: str) -> bool:
        """Whether this principal may move an incident of ``team`` to ``to_team``."""
        if self.may(Action.ASSIGN, team):
            return True
        return to_team == TRIAGE_TEAM and self.may(Action.HAND_BACK, team)

    @property
    def visible_teams(self) -> frozenset[str] | None:
        """Teams whose incidents this principal may read; None when every team."""
        scope = PERMISSIONS[Action.READ].get(self.role)
        if scope == ALL:
            return None
        return self.teams if scope == OWN else frozenset()


def parse_role(value: str) -> Role:
    """A role from its name, or ``InvalidInput`` listing the roles."""
    try:
        return Role(value)
    except ValueError:
        raise InvalidInput(
            f"role: unknown role {value!r}; one of {', '.join(Role)}", field="role"
        ) from None


def token_hash(token: str) -> str:
    """The SHA-256 (hex) under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(
    store: Store,
    jurisdiction_id: str,
    name: str,
    role: Role | str,
    teams: Iterable[str] = (),
    *,
    city_teams: Collection[str] | None = None,
) -> str:
    """Create a token for ``name`` and return it; only its hash is stored.

    An agent needs at least one team; other roles take none. When ``city_teams`` is given,
    every team must be one of them.
    """
    role = parse_role(role) if not isinstance(role, Role) else role
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise InvalidInput(
            f"name: must be 1 to {MAX_NAME_LENGTH} printable characters, got {name!r}",
            field="name",
        )
    scope = tuple(sorted(set(teams)))
    if role is Role.AGENT and not scope:
        raise InvalidInput("team: an agent token needs at least one --team", field="team")
    if role is not Role.AGENT and scope:
        raise InvalidInput(
            f"team: only agent tokens are scoped to teams, not {role} ones", field="team"
        )
    if city_teams is not None:
        unknown = [team for team in scope if team not in city_teams]
        if unknown:
            raise InvalidInput(
                f"team: unknown team(s) {', '.join(map(repr, unknown))}; the city's teams "
                "are listed under teams: in its city.yaml",
                field="team",
            )
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    store.add_token(jurisdiction_id, token_hash(token), TokenRecord(name, role.value, scope))
    return token


def authenticate(store: Store, jurisdiction_id: str, token: str) -> Principal | None:
    """The holder of a token in this jurisdiction, or None when the token is unknown."""
    if not token:
        return None
    record = store.find_token(jurisdiction_id, token_hash(token))
    if record is None:
        return None
    return Principal(record.name, Role(record.role), frozenset(record.teams))
