"""OpenID Connect staff sign-in against a real provider (the reference ``oidc-provider``
npm package on 127.0.0.1), on every backend: the whole flow over HTTP with redirects
followed (sign-in at the provider, back to ``/staff/`` signed in, sign-out of voirie and
of the provider, RP-Initiated Logout), and the refusals: forged or replayed callbacks,
unknown, disabled and unverified people; then the ID token checks on real tokens of that
provider (nonce, audience, expiry, signature, issuer); settings, claim mapping and account
creation only when configured."""

from __future__ import annotations

import base64
import html
import json
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2
import pytest
from databases import BACKENDS, store_urls
from fastapi import FastAPI
from fastapi.testclient import TestClient
from oidcprovider import (
    CLIENT_ID,
    CLIENT_SECRET,
    PROVIDER_NAME,
    TESTSERVER_CALLBACK,
    Person,
    bound_socket,
    oidc_environment,
    oidc_provider,
    served_app,
)
from pydantic import SecretStr, ValidationError
from staffworld import PASSWORD

from voirie.api import staff_oidc, staff_session
from voirie.city import City
from voirie.errors import Forbidden, NotFound, Unauthorized
from voirie.maps.staff_login import render_login_page
from voirie.services.auth import Role
from voirie.services.oidc import (
    OidcClient,
    OidcSettings,
    ProviderError,
    account_name,
    open_session,
)
from voirie.services.staff_users import (
    StaffSettings,
    add_user,
    disable_user,
    list_users,
    session_principal,
    sign_in,
)
from voirie.settings import StoreSettings
from voirie.store import open_store

ALICE = Person("alice", "le mot de passe d'Alice", "sub-alice-0001", "alice@ville.example")
BOB = Person("bob", "le mot de passe de Bob", "sub-bob-0002", "bob@ville.example")
CAROL = Person("carol", "le mot de passe de Carol", "sub-carol-0003", "carol@ville.example")
DAVE = Person("dave", "le mot de passe de Dave", "sub-dave-0004", "dave@ville.example", False)


@dataclass(frozen=True)
class Site:
    """The app (its base URL) and the provider (its issuer) it is configured with."""

    base: str
    issuer: str

    @property
    def callback(self) -> str:
        return f"{self.base}/staff/oidc/callback"


@pytest.fixture(scope="module", params=BACKENDS)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, paris: City
) -> Iterator[Site]:
    """voirie with staff accounts for Alice (dispatcher), Carol (disabled) and Dave,
    configured for a provider that knows Alice, Bob (no voirie account), Carol and Dave
    (whose email the provider has not verified)."""
    for url in store_urls(request, request.param, tmp_path_factory.mktemp("oidc")):
        store = open_store(StoreSettings(database_url=url, pool_min_size=1, pool_max_size=2))
        try:
            store.upgrade()
            j = paris.jurisdiction_id
            for person in (ALICE, CAROL, DAVE):
                add_user(store, j, person.email, "dispatcher", (), PASSWORD)
            disable_user(store, j, CAROL.email)
        finally:
            store.close()
        people = [ALICE, BOB, CAROL, DAVE]
        with ExitStack() as stack:
            # Closed however the fixture ends (a provider that cannot run skips).
            sock = stack.enter_context(bound_socket())
            base = f"http://127.0.0.1:{sock.getsockname()[1]}"
            redirects = [f"{base}/staff/oidc/callback", TESTSERVER_CALLBACK]
            issuer = stack.enter_context(oidc_provider(redirects, people, [f"{base}/staff/login"]))
            served = stack.enter_context(served_app(url, sock, oidc_environment(issuer)))
            assert served == base
            yield Site(base, issuer)


def _login_at_provider(
    browser: httpx2.Client, start: str, person: Person, password: str | None = None
) -> httpx2.Response:
    """Follow ``start`` to the provider's sign-in page and submit it (redirects after the
    submission are not followed)."""
    page = browser.get(start, follow_redirects=True)
    assert page.status_code == 200, page.text
    assert 'name="password"' in _text(page)
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert action is not None
    return browser.post(
        urljoin(str(page.url), action.group(1)),
        data={"login": person.login, "password": password or person.password},
        follow_redirects=False,
    )


