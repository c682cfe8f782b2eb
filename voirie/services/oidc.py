"""OpenID Connect sign-in for staff: a city's identity provider vouches for a person, who
then gets the same voirie session as after a password sign-in.

Configured only by ``VOIRIE_OIDC_*`` settings (off while ``VOIRIE_OIDC_ISSUER`` is empty).
The flow is the authorization code flow with PKCE (S256), a ``state`` against forged
callbacks and a ``nonce`` against replayed ID tokens. The provider is found through its
discovery document (``/.well-known/openid-configuration``, whose ``issuer`` must be the
configured one); the ID token's signature is checked against the provider's published keys
(JWKS, asymmetric algorithms only), then its issuer, audience, expiry, issue time and nonce.

Sign-out is OpenID Connect RP-Initiated Logout 1.0: voirie keeps the ID token of a session
opened through the provider (sealed in a cookie bound to that session, since the session
table has no room for it) and, when the discovery document has an ``end_session_endpoint``,
sends the browser there with ``id_token_hint``, ``post_logout_redirect_uri`` (the sign-in
page, registered at the provider) and a sealed ``state`` carrying the page language, so
that the provider's session ends with voirie's.

The person is matched to an existing staff account by one claim (``email`` by default, or
``sub`` / ``preferred_username``) equal to the account's name; a person the provider knows
but voirie does not is refused, unless ``VOIRIE_OIDC_CREATE_ROLE`` says which role a new
account gets (never silently otherwise). Roles and teams stay voirie's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote, urlencode, urlsplit

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from voirie.errors import Forbidden, InvalidInput, Unauthorized
from voirie.services.auth import Principal, Role
from voirie.services.staff_users import (
    SESSION_BYTES,
    SignedIn,
    StaffSettings,
    add_user,
    session_hash,
)
from voirie.store.base import StaffUserRecord, Store

# Signature algorithms accepted on ID tokens: public-key ones only (never "none", never a
# shared-secret HMAC), whatever the token's header says.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
FLOW_MAX_AGE = timedelta(minutes=10)
"""How long a person has to sign in at the provider before the callback is refused."""
METADATA_TTL_S = 3600.0
"""Discovery document and keys are fetched again after this long (keys roll over)."""


class OidcSettings(BaseSettings):
    """OpenID Connect sign-in (``VOIRIE_OIDC_*`` variables); off without an issuer."""

    model_config = SettingsConfigDict(env_prefix="VOIRIE_OIDC_")

    issuer: str = Field(
        default="",
        description="the provider's issuer URL (its discovery document is under "
        "/.well-known/openid-configuration); empty: OpenID Connect is off",
    )
    client_id: str = Field(default="", description="voirie's client id at the provider")
    client_secret: SecretStr = Field(
        default=SecretStr(""), description="voirie's client secret at the provider"
    )
    provider_name: str = Field(
        default="", max_length=60, description='the name on the "Se connecter avec" button'
    )
    user_claim: Literal["email", "sub", "preferred_username"] = Field(
        default="email", description="the claim equal to the voirie account's name"
    )
    scopes: str = Field(default="openid email profile", description="scopes asked for")
    timeout_s: float = Field(default=10.0, gt=0, description="each request to the provider")
    leeway_s: int = Field(
        default=60, ge=0, le=600, description="clock difference allowed with the provider"
    )
    create_role: Literal["gis", "dispatcher"] | None = Field(
        default=None,
        description="give a person the provider vouches for but voirie does not know a new "
        "account of this role (default: refuse them); never an admin, never an agent "
        "(agents need a team)",
    )

    @model_validator(mode="after")
    def _complete(self) -> OidcSettings:
        if not self.issuer:
            return self
        parts = urlsplit(self.issuer)
        local = parts.hostname in {"localhost", "127.0.0.1", "::1"}
        if parts.scheme != "https" and not (parts.scheme == "http" and local):
            raise ValueError("issuer: must be an https:// URL (http only on localhost)")
        if parts.query or parts.fragment:
            raise ValueError("issuer: must not have a query or fragment")
        if not self.client_id:
            raise ValueError("client_id: required with VOIRIE_OIDC_ISSUER")
        if not self.client_secret.get_secret_value():
            raise ValueError("client_secret: required with VOIRIE_OIDC_ISSUER")
        if "openid" not in self.scopes.split():
            raise ValueError("scopes: must include openid")
        return self

    @property
    def enabled(self) -> bool:
        """Whether OpenID Connect sign-in is offered."""
        return bool(self.issuer)

    @property
    def label(self) -> str:
        """The provider's name for people: the configured one, else the issuer's host."""
        return self.provider_name or urlsplit(self.issuer).hostname or self.issuer


class ProviderError(Exception):
    """The identity provider could not be reached or answered something unusable."""


@dataclass(frozen=True)
class Metadata:
    """The parts of a provider's discovery document voirie uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    end_session_endpoint: str | None
    algorithms: tuple[str, ...]


