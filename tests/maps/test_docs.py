"""The API documentation pages, ``/docs`` and ``/redoc``: drawn from vendored assets only,
on a machine cut off from the internet."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.request import urlopen

import pytest
from browsing import LiveApp, PageAssets, offline, screenshot

from voirie.maps.static import STATIC_DIR

if TYPE_CHECKING:
    from playwright.sync_api import Browser

DISCOVERY = "/open311/v2/discovery.{fmt}"  # Open311 discovery, JSON or XML
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _get(url: str) -> bytes:
    with urlopen(url) as response:  # the live app on 127.0.0.1
        body: bytes = response.read()
    return body


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_load_only_vendored_assets(live_app: LiveApp, path: str) -> None:
    parser = PageAssets()
    parser.feed(_get(live_app.base + path).decode())

    assert parser.urls
    for url in parser.urls:
        assert url.startswith("/static/"), url
        assert _get(live_app.base + url) == (STATIC_DIR / url.removeprefix("/static/")).read_bytes()
    for folder in ("swagger-ui", "redoc"):
        assert (STATIC_DIR / folder / "LICENSE").is_file()


@pytest.mark.browser
def test_swagger_ui_draws_every_operation_offline(browser: Browser, live_app: LiveApp) -> None:
    openapi = json.loads(_get(f"{live_app.base}/openapi.json"))
    operations = sum(len(METHODS & set(item)) for item in openapi["paths"].values())
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    watch = offline(page)
    page.goto(f"{live_app.base}/docs")

    discovery = page.locator(".opblock", has=page.locator(f'[data-path="{DISCOVERY}"]'))
    discovery.wait_for()
    assert page.locator(".opblock").count() == operations
    assert openapi["info"]["title"] in page.locator(".info .title").inner_text()
    screenshot(page, "docs")
    assert watch.blocked == []
    assert watch.errors == []


@pytest.mark.browser
def test_redoc_draws_the_api_offline(browser: Browser, live_app: LiveApp) -> None:
    title = json.loads(_get(f"{live_app.base}/openapi.json"))["info"]["title"]
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    watch = offline(page)
    page.goto(f"{live_app.base}/redoc")

    page.locator("h1", has_text=title).wait_for()
    assert page.locator('[data-section-id^="tag/"]').count() > 0
    assert watch.blocked == []
    # The only error: Redocly's logo from its CDN, refused by the page's security policy.
    assert all(REDOCLY_LOGO in error for error in watch.errors), watch.errors
