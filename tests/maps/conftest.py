"""Fixtures of the page tests, defined in ``browsing`` and registered here."""

from browsing import browser, live_app, serve_page

__all__ = ["browser", "live_app", "serve_page"]