@dataclass(frozen=True)
class Flow:
    """A sign-in under way: what the callback must find again (kept in a sealed cookie)."""

    state: str
    nonce: str
    verifier: str
    next: str
    lang: str
    started: float


@dataclass(frozen=True)
class Identity:
    """What the provider said at the end of a sign-in: the verified claims, and the ID
    token itself (the ``id_token_hint`` of the sign-out)."""

    claims: dict[str, Any]
    id_token: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class OidcClient:
    """voirie as a relying party of one provider: discovery and keys (cached), the
    authorization URL, the code exchange and the ID token's checks. Thread-safe."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._metadata: tuple[float, Metadata] | None = None
        self._keys: tuple[float, KeySet] | None = None
        secret = settings.client_secret.get_secret_value().encode("utf-8")
        self._seal_key = hashlib.sha256(b"voirie-oidc-flow\0" + secret).digest()

    # --- talking to the provider -----------------------------------------------------

    def _get_json(
        self, url: str, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        request = urllib.request.Request(
            url, data=data, headers={"Accept": "application/json", **(headers or {})}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout_s) as answer:
                body = json.loads(answer.read(1_000_000))
        except urllib.error.HTTPError as error:
            detail = error.read(2000).decode("utf-8", "replace")
            raise ProviderError(f"{url} answered {error.code}: {detail}") from error
        except (OSError, ValueError) as error:
            raise ProviderError(f"{url}: {error}") from error
        if not isinstance(body, dict):
            raise ProviderError(f"{url}: not a JSON object")
        return body

    def metadata(self) -> Metadata:
        """The provider's discovery document (fetched at most once an hour)."""
        with self._lock:
            if self._metadata and time.monotonic() - self._metadata[0] < METADATA_TTL_S:
                return self._metadata[1]
        issuer = self.settings.issuer.rstrip("/")
        found = self._get_json(f"{issuer}/.well-known/openid-configuration")
        if found.get("issuer") != self.settings.issuer:
            raise ProviderError(
                f"discovery: issuer {found.get('issuer')!r} is not the configured "
                f"{self.settings.issuer!r}"
            )
        try:
            offered = found.get("id_token_signing_alg_values_supported") or ["RS256"]
            metadata = Metadata(
                issuer=str(found["issuer"]),
                authorization_endpoint=str(found["authorization_endpoint"]),
                token_endpoint=str(found["token_endpoint"]),
                jwks_uri=str(found["jwks_uri"]),
                userinfo_endpoint=found.get("userinfo_endpoint"),
                end_session_endpoint=found.get("end_session_endpoint"),
                algorithms=tuple(a for a in ALGORITHMS if a in offered),
            )
        except KeyError as missing:
            raise ProviderError(f"discovery: no {missing} in the document") from missing
        with self._lock:
            self._metadata = (time.monotonic(), metadata)
        return metadata

    def _key_set(self, refresh: bool = False) -> KeySet:
        with self._lock:
            cached = self._keys
        if cached and not refresh and time.monotonic() - cached[0] < METADATA_TTL_S:
            return cached[1]
        try:
            keys = KeySet.import_key_set(self._get_json(self.metadata().jwks_uri))  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError) as error:
            raise ProviderError(f"jwks: unusable key set: {error}") from error
        with self._lock:
            self._keys = (time.monotonic(), keys)
        return keys

    # --- the flow ----------------------------------------------------------------------

    def start(self, redirect_uri: str, next_url: str, lang: str) -> tuple[str, Flow]:
        """The provider's authorization URL to send the browser to, and the flow to keep."""
        flow = Flow(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(48),
            next=next_url,
            lang=lang,
            started=time.time(),
        )
        challenge = _b64(hashlib.sha256(flow.verifier.encode("ascii")).digest())
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.settings.client_id,
                "redirect_uri": redirect_uri,
                "scope": self.settings.scopes,
                "state": flow.state,
                "nonce": flow.nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        endpoint = self.metadata().authorization_endpoint
        separator = "&" if "?" in endpoint else "?"
        return f"{endpoint}{separator}{query}", flow

    def _mac(self, purpose: str, body: str) -> bytes:
        message = f"{purpose}\0{body}".encode("ascii")
        return hmac.new(self._seal_key, message, hashlib.sha256).digest()

    def _seal(self, purpose: str, payload: dict[str, Any]) -> str:
        """``payload`` as text signed with the client's sealing key for one ``purpose``
        (nobody else can make one, and one made for a purpose is refused for another;
        it is readable, so it holds nothing secret)."""
        body = _b64(json.dumps(payload).encode("utf-8"))
        return f"{body}.{_b64(self._mac(purpose, body))}"

    def _unseal(self, purpose: str, sealed: str) -> dict[str, Any] | None:
        """The payload of a text sealed for ``purpose``, or None when forged or broken."""
        body, _, mac = sealed.partition(".")
        try:
            expected = self._mac(purpose, body)
            if not hmac.compare_digest(_unb64(mac), expected):
                return None
            payload = json.loads(_unb64(body))
        except (ValueError, TypeError):
            return None
        return payload if isinstance(payload, dict) else None

    def seal(self, flow: Flow) -> str:
        """The flow as a cookie value, signed so that nobody else can make one."""
        return self._seal("flow", asdict(flow))

    def unseal(self, sealed: str, now: float | None = None) -> Flow:
        """The flow of a cookie value, or ``InvalidInput`` when forged, broken or too old."""
        payload = self._unseal("flow", sealed)
        try:
            flow = Flow(**payload) if payload is not None else None
        except TypeError:
            flow = None
        if flow is None:
            raise InvalidInput("state: no sign-in under way in this browser", field="state")
        if (now or time.time()) - flow.started > FLOW_MAX_AGE.total_seconds():
            raise InvalidInput("state: the sign-in took too long, start again", field="state")
        return flow

    # --- the sign-out (RP-Initiated Logout 1.0) ------------------------------------------

    def seal_id_token(self, id_token: str, session_id: str) -> str:
        """The ID token of the session ``session_id``, as a cookie value bound to it."""
        return self._seal("id_token", {"id_token": id_token, "session": session_hash(session_id)})

    def unseal_id_token(self, sealed: str, session_id: str) -> str | None:
        """The ID token kept for the session ``session_id``, or None (no such cookie, a
        forged one, or one of another session: a password session has none)."""
        payload = self._unseal("id_token", sealed) if sealed and session_id else None
        if payload is None or not hmac.compare_digest(
            str(payload.get("session", "")), session_hash(session_id)
        ):
            return None
        id_token = payload.get("id_token")
        return id_token if isinstance(id_token, str) else None

    def end_session_url(
        self, id_token: str, post_logout_redirect_uri: str, lang: str
    ) -> str | None:
        """Where to send the browser to end the person's session at the provider, or None
        when its discovery document has no ``end_session_endpoint``. ``state`` is sealed
        and carries ``lang``: the sign-in page it comes back to speaks it."""
        endpoint = self.metadata().end_session_endpoint
        if not endpoint:
            return None
        query = urlencode(
            {
                "id_token_hint": id_token,
                "client_id": self.settings.client_id,
                "post_logout_redirect_uri": post_logout_redirect_uri,
                "state": self._seal("logout", {"lang": lang, "started": time.time()}),
                "ui_locales": lang,
            }
        )
        separator = "&" if "?" in endpoint else "?"
        return f"{endpoint}{separator}{query}"

    def logout_language(self, state: str, now: float | None = None) -> str | None:
        """The language of a sign-out whose ``state`` the provider sent back (None when
        forged or older than the sign-in's time limit)."""
        payload = self._unseal("logout", state) if state else None
        if payload is None or not isinstance(payload.get("started"), int | float):
            return None
        if (now or time.time()) - payload["started"] > FLOW_MAX_AGE.total_seconds():
            return None
        lang = payload.get("lang")
        return lang if isinstance(lang, str) else None

    def finish(
        self, flow: Flow, state: str, code: str, redirect_uri: str, now: float | None = None
    ) -> Identity:
        """Check the callback's ``state``, exchange its code (with the PKCE verifier) and
        return the verified ID token and its claims (completed from the userinfo endpoint
        when the account claim is not in the token)."""
        if not hmac.compare_digest(flow.state.encode(), state.encode()):
            raise InvalidInput("state: does not match the sign-in under way", field="state")
        metadata = self.metadata()
        secret = self.settings.client_secret.get_secret_value()
        basic = base64.b64encode(
            f"{_form(self.settings.client_id)}:{_form(secret)}".encode()
        ).decode("ascii")
        tokens = self._get_json(
            metadata.token_endpoint,
            data=urlencode(
                {
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "code_verifier": flow.verifier,
                }
            ).encode("ascii"),
            headers={
                "Authorization": f"Basic {basic}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise ProviderError("token endpoint: no id_token in the answer")
        claims = self.verify_id_token(id_token, flow.nonce, now)
        claim = self.settings.user_claim
        access = tokens.get("access_token")
        if claim not in claims and metadata.userinfo_endpoint and isinstance(access, str):
            info = self._get_json(
                metadata.userinfo_endpoint, headers={"Authorization": f"Bearer {access}"}
            )
            if info.get("sub") != claims["sub"]:
                raise Unauthorized("userinfo: sub is not the ID token's")
            claims = {**info, **claims}
        return Identity(claims, id_token)

    def verify_id_token(
        self, id_token: str, nonce: str, now: float | None = None
    ) -> dict[str, Any]:
        """The claims of an ID token whose signature (provider's JWKS), issuer, audience,
        expiry, issue time and nonce are right; ``Unauthorized`` naming the claim else."""
        metadata = self.metadata()
        algorithms = list(metadata.algorithms or ALGORITHMS)
        keys = self._key_set()
        if _key_id(id_token) not in {key.kid for key in keys.keys}:
            keys = self._key_set(refresh=True)  # a new key (rollover): fetch the keys again
        try:
            token = jwt.decode(id_token, keys, algorithms=algorithms)
        except (JoseError, ValueError) as error:
            raise Unauthorized(f"id_token: signature not verified ({error})") from error
        claims: dict[str, Any] = token.claims
        now = time.time() if now is None else now
        leeway = self.settings.leeway_s
        client = self.settings.client_id
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        checks = (
            ("iss", claims.get("iss") == metadata.issuer, "not the configured issuer"),
            ("aud", isinstance(audiences, list) and client in audiences, "not for this client"),
            (
                "azp",
                claims.get("azp", client) == client,
                "the token was issued to another client",
            ),
            ("exp", _number(claims.get("exp")) > now - leeway, "the token has expired"),
            ("iat", _number(claims.get("iat")) <= now + leeway, "issued in the future"),
            ("nonce", claims.get("nonce") == nonce, "does not match the sign-in under way"),
            ("sub", isinstance(claims.get("sub"), str) and claims["sub"], "missing"),
        )
        for name, ok, reason in checks:
            if not ok:
                raise Unauthorized(f"id_token: {name}: {reason}")
        return claims


def _key_id(token: str) -> str | None:
    """The ``kid`` of a compact JWS's header (None when absent or unreadable)."""
    try:
        header = json.loads(_unb64(token.split(".", 1)[0]))
    except ValueError:
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


def _form(value: str) -> str:
    """A client id or secret as the HTTP Basic scheme of RFC 6749 2.3.1 wants it."""
    return quote(value, safe="")


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else float("nan")


def account_name(claims: dict[str, Any], settings: OidcSettings) -> str:
    """The voirie account name the claims designate, or ``Forbidden`` when the provider
    did not give the configured claim (or gave an email it has not verified)."""
    claim = settings.user_claim
    value = claims.get(claim)
    if not isinstance(value, str) or not value.strip():
        raise Forbidden(f"{claim}: the identity provider did not give it", field=claim)
    if claim == "email" and claims.get("email_verified") is not True:
        raise Forbidden("email: the identity provider has not verified it", field="email")
    return value.strip()


def open_session(
    store: Store,
    jurisdiction_id: str,
    name: str,
    settings: StaffSettings,
    *,
    create_role: str | None = None,
    now: datetime | None = None,
) -> SignedIn:
    """A session for the enabled account ``name`` (the provider has checked who it is),
    exactly as a password sign-in opens one. An unknown name is refused (``Forbidden``)
    unless ``create_role`` is given: the account is then created with that role and a
    random password nobody knows (it signs in through the provider only). A disabled
    account is always refused."""
    now = now or datetime.now(UTC)
    with store.transaction(jurisdiction_id) as uow:
        known = uow.staff.user(name) is not None
    if not known and create_role is not None:
        try:
            add_user(store, jurisdiction_id, name, create_role, (), secrets.token_urlsafe(32))
        except InvalidInput as error:
            if error.field != "name":  # created meanwhile by a concurrent sign-in: fine
                raise
    with store.transaction(jurisdiction_id) as uow:
        user: StaffUserRecord | None = uow.staff.user(name)
        if user is None or user.disabled_at is not None:
            raise Forbidden(f"name: no enabled voirie staff account {name!r}", field="name")
        session_id = secrets.token_urlsafe(SESSION_BYTES)
        expires_at = now + timedelta(hours=settings.session_max_hours)
        uow.staff.add_session(session_hash(session_id), user.id, now, expires_at)
    return SignedIn(
        session_id, Principal(user.name, Role(user.role), frozenset(user.teams)), expires_at
    )
