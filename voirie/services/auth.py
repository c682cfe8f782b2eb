"""Who is calling: API tokens, roles, and what each role may see and do.

A token is a random secret printed once by ``voirie tokens add``; the store keeps only its
SHA-256 (a token has 256 bits of entropy, so a fast hash is enough and lets us look it up
by hash). A token may expire (``--expires 90d``), be revoked or rotated (``voirie tokens
revoke|rotate``); every request reads its token from the store, so a revoked or expired
token is refused at once by every worker (no cache outlives a revoke); a write reads it in
its own transaction (``Credential``). The last use is recorded at most once a minute per
token, not written on every request.

Authorization is data: the role table below, plus the agent's team scope. The API and
any other edge ask these functions; they never test role names themselves.

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
import re
import secrets
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from voirie.city import TRIAGE_TEAM
from voirie.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from voirie.store.base import Store, TokenRecord

TOKEN_PREFIX = "voirie_"
TOKEN_BYTES = 32
MAX_NAME_LENGTH = 100
# A token's last use is written when the stored one is older than this: at most one
# write a minute per token, whatever the request rate.
TOUCH_INTERVAL = timedelta(minutes=1)
_DURATION = re.compile(r"([0-9]{1,5})([hdw])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}
ACTIVE, EXPIRED, REVOKED = "active", "expired", "revoked"


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
    MODERATE = "moderate"  # hide or edit what citizens publish (text, photos)
    RULES = "rules"  # accept, reject or revert routing rules learned from reassignments


# How an action reads in an error message: "may not <words> incidents of team X".
ACTION_WORDS: dict[Action, str] = {
    Action.READ: "see",
    Action.CONTACTS: "see reporters' contact data of",
    Action.STATUS: "change the status of",
    Action.COMMENT: "comment on",
    Action.ASSIGN: "reassign",
    Action.HAND_BACK: "hand back",
    Action.MERGE: "merge, split or unlink",
    Action.MODERATE: "moderate the reports of",
    Action.RULES: "review the learned routing rules for",
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
    Action.MODERATE: {Role.ADMIN: ALL, Role.DISPATCHER: ALL},
    Action.RULES: {Role.ADMIN: ALL, Role.DISPATCHER: ALL},
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


def parse_duration(text: str, field: str = "grace") -> timedelta:
    """A duration written ``12h``, ``90d`` or ``4w``; ``InvalidInput`` naming ``field``."""
    duration = _DURATION.fullmatch(text.strip().lower())
    if duration is None:
        raise InvalidInput(
            f"{field}: {text!r} is not a duration such as 12h, 90d or 4w", field=field
        )
    return timedelta(**{_UNITS[duration[2]]: int(duration[1])})


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    """When a token given ``--expires TEXT`` stops working: ``90d``, ``12h``, ``4w`` from
    ``now``, a date (the token works through that day, UTC) or an ISO 8601 date-time
    (UTC when it has no offset); it must be in the future."""
    now = now or datetime.now(UTC)
    value = text.strip()
    moment: datetime | None = None
    if _DURATION.fullmatch(value.lower()):
        moment = now + parse_duration(value, "expires")
    else:
        try:
            day = date.fromisoformat(value)
            moment = datetime.combine(day + timedelta(days=1), time(), UTC)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(value)
                moment = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
            except ValueError:
                moment = None
    if moment is None:
        raise InvalidInput(
            f"expires: {text!r} is neither a duration (90d, 12h, 4w) nor a date "
            "(2027-03-31) or date-time (2027-03-31T18:00:00+02:00)",
            field="expires",
        )
    if moment <= now:
        raise InvalidInput(f"expires: {text!r} is not in the future", field="expires")
    return moment


def token_status(token: TokenRecord, now: datetime | None = None) -> str:
    """``active``, ``expired`` or ``revoked``."""
    if token.revoked_at is not None:
        return REVOKED
    if token.expires_at is not None and token.expires_at <= (now or datetime.now(UTC)):
        return EXPIRED
    return ACTIVE


def issue_token(
    store: Store,
    jurisdiction_id: str,
    name: str,
    role: Role | str,
    teams: Iterable[str] = (),
    *,
    city_teams: Collection[str] | None = None,
    expires_at: datetime | None = None,
) -> str:
    """Create a token for ``name`` and return it; only its hash is stored.

    An agent needs at least one team; other roles take none. When ``city_teams`` is given,
    every team must be one of them. Without ``expires_at`` the token works until revoked.
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
    record = TokenRecord(name, role.value, scope, expires_at=expires_at)
    store.add_token(jurisdiction_id, token_hash(token), record)
    return token


def principal_of(record: TokenRecord | None, now: datetime) -> Principal:
    """The holder of a stored token (``Store.find_token``'s record, None when unknown);
    ``Unauthorized`` saying whether the token is unknown, revoked or expired at ``now``."""
    if record is None or record.id is None:
        raise Unauthorized("unknown API token")
    status = token_status(record, now)
    if status == REVOKED and record.revoked_at is not None:
        raise Unauthorized(f"API token revoked on {record.revoked_at:%Y-%m-%d %H:%M} UTC")
    if status == EXPIRED and record.expires_at is not None:
        raise Unauthorized(f"API token expired on {record.expires_at:%Y-%m-%d %H:%M} UTC")
    return Principal(record.name, Role(record.role), frozenset(record.teams))