def _to_callback(browser: httpx2.Client, answer: httpx2.Response, callback: str) -> str:
    """Follow the provider's redirects up to (not into) the callback; its full URL."""
    for _ in range(10):
        assert answer.status_code in {302, 303}, answer.text
        location = urljoin(str(answer.url), answer.headers["location"])
        if location.startswith(callback):
            return location
        answer = browser.get(location, follow_redirects=False)
    raise AssertionError("the provider never redirected to the callback")


def _text(answer: httpx2.Response) -> str:
    """A page's text with its character references resolved (``&#39;`` is ``'``)."""
    return html.unescape(answer.text)


def _session_cookie(browser: httpx2.Client) -> str | None:
    return next((c.value for c in browser.cookies.jar if c.name == "voirie_staff"), None)


def test_sign_in_with_the_provider_then_sign_out(site: Site) -> None:
    with httpx2.Client(timeout=60) as browser:
        login = browser.get(f"{site.base}/staff/login")
        assert f"Se connecter avec {PROVIDER_NAME}" in _text(login)
        assert "Sign in with" in browser.get(f"{site.base}/staff/login?lang=en").text

        # The button of the form reached from a page (``next``) keeps the page to go back to.
        login = browser.get(f"{site.base}/staff/login?next=%2Fstaff%2F%3Fstatus%3Dopen")
        button = re.search(
            r'<a class="voirie-login-provider" id="voirie-oidc" href="([^"]+)"', login.text
        )
        assert button is not None
        start = urljoin(f"{site.base}/staff/login", html.unescape(button.group(1)))
        answer = _login_at_provider(browser, start, ALICE)
        callback = _to_callback(browser, answer, site.callback)
        back = browser.get(callback, follow_redirects=True)
        assert back.status_code == 200, back.text
        assert back.url.path == "/staff/"
        assert back.url.query == b"status=open"
        assert _session_cookie(browser)
        assert ALICE.email in _text(back)  # the queue names who is signed in
        assert "voirie_oidc" not in browser.cookies  # the flow is over

        # A replayed callback (same code, state) opens nothing: the flow cookie is gone.
        with httpx2.Client(timeout=60) as other:
            replay = other.get(callback)
            assert replay.status_code == 400
            assert "a expiré ou n'a pas été commencée" in _text(replay)
            assert _session_cookie(other) is None

        # While the provider's session lasts, its sign-in page is skipped.
        silent = browser.get(f"{site.base}/staff/oidc/login", follow_redirects=False)
        assert _to_callback(browser, silent, site.callback)

        # Sign-out ends voirie's session, then the provider's (RP-Initiated Logout).
        _sign_out_everywhere(browser, site, back.text, "fr")
        again = browser.get(f"{site.base}/staff/")
        assert again.status_code == 303
        assert again.headers["location"].startswith("/staff/login")
        # Signing in again needs the provider's login and password.
        answer = _login_at_provider(browser, f"{site.base}/staff/oidc/login", ALICE)
        assert _to_callback(browser, answer, site.callback)


