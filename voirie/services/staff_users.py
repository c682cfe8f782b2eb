"""Staff accounts and password sign-in for the staff pages (``/staff/``).

People sign in with a name and password (``voirie users add``); machines keep API tokens
(``voirie.services.auth``). A password is kept as an argon2id hash (``argon2-cffi``'s
defaults, rehashed on sign-in when they grow). A sign-in opens a session: a random id in
a cookie, of which the store keeps only the SHA-256, with an idle expiry (renewed by use)
and an absolute one (whatever the use). After ``max_failures`` consecutive wrong passwords
an account is locked for ``lockout_minutes``: a guesser gets a handful of tries an hour.
Every refusal says the same words whatever the reason (unknown name, wrong password,
locked, disabled), so the form tells an attacker nothing about which names exist.

A signed-in person is a ``Principal`` like a token holder: the same roles and team scope,
the same authorization table.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from voirie.errors import InvalidInput, NotFound, Unauthorized
from voirie.services.auth import MAX_NAME_LENGTH, Action, Principal, Role, parse_role
from voirie.store.base import StaffUserRecord, Store

SESSION_BYTES = 32
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 hashes anything; a cap keeps a request cheap
# A session's last use is written when the stored one is older than this.
TOUCH_INTERVAL = timedelta(minutes=1)
REFUSED = "nom ou mot de passe incorrect, ou compte verrouillé"
_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the name is unknown, so that an unknown name takes as long as
    a wrong password (the answer's timing does not tell which names exist). Made at first
    use, not at import: an argon2 hash costs 0.2 s of CPU that every CLI start paid."""
    return _HASHER.hash(secrets.token_urlsafe(16))


class StaffSettings(BaseSettings):
    """Staff sign-in: session lifetimes and lockout (``VOIRIE_STAFF_*`` variables)."""

    model_config = SettingsConfigDict(env_prefix="VOIRIE_STAFF_")

    session_idle_minutes: int = Field(
        default=60, ge=1, description="a session unused this long ends (sign in again)"
    )
    session_max_hours: int = Field(
        default=12, ge=1, description="a session ends this long after sign-in, used or not"
    )
    max_failures: int = Field(
        default=5, ge=1, description="consecutive wrong passwords that lock an account"
    )
    lockout_minutes: int = Field(
        default=15, ge=1, description="how long a locked account refuses every password"
    )


@dataclass(frozen=True)
class SignedIn:
    """A new session: its id (for the cookie, never stored) and who it is."""

    session_id: str
    principal: Principal
    expires_at: datetime


def session_hash(session_id: str) -> str:
    """The SHA-256 (hex) under which a session is stored."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def csrf_token(session_id: str) -> str:
    """The anti-forgery token of a session: derived from its secret id, so another site,
    which cannot read the cookie, cannot compute it; nothing more to store."""
    return hashlib.sha256(b"voirie-csrf\0" + session_id.encode("utf-8")).hexdigest()


def csrf_matches(session_id: str, sent: str) -> bool:
    """Whether ``sent`` is the session's anti-forgery token (compared in constant time)."""
    return hmac.compare_digest(csrf_token(session_id), sent)


def _principal(user: StaffUserRecord) -> Principal:
    return Principal(user.name, Role(user.role), frozenset(user.teams))


