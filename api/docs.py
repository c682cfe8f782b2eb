"""The API documentation pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), drawn offline.

FastAPI's own pages load their scripts from a CDN and ReDoc's fonts from Google, so they are
blank on a machine cut off from the internet. These routes render the same pages with the
copies vendored under ``/static`` (see :mod:`voirie.maps.static`) and nothing else.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

SWAGGER_UI = "/static/swagger-ui"
REDOC = "/static/redoc"
# ReDoc's menu always shows Redocly's logo from cdn.redoc.ly (and hides it when it fails):
# the page may fetch images, fonts and data from the app only, so nothing leaves it.
_REDOC_HEADERS = {
    "Content-Security-Policy": "img-src 'self' data:; font-src 'self' data:; connect-src 'self'"
}


def install(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` from the vendored assets; ``app`` must be built with
    ``docs_url=None, redoc_url=None`` (FastAPI's CDN pages) and serve the static folder."""
    assert app.openapi_url, "the documentation pages draw the OpenAPI document"
    openapi_url = app.openapi_url

    # The endpoints read the app from the request, never from this closure: FastAPI keeps
    # endpoint functions in a module-level cache, which would keep every app alive.
    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        # Behind a path prefix (``root_path``) every URL of the page carries it, as in FastAPI.
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{request.app.title} — Swagger UI",
            swagger_js_url=f"{root}{SWAGGER_UI}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{SWAGGER_UI}/swagger-ui.css",
            swagger_favicon_url=f"{root}{SWAGGER_UI}/favicon-32x32.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{request.app.title} — ReDoc",
            redoc_js_url=f"{root}{REDOC}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{SWAGGER_UI}/favicon-32x32.png",
            with_google_fonts=False,
        )
        page.headers.update(_REDOC_HEADERS)
        return page