def _sign_out_everywhere(browser: httpx2.Client, site: Site, page: str, lang: str) -> None:
    """Press "Déconnexion" on a staff page, confirm at the provider, and check the way
    back to voirie's sign-in form in ``lang``."""
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    assert csrf is not None
    out = browser.post(
        f"{site.base}/staff/logout", data={"csrf_token": csrf.group(1), "lang": lang}
    )
    assert out.status_code == 200, out.text  # a page: a form may not redirect off-site
    assert _session_cookie(browser) is None
    assert "voirie_oidc_session" not in browser.cookies
    link = re.search(r'id="voirie-oidc-logout" href="([^"]+)"', out.text)
    assert link is not None
    leave = html.unescape(link.group(1))
    assert f'content="0; url={link.group(1)}"' in out.text  # and it leaves at once
    parts = urlsplit(leave)
    assert f"{parts.scheme}://{parts.netloc}" == site.issuer
    query = parse_qs(parts.query)
    assert query["post_logout_redirect_uri"] == [f"{site.base}/staff/login"]
    assert query["client_id"] == [CLIENT_ID]
    payload = query["id_token_hint"][0].split(".")[1]
    hint = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert (hint["sub"], hint["aud"], hint["iss"]) == (ALICE.sub, CLIENT_ID, site.issuer)
    assert query["state"][0]

    confirm = browser.get(leave)
    assert confirm.status_code == 200, confirm.text
    form = re.search(r'<form id="op.logoutForm" method="post" action="([^"]+)">', confirm.text)
    xsrf = re.search(r'name="xsrf" value="([^"]+)"', confirm.text)
    assert form is not None
    assert xsrf is not None
    done = browser.post(
        urljoin(leave, form.group(1)),
        data={"xsrf": xsrf.group(1), "logout": "yes"},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    back = done.headers["location"]
    assert back.startswith(f"{site.base}/staff/login?state=")
    assert parse_qs(urlsplit(back).query)["state"] == query["state"]
    login = browser.get(back)
    assert login.status_code == 200
    title = {"fr": "Connexion des agents", "en": "Staff sign-in"}[lang]
    assert f"<h1>{title}</h1>" in login.text


def test_sign_out_in_english_comes_back_in_english(site: Site) -> None:
    with httpx2.Client(timeout=60) as browser:
        answer = _login_at_provider(browser, f"{site.base}/staff/oidc/login?lang=en", ALICE)
        back = browser.get(_to_callback(browser, answer, site.callback), follow_redirects=True)
        assert back.url.path == "/staff/"
        _sign_out_everywhere(browser, site, back.text, "en")


def test_a_password_session_signs_out_of_voirie_only(site: Site) -> None:
    with httpx2.Client(timeout=60) as browser:
        # Alice was signed in at the provider; a password session is not the provider's.
        answer = _login_at_provider(browser, f"{site.base}/staff/oidc/login", ALICE)
        oidc_page = browser.get(_to_callback(browser, answer, site.callback), follow_redirects=True)
        kept = browser.cookies["voirie_oidc_session"]
        form = browser.get(f"{site.base}/staff/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        page = browser.post(
            f"{site.base}/staff/login",
            data={"name": ALICE.email, "password": PASSWORD, "csrf_token": token.group(1)},
            follow_redirects=True,
        )
        assert page.url.path == "/staff/"
        assert browser.cookies["voirie_oidc_session"] == kept  # the older session's
        csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
        assert csrf is not None
        assert csrf.group(1) not in oidc_page.text
        out = browser.post(f"{site.base}/staff/logout", data={"csrf_token": csrf.group(1)})
        assert out.status_code == 303
        assert out.headers["location"] == "/staff/login"
        assert _session_cookie(browser) is None
        # The provider's session is still there: its sign-in page is skipped.
        silent = browser.get(f"{site.base}/staff/oidc/login", follow_redirects=False)
        assert _to_callback(browser, silent, site.callback)


def test_a_forged_state_or_a_callback_from_another_browser_is_refused(site: Site) -> None:
    with httpx2.Client(timeout=60) as browser:
        answer = _login_at_provider(browser, f"{site.base}/staff/oidc/login", ALICE)
        callback = _to_callback(browser, answer, site.callback)
        parts = urlsplit(callback)
        query = parse_qs(parts.query)
        forged = f"{site.callback}?code={query['code'][0]}&state=forged-state"
        refused = browser.get(forged)
        assert refused.status_code == 400
        assert "a expiré ou n'a pas été commencée" in _text(refused)
        assert _session_cookie(browser) is None
    # Login CSRF: someone else's callback in a browser that started no sign-in.
    with httpx2.Client(timeout=60) as victim:
        refused = victim.get(callback)
        assert refused.status_code == 400
        assert _session_cookie(victim) is None


@pytest.mark.parametrize(
    ("person", "status", "text"),
    [
        (BOB, 403, "ne correspond à aucun compte voirie actif"),
        (CAROL, 403, "ne correspond à aucun compte voirie actif"),
        (DAVE, 403, "n'a pas transmis d'identifiant voirie utilisable (« email »"),
    ],
)
def test_people_voirie_does_not_know_are_refused(
    site: Site, person: Person, status: int, text: str
) -> None:
    with httpx2.Client(timeout=60) as browser:
        answer = _login_at_provider(browser, f"{site.base}/staff/oidc/login", person)
        back = browser.get(_to_callback(browser, answer, site.callback))
        assert back.status_code == status
        assert text in _text(back)
        assert f"Se connecter avec {PROVIDER_NAME}" in _text(back)  # try again from there
        assert _session_cookie(browser) is None
        if person is BOB:
            assert f"« {BOB.email} »" in _text(back)  # the account to ask an admin for


def test_a_wrong_password_at_the_provider_never_reaches_voirie(site: Site) -> None:
    with httpx2.Client(timeout=60) as browser:
        answer = _login_at_provider(browser, f"{site.base}/staff/oidc/login", ALICE, "faux")
        assert answer.status_code == 401
        assert _session_cookie(browser) is None


def test_a_provider_that_refuses_says_so(site: Site) -> None:
    with httpx2.Client(timeout=60) as browser:
        page = browser.get(f"{site.base}/staff/oidc/login", follow_redirects=True)
        action = re.search(r'<form method="post" action="([^"]+)"', page.text)
        assert action is not None
        cancel = browser.post(urljoin(str(page.url), action.group(1)), data={"cancel": "1"})
        callback = _to_callback(browser, cancel, site.callback)
        assert "error=access_denied" in callback
        back = browser.get(callback)
        assert back.status_code == 401
        assert "n'a pas confirmé votre identité (access_denied)" in _text(back)
        assert _session_cookie(browser) is None


# --- the ID token's checks, on real tokens of the provider ---------------------------


def _settings(site: Site, **changes: str) -> OidcSettings:
    return OidcSettings(
        issuer=changes.pop("issuer", site.issuer),
        client_id=changes.pop("client_id", CLIENT_ID),
        client_secret=CLIENT_SECRET,
        **changes,  # type: ignore[arg-type]
    )


def _real_id_token(site: Site) -> tuple[OidcClient, str, str]:
    """An OpenID Connect client, and an ID token the provider issued to it for Alice with
    its nonce (the flow as voirie runs it, the token exchange done here)."""
    client = OidcClient(_settings(site))
    url, flow = client.start(TESTSERVER_CALLBACK, "/staff/", "fr")
    with httpx2.Client(timeout=60) as browser:
        answer = _login_at_provider(browser, url, ALICE)
        callback = _to_callback(browser, answer, TESTSERVER_CALLBACK)
        query = parse_qs(urlsplit(callback).query)
        assert query["state"] == [flow.state]
        tokens = browser.post(
            client.metadata().token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": TESTSERVER_CALLBACK,
                "code_verifier": flow.verifier,
            },
            auth=(CLIENT_ID, CLIENT_SECRET),
        )
    assert tokens.status_code == 200, tokens.text
    return client, tokens.json()["id_token"], flow.nonce