def check_password(password: str) -> str:
    """A password fit for an account, or ``InvalidInput`` naming ``password``."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"password: must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
            field="password",
        )
    return password


def add_user(
    store: Store,
    jurisdiction_id: str,
    name: str,
    role: Role | str,
    teams: tuple[str, ...],
    password: str,
    *,
    city_teams: frozenset[str] | None = None,
    now: datetime | None = None,
) -> StaffUserRecord:
    """Create a staff account; roles and team rules as for API tokens, but only roles
    that read incidents (an Open311 ``client`` does not sign in to the staff pages)."""
    role = parse_role(role) if not isinstance(role, Role) else role
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise InvalidInput(
            f"name: must be 1 to {MAX_NAME_LENGTH} printable characters, got {name!r}",
            field="name",
        )
    if not Principal(name, role).may(Action.READ):
        raise InvalidInput(f"role: a {role} cannot sign in to the staff pages", field="role")
    scope = tuple(sorted(set(teams)))
    if role is Role.AGENT and not scope:
        raise InvalidInput("team: an agent needs at least one --team", field="team")
    if role is not Role.AGENT and scope:
        raise InvalidInput(f"team: only agents are scoped to teams, not {role}s", field="team")
    unknown = [t for t in scope if city_teams is not None and t not in city_teams]
    if unknown:
        raise InvalidInput(
            f"team: unknown team(s) {', '.join(map(repr, unknown))}; the city's teams are "
            "listed under teams: in its city.yaml",
            field="team",
        )
    hashed = _HASHER.hash(check_password(password))
    now = now or datetime.now(UTC)
    with store.transaction(jurisdiction_id) as uow:
        if uow.staff.user(name) is not None:
            raise InvalidInput(f"name: a staff account {name!r} already exists", field="name")
        user_id = uow.staff.add_user(name, hashed, role.value, scope, now)
    return StaffUserRecord(user_id, name, hashed, role.value, scope, created_at=now)


def list_users(store: Store, jurisdiction_id: str) -> list[StaffUserRecord]:
    """Every staff account of a jurisdiction, disabled ones included, oldest first."""
    with store.transaction(jurisdiction_id) as uow:
        return uow.staff.users()


def disable_user(
    store: Store, jurisdiction_id: str, name: str, now: datetime | None = None
) -> StaffUserRecord:
    """Disable an account: its sessions end at once and it cannot sign in again."""
    with store.transaction(jurisdiction_id) as uow:
        user = uow.staff.user(name)
        if user is None:
            raise NotFound(f"name: no staff account {name!r}", field="name")
        if user.disabled_at is not None:
            raise InvalidInput(f"name: {name!r} is already disabled", field="name")
        uow.staff.disable(user.id, now or datetime.now(UTC))
    return user


def sign_in(
    store: Store,
    jurisdiction_id: str,
    name: str,
    password: str,
    settings: StaffSettings,
    now: datetime | None = None,
) -> SignedIn:
    """Open a session for a name and password, or ``Unauthorized`` (always saying
    ``REFUSED``); a wrong password counts towards the account's lock, a right one resets
    the count."""
    now = now or datetime.now(UTC)
    with store.transaction(jurisdiction_id) as uow:
        user = uow.staff.user(name.strip()) if len(password) <= MAX_PASSWORD_LENGTH else None
        if user is None:
            _verify(_dummy_hash(), password)
            raise Unauthorized(REFUSED)
        locked = user.locked_until is not None and user.locked_until > now
        if user.disabled_at is not None or locked:
            raise Unauthorized(REFUSED)
        if not _verify(user.password_hash, password):
            failed = user.failed_attempts + 1
            lock = None
            if failed >= settings.max_failures:
                failed, lock = 0, now + timedelta(minutes=settings.lockout_minutes)
            uow.staff.set_attempts(user.id, failed, lock)
            refused = True
        else:
            refused = False
            if user.failed_attempts or user.locked_until is not None:
                uow.staff.set_attempts(user.id, 0, None)
            if _HASHER.check_needs_rehash(user.password_hash):
                uow.staff.set_password(user.id, _HASHER.hash(password))
            session_id = secrets.token_urlsafe(SESSION_BYTES)
            expires_at = now + timedelta(hours=settings.session_max_hours)
            uow.staff.add_session(session_hash(session_id), user.id, now, expires_at)
    if refused:  # raised after the commit: the failure must count
        raise Unauthorized(REFUSED)
    return SignedIn(session_id, _principal(user), expires_at)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def session_principal(
    store: Store,
    jurisdiction_id: str,
    session_id: str,
    settings: StaffSettings,
    now: datetime | None = None,
) -> Principal | None:
    """Who a session is, or None when it is unknown, expired (idle or absolute) or its
    account disabled; an expired session is deleted, a live one's use recorded (at most
    once a minute)."""
    if not session_id or len(session_id) > 2 * SESSION_BYTES:
        return None
    now = now or datetime.now(UTC)
    key = session_hash(session_id)
    with store.transaction(jurisdiction_id) as uow:
        found = uow.staff.find_session(key)
        if found is None:
            return None
        idle_end = found.last_seen_at + timedelta(minutes=settings.session_idle_minutes)
        if found.user.disabled_at is not None or now >= found.expires_at or now >= idle_end:
            uow.staff.end_session(key)
            return None
        if now - found.last_seen_at >= TOUCH_INTERVAL:
            uow.staff.touch_session(key, now)
    return _principal(found.user)


def sign_out(store: Store, jurisdiction_id: str, session_id: str) -> None:
    """End a session (nothing happens when it is unknown)."""
    with store.transaction(jurisdiction_id) as uow:
        uow.staff.end_session(session_hash(session_id))
