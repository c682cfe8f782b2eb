"""OpenID Connect sign-in in Chromium, cut off from everything but 127.0.0.1: the button on
the sign-in page, the real provider's (``oidc-provider``) sign-in page, and back on the
queue signed in; then "Déconnexion" ends the provider's session too (its sign-in page is
asked again); no console error, no serious accessibility violation on voirie's pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING

import pytest
from browsing import Watch, axe_violations, offline, screenshot
from oidcprovider import (
    PROVIDER_NAME,
    Person,
    bound_socket,
    oidc_environment,
    oidc_provider,
    served_app,
)

from voirie.city import City
from voirie.services.staff_users import add_user
from voirie.settings import StoreSettings
from voirie.store import open_store

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CAMILLE = Person("camille", "le mot de passe de Camille", "sub-camille", "camille@ville.example")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, paris: City) -> Iterator[str]:
    """voirie (embedded store, Camille a dispatcher) configured for the test provider."""
    url = f"sqlite:///{tmp_path_factory.mktemp('oidc-page') / 'voirie.gpkg'}"
    store = open_store(StoreSettings(database_url=url, pool_min_size=1, pool_max_size=2))
    try:
        store.upgrade()
        add_user(store, paris.jurisdiction_id, CAMILLE.email, "dispatcher", (), "x" * 16)
    finally:
        store.close()
    with ExitStack() as stack:
        # Closed however the fixture ends (a provider that cannot run skips).
        sock = stack.enter_context(bound_socket())
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        callback, login = f"{base}/staff/oidc/callback", f"{base}/staff/login"
        issuer = stack.enter_context(oidc_provider([callback], [CAMILLE], [login]))
        yield stack.enter_context(served_app(url, sock, oidc_environment(issuer)))


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, Watch]]:
    """A fresh browser context (no cookies) with the network cut off."""
    context = browser.new_context(locale="fr-FR")
    tab = context.new_page()
    watch = offline(tab)
    yield tab, watch
    context.close()


@pytest.mark.browser
def test_sign_in_through_the_provider_page(page: tuple[Page, Watch], site: str) -> None:
    tab, watch = page
    tab.goto(f"{site}/staff/")
    tab.wait_for_url(re.compile(r"/staff/login\?next="))
    assert axe_violations(tab) == []
    screenshot(tab, "staff-login-oidc")
    tab.get_by_role("link", name=f"Se connecter avec {PROVIDER_NAME}").click()

    tab.wait_for_url(re.compile(r"/interaction/"))  # the provider's own page
    assert not tab.url.startswith(site)
    tab.get_by_label("Login").fill(CAMILLE.login)
    tab.get_by_label("Password").fill(CAMILLE.password)
    tab.get_by_role("button", name="Sign in").click()

    tab.wait_for_url(f"{site}/staff/")
    assert CAMILLE.email in tab.locator(".voirie-staff-user").inner_text()
    assert any(c["name"] == "voirie_staff" for c in tab.context.cookies())

    tab.get_by_role("button", name="Déconnexion").click()
    tab.wait_for_url(re.compile(r"/session/end"))  # the provider asks before ending its own
    assert not tab.url.startswith(site)
    tab.get_by_role("button", name="Sign out", exact=True).click()
    tab.wait_for_url(re.compile(re.escape(f"{site}/staff/login?state=")))
    assert tab.get_by_role("heading", name="Connexion des agents").is_visible()
    assert not any(c["name"] == "voirie_staff" for c in tab.context.cookies())
    tab.get_by_role("link", name=f"Se connecter avec {PROVIDER_NAME}").click()
    tab.wait_for_url(re.compile(r"/interaction/"))  # the provider's session is over
    assert tab.get_by_label("Password").is_visible()
    assert watch.errors == []
    assert watch.blocked == []