def test_id_token_checks_on_real_tokens(site: Site) -> None:
    client, token, nonce = _real_id_token(site)
    claims = client.verify_id_token(token, nonce)
    assert claims["sub"] == ALICE.sub
    assert claims["iss"] == site.issuer

    with pytest.raises(Unauthorized, match="nonce"):
        client.verify_id_token(token, "another-nonce")
    with pytest.raises(Unauthorized, match="aud: not for this client"):
        OidcClient(_settings(site, client_id="another-client")).verify_id_token(token, nonce)
    leeway = client.settings.leeway_s
    with pytest.raises(Unauthorized, match="exp: the token has expired"):
        client.verify_id_token(token, nonce, now=claims["exp"] + leeway + 1)
    with pytest.raises(Unauthorized, match="iat: issued in the future"):
        client.verify_id_token(token, nonce, now=claims["iat"] - leeway - 60)
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    with pytest.raises(Unauthorized, match="signature"):
        client.verify_id_token(f"{head}.{payload}.{flipped}", nonce)
    with pytest.raises(Unauthorized, match="signature"):
        client.verify_id_token(f"{head}.{payload}.", nonce)  # unsigned ("alg": "none" style)


def test_the_id_token_kept_for_sign_out_is_bound_to_its_session(site: Site) -> None:
    client = OidcClient(_settings(site))
    sealed = client.seal_id_token("the.id.token", "session-a")
    assert client.unseal_id_token(sealed, "session-a") == "the.id.token"
    assert client.unseal_id_token(sealed, "session-b") is None
    assert client.unseal_id_token(sealed.replace(".", "x.", 1), "session-a") is None
    assert client.unseal_id_token("", "session-a") is None
    other = OidcClient(
        OidcSettings(issuer=site.issuer, client_id=CLIENT_ID, client_secret=SecretStr("z"))
    )
    assert other.unseal_id_token(sealed, "session-a") is None  # sealed with another key
    # A sign-in flow cookie is not a sign-out state (each seal has one purpose).
    _, flow = client.start(TESTSERVER_CALLBACK, "/staff/", "en")
    assert client.logout_language(client.seal(flow)) is None
    url = client.end_session_url("the.id.token", "http://testserver/staff/login", "en")
    assert url is not None
    state = parse_qs(urlsplit(url).query)["state"][0]
    assert client.logout_language(state) == "en"
    later = time.time() + 11 * 60
    assert client.logout_language(state, now=later) is None