def record_use(store: Store, jurisdiction_id: str, record: TokenRecord, now: datetime) -> None:
    """Write a token's last use when the stored one is older than ``TOUCH_INTERVAL``."""
    if record.id is not None and (
        record.last_used_at is None or now - record.last_used_at >= TOUCH_INTERVAL
    ):
        store.touch_token(jurisdiction_id, record.id, now, now - TOUCH_INTERVAL)


def identify(
    store: Store, jurisdiction_id: str, token: str, now: datetime | None = None
) -> Principal:
    """The holder of a token in this jurisdiction; ``Unauthorized`` saying whether the
    token is unknown, revoked or expired. Records the use (at most once a minute)."""
    now = now or datetime.now(UTC)
    record = store.find_token(jurisdiction_id, token_hash(token)) if token else None
    principal = principal_of(record, now)
    assert record is not None  # else refused above
    record_use(store, jurisdiction_id, record, now)
    return principal


@dataclass(frozen=True)
class Credential:
    """A token to check in the very transaction of the write it authorizes.

    ``Intake.submit`` sends its look-up with the write's first reads (no round trip, no
    connection of its own) and stores nothing unless ``admit`` accepts the record read
    there: a token revoked or expired before that read is refused at once, as
    ``identify`` refuses it, never served from a cache. ``admit`` gives the holder or
    raises the refusal the caller's protocol answers (Open311: 403 naming ``api_key``)."""

    token: str
    admit: Callable[[TokenRecord | None, datetime], Principal]

    @property
    def hash(self) -> str:
        """The SHA-256 under which the token is stored."""
        return token_hash(self.token)


def authenticate(store: Store, jurisdiction_id: str, token: str) -> Principal | None:
    """The holder of a token in this jurisdiction, or None when the token is unknown,
    revoked or expired (``identify`` says which)."""
    try:
        return identify(store, jurisdiction_id, token)
    except Unauthorized:
        return None


def find_token(
    store: Store, jurisdiction_id: str, ref: str, now: datetime | None = None
) -> TokenRecord:
    """A token by its id (``voirie tokens list``) or by its holder's name when exactly
    one token of that name is active at ``now``."""
    tokens = store.list_tokens(jurisdiction_id)
    ref = ref.strip()
    if ref.isascii() and ref.isdigit():
        found = [t for t in tokens if t.id == int(ref)]
    else:
        found = [t for t in tokens if t.name == ref and token_status(t, now) == ACTIVE]
    if not found:
        raise NotFound(
            f"token: no token {ref!r}; `voirie tokens list` shows ids and names", field="token"
        )
    if len(found) > 1:
        ids = ", ".join(str(t.id) for t in found)
        raise InvalidInput(
            f"token: {len(found)} active tokens are named {ref!r} (ids {ids}); give the id",
            field="token",
        )
    return found[0]


def revoke_token(
    store: Store, jurisdiction_id: str, ref: str, now: datetime | None = None
) -> TokenRecord:
    """Revoke a token (by id or name): refused from the next request on, by every worker."""
    record = find_token(store, jurisdiction_id, ref, now)
    if record.revoked_at is not None:
        raise InvalidInput(f"token: {record.id} is already revoked", field="token")
    assert record.id is not None  # read from the store
    store.revoke_token(jurisdiction_id, record.id, now or datetime.now(UTC))
    return record


def rotate_token(
    store: Store,
    jurisdiction_id: str,
    ref: str,
    *,
    expires_at: datetime | None = None,
    grace: timedelta = timedelta(0),
    now: datetime | None = None,
) -> tuple[TokenRecord, str]:
    """Replace an active token by a new one for the same holder, role and teams (and
    expiry, unless ``expires_at`` is given): (the old token, the new token).

    The old token is revoked at once, or, with a ``grace``, expires after it, so that a
    client can switch over without a refused request. The new token is stored first: a
    failure in between leaves the old one working, never neither.
    """
    now = now or datetime.now(UTC)
    record = find_token(store, jurisdiction_id, ref, now)
    if token_status(record, now) != ACTIVE:
        raise InvalidInput(
            f"token: {record.id} is {token_status(record, now)}; only an active token is "
            "rotated (create a new one with `voirie tokens add`)",
            field="token",
        )
    assert record.id is not None  # read from the store
    token = issue_token(
        store,
        jurisdiction_id,
        record.name,
        record.role,
        record.teams,
        expires_at=expires_at or record.expires_at,
    )
    if grace > timedelta(0):
        ends = now + grace
        if record.expires_at is None or ends < record.expires_at:
            store.expire_token(jurisdiction_id, record.id, ends)
    else:
        store.revoke_token(jurisdiction_id, record.id, now)
    return record, token