def test_a_provider_without_sign_out_is_not_sent_there() -> None:
    with oidc_provider([TESTSERVER_CALLBACK], [ALICE], [], logout=False) as issuer:
        client = OidcClient(
            OidcSettings(issuer=issuer, client_id=CLIENT_ID, client_secret=SecretStr(CLIENT_SECRET))
        )
        assert client.metadata().end_session_endpoint is None
        assert client.end_session_url("the.id.token", "http://testserver/", "fr") is None


def test_discovery_must_name_the_configured_issuer(site: Site) -> None:
    other_name = site.issuer.replace("127.0.0.1", "localhost")
    with pytest.raises(ProviderError, match="is not the configured"):
        OidcClient(_settings(site, issuer=other_name)).metadata()


def test_settings_and_claims(site: Site) -> None:
    with pytest.raises(ValidationError, match="client_secret"):
        OidcSettings(issuer=site.issuer, client_id=CLIENT_ID)
    with pytest.raises(ValidationError, match="https"):
        OidcSettings(issuer="http://idp.example", client_id="x", client_secret="y")  # type: ignore[arg-type]
    assert not OidcSettings(issuer="").enabled
    by_sub = _settings(site, user_claim="sub")
    assert account_name({"sub": ALICE.sub}, by_sub) == ALICE.sub
    email = _settings(site)
    with pytest.raises(Forbidden, match="email: the identity provider has not verified it"):
        account_name({"sub": "x", "email": "x@ville.example"}, email)
    with pytest.raises(Forbidden, match="email: the identity provider did not give it"):
        account_name({"sub": "x"}, email)


def test_without_an_issuer_there_is_no_button_and_no_route() -> None:
    page = render_login_page(
        lang="fr",
        city_name="Paris",
        static_url="/static",
        action="/staff/login",
        next_url="/staff/",
        csrf="x",
        error=False,
        name="",
        language_urls={},
    )
    assert "voirie-oidc" not in page
    app = FastAPI()
    staff_session.install(app, oidc=OidcSettings(issuer=""))
    app.include_router(staff_oidc.router)
    with TestClient(app) as client, pytest.raises(NotFound, match="VOIRIE_OIDC_ISSUER"):
        client.get("/staff/oidc/login")


def test_accounts_are_created_only_when_configured(tmp_path: Path, paris: City) -> None:
    store = open_store(StoreSettings(database_url=f"sqlite:///{tmp_path / 'v.gpkg'}"))
    try:
        store.upgrade()
        j, settings = paris.jurisdiction_id, StaffSettings()
        with pytest.raises(Forbidden, match="no enabled voirie staff account"):
            open_session(store, j, BOB.email, settings)
        assert list_users(store, j) == []
        signed = open_session(store, j, BOB.email, settings, create_role="gis")
        assert (signed.principal.name, signed.principal.role) == (BOB.email, Role.GIS)
        assert session_principal(store, j, signed.session_id, settings) == signed.principal
        again = open_session(store, j, BOB.email, settings, create_role="dispatcher")
        assert again.principal.role is Role.GIS  # an existing account keeps its role
        disable_user(store, j, BOB.email)
        with pytest.raises(Forbidden):
            open_session(store, j, BOB.email, settings, create_role="gis")
        with pytest.raises(Unauthorized):  # its random password is nobody's
            sign_in(store, j, BOB.email, BOB.password, settings)
    finally:
        store.close()
