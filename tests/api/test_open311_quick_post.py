"""The Open311 POST answered at the edge, outside the framework's routing
(``voirie.api.open311.quick_submit``, issue 20), on both backends: for every kind of
request, the answer the route gives, status, headers in order and bytes (``X-Request-ID``
aside); what the edge does not answer is left to the route.

The route's own answer is had with the edge's choice turned off (``quick_format`` finding
nothing to answer, as for a multipart body): the request then goes through the router,
the exception handlers and FastAPI's dependency solving, as before issue 20. A stored
report cannot be posted twice with two answers alike (its id is new), so each path's
first answer is compared with the other path's answer to the same retry, which is the
first answer again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from asgi_scope import http_scope
from databases import BACKENDS, allow_connections, store_urls
from fastapi import Request
from fastapi.testclient import TestClient
from httpx2 import Response
from open311_support import API, CARTONS, ENCOMBRANTS, VALMY, Served, serve

from voirie.api.app import create_app
from voirie.api.open311 import quick_submit
from voirie.api.ratelimit import RateLimits
from voirie.api.validation import check_request, guard_request
from voirie.city import City
from voirie.gis.enrich import CityGIS
from voirie.services.auth import issue_token
from voirie.settings import CitySettings, RateLimitSettings, StoreSettings

FORM = "application/x-www-form-urlencoded"
PLACE = {"lat": str(VALMY["lat"]), "long": str(VALMY["long"])}


@pytest.fixture(scope="module", params=BACKENDS)
def app(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    paris: City,
    paris_gis: CityGIS,
) -> Iterator[Served]:
    """The app on an empty store of each backend, one for the module's tests."""
    folder = tmp_path_factory.mktemp("quick-post")
    for url in store_urls(request, request.param, folder):
        served = serve(url, paris, paris_gis, folder / "media", load=False)
        yield served
        served.store.close()


@contextmanager
def _routed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every POST left to the route while open."""
    with monkeypatch.context() as patched:
        patched.setattr(quick_submit, "quick_format", lambda scope: None)
        yield


def _post(
    client: TestClient, body: dict[str, str] | bytes, path: str = "/requests.json", **headers: str
) -> Response:
    """POST ``body`` (a url-encoded form, or bytes as they are) to an Open311 path."""
    content = urlencode(body).encode() if isinstance(body, dict) else body
    return client.post(API + path, content=content, headers={"content-type": FORM, **headers})


def _kept(answer: Response, *left: str) -> list[tuple[str, str]]:
    names = {"x-request-id", *left}
    return [(k, v) for k, v in answer.headers.multi_items() if k not in names]


def _same(quick: Response, routed: Response) -> None:
    assert quick.status_code == routed.status_code, quick.text
    assert quick.content == routed.content
    assert _kept(quick) == _kept(routed)


def _scope(path: str, app: Any = None, **headers: str) -> dict[str, Any]:
    path, _, query = path.partition("?")
    return http_scope("POST", API + path, query, app, **headers)


def _edge_answer(app: Served, path: str, body: bytes, **headers: str) -> Response | None:
    """What the edge's own code answers to a POST, called alone; None when it leaves the
    POST to the route."""
    scope = _scope(path, app.client.app, **headers)
    fmt = quick_submit.quick_format(scope)
    if fmt is None:
        return None

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    answer = asyncio.run(quick_submit.quick_submit(scope, receive, fmt))
    return Response(answer.status_code, headers=answer.headers.raw, content=answer.body)


def _form(app: Served, **fields: str) -> dict[str, str]:
    return {"api_key": app.client_key, "service_code": CARTONS, **PLACE, **fields}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/requests.json", "form"),
        ("/requests.xml", "form"),
        ("/requests.json", "json"),
        ("/requests.xml", "json"),
    ],
)
def test_a_report_is_stored_at_the_edge_as_the_route_stores_it(
    app: Served, monkeypatch: pytest.MonkeyPatch, path: str, body: str
) -> None:
    """Each path's first answer (201) is the other path's answer to its retry (200)."""
    form = _form(app, description=f"quick {path} {body}")
    kind = FORM if body == "form" else "application/json"
    content = urlencode(form).encode() if body == "form" else json.dumps(form).encode()
    assert quick_submit.quick_format(_scope(path, **{"content-type": kind})) == path[-4:].lstrip(
        "."
    )
    answers: list[tuple[Response, Response]] = []
    for first_routed in (False, True):
        key = f"{path}-{body}-{first_routed}"
        headers = {"content-type": kind, "idempotency-key": key}
        if first_routed:
            with _routed(monkeypatch):
                first = _post(app.client, content, path, **headers)
            again = _post(app.client, content, path, **headers)
        else:
            first = _post(app.client, content, path, **headers)
            with _routed(monkeypatch):
                again = _post(app.client, content, path, **headers)
        assert first.status_code == 201, first.text
        assert again.status_code == 200, again.text
        assert again.content == first.content
        assert _kept(again) == _kept(first)
        answers.append((first, again))
    (quick, _), (routed, _) = answers
    # Two reports, two ids: the same answer otherwise, header for header.
    assert _kept(quick, "content-length") == _kept(routed, "content-length")
    assert quick.content != routed.content


ROUTES_OWN = {"content-type": "text/plain"}, {"idempotency-key": "k" * 256}


@pytest.mark.parametrize(
    ("fields", "headers", "path"),
    [
        ({"api_key": ""}, {}, "/requests.json"),  # missing key: 403
        ({"api_key": "not-a-key"}, {}, "/requests.json"),  # unknown key: 403
        ({"api_key": "not-a-key", "lat": "x"}, {}, "/requests.json"),  # key first: 403
        ({"api_key": "dispatcher"}, {}, "/requests.json"),  # not a client key: 403
        ({"service_code": ""}, {}, "/requests.json"),
        ({"service_code": "nothing-of-the-kind"}, {}, "/requests.xml"),
        ({"lat": "91"}, {}, "/requests.json"),
        ({"lat": "north"}, {}, "/requests.json"),
        ({"long": ""}, {}, "/requests.json"),  # lat without long
        ({"lat": "", "long": ""}, {}, "/requests.xml"),  # no place at all
        ({"lat": "", "long": "", "address_string": "Rue de Nulle Part"}, {}, "/requests.json"),
        ({"email": "not-an-address"}, {}, "/requests.json"),
        ({"media_url": "ftp://example.org/a.jpg"}, {}, "/requests.json"),
        ({"description": "x" * 4001}, {}, "/requests.json"),
        ({"description": "bell \x07"}, {}, "/requests.xml"),  # not storable text
        ({"service_code": ENCOMBRANTS}, {}, "/requests.json"),  # its required attributes
        ({"jurisdiction_id": "elsewhere"}, {}, "/requests.json"),  # 404
        ({"attribute[\x01]": "x"}, {}, "/requests.json"),
        ({}, {}, "/requests.json?jurisdiction_id=elsewhere"),  # the query's: 404
        ({}, {}, "/requests.json?x=%01"),  # the app-wide check of parameters: 400 naming x
        # Left to the route: its refusals are its own.
        ({}, ROUTES_OWN[0], "/requests.json"),  # not a form: the route's 400
        ({}, ROUTES_OWN[1], "/requests.json"),  # not a key: FastAPI's 400
        ({}, {}, "/requests.html"),  # not a format: FastAPI's 400
    ],
)
def test_a_refusal_is_answered_at_the_edge_as_the_route_answers_it(
    app: Served,
    monkeypatch: pytest.MonkeyPatch,
    fields: dict[str, str],
    headers: dict[str, str],
    path: str,
) -> None:
    if fields.get("api_key") == "dispatcher":
        fields = {**fields, "api_key": app.dispatcher_key}
    body = urlencode(_form(app, **fields)).encode()
    quick = _post(app.client, body, path, **headers)
    with _routed(monkeypatch):
        routed = _post(app.client, body, path, **headers)
    assert 400 <= quick.status_code < 500, quick.text
    _same(quick, routed)
    alone = _edge_answer(app, path, body, **{"content-type": FORM, **headers})
    if headers in ROUTES_OWN or path.endswith(".html"):
        assert alone is None
    else:  # the edge's own answer, not the route's
        assert alone is not None
        assert (alone.status_code, alone.content) == (quick.status_code, quick.content)


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),  # not an object
        (b"\xff\xfe", "application/json"),
        (b'{"api_key": 1, "service_code": null}', "application/json"),
        (b"api_key=%FF%FE", FORM),
        (b"", FORM),
    ],
)
def test_a_body_the_form_refuses_is_refused_alike(
    app: Served, monkeypatch: pytest.MonkeyPatch, content: bytes, kind: str
) -> None:
    quick = _post(app.client, content, **{"content-type": kind})
    with _routed(monkeypatch):
        routed = _post(app.client, content, **{"content-type": kind})
    assert quick.status_code in (400, 403), quick.text
    _same(quick, routed)
    alone = _edge_answer(app, "/requests.json", content, **{"content-type": kind})
    assert alone is not None
    assert (alone.status_code, alone.content) == (quick.status_code, quick.content)


def test_a_key_reused_for_another_report_is_refused_alike(
    app: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = {"idempotency-key": "reused-for-another"}
    assert _post(app.client, _form(app, description="first"), **key).status_code == 201
    quick = _post(app.client, _form(app, description="second"), **key)
    with _routed(monkeypatch):
        routed = _post(app.client, _form(app, description="second"), **key)
    assert quick.status_code == 422, quick.text
    _same(quick, routed)


def test_a_body_too_large_is_refused_alike_declared_or_streamed(
    app: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Declared: 413 before the body is read; streamed (chunked): 413 once it passes the
    limit, in the middle of the edge's reading as of the route's."""
    big = urlencode(_form(app, description="x" * (1024 * 1024))).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    for content in (big, chunks):
        answers = []
        for routed in (False, True):
            with monkeypatch.context() as patched:
                if routed:
                    patched.setattr(quick_submit, "quick_format", lambda scope: None)
                body = content() if callable(content) else content
                answers.append(
                    app.client.post(
                        f"{API}/requests.json", content=body, headers={"content-type": FORM}
                    )
                )
        quick, routed_answer = answers
        assert quick.status_code == 413, quick.text
        _same(quick, routed_answer)


def test_a_spent_key_budget_is_refused_alike(app: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key's budget (charged once the form is read) spent: 429 with ``Retry-After``."""
    answers = []
    for routed in (False, True):
        app.client.app.state.rate_limits = RateLimits(RateLimitSettings(rate_key="1/hour"))
        try:
            with monkeypatch.context() as patched:
                if routed:
                    patched.setattr(quick_submit, "quick_format", lambda scope: None)
                spent = _post(app.client, _form(app, description=f"budget {routed}"))
                assert spent.status_code == 201, spent.text
                answers.append(_post(app.client, _form(app, description="over budget")))
        finally:
            app.client.app.state.rate_limits = None
    for answer in answers:  # the wait, in whole seconds, goes down between the two
        assert answer.status_code == 429, answer.text
        wait = answer.headers["retry-after"]
        assert f"retry in {wait} s" in answer.text
    quick, routed_answer = (
        (
            a.content.replace(a.headers["retry-after"].encode(), b"N"),
            _kept(a, "retry-after", "content-length"),
        )
        for a in answers
    )
    assert quick == routed_answer


@pytest.mark.postgis
def test_a_database_down_is_answered_503_alike(
    postgis_server: str,
    postgis_url: str,
    paris: City,
    paris_gis: CityGIS,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = create_app(
        StoreSettings(database_url=postgis_url, pool_min_size=1, pool_max_size=2, pool_timeout_s=1),
        CitySettings(city=str(paris.folder)),
        gis=paris_gis,
    )
    database = urlsplit(postgis_url).path.lstrip("/")
    with TestClient(app) as client:
        store = client.app.state.pipeline.store
        key = issue_token(store, paris.jurisdiction_id, "appli", "client")
        body = {"api_key": key, "service_code": CARTONS, **PLACE}
        allow_connections(postgis_server, database, allowed=False)
        try:
            # The first request meets the pool's connection ended; the next ones, no
            # connection within the pool's wait: the two paths meet the same state.
            assert _post(client, body).status_code == 503
            quick = _post(client, body)
            with _routed(monkeypatch):
                routed = _post(client, body)
        finally:
            allow_connections(postgis_server, database, allowed=True)
    assert quick.status_code == 503, quick.text
    assert quick.headers["retry-after"]
    _same(quick, routed)


def test_only_posts_of_requests_in_json_or_a_form_are_the_edges() -> None:
    json_post = {"content-type": "application/json; charset=utf-8"}
    assert quick_submit.quick_format(_scope("/requests.json", **json_post)) == "json"
    assert quick_submit.quick_format(_scope("/requests.xml", **{"content-type": FORM})) == "xml"
    multipart = {"content-type": "multipart/form-data; boundary=x"}
    assert quick_submit.quick_format(_scope("/requests.json", **multipart)) is None
    assert quick_submit.quick_format(_scope("/requests.csv", **json_post)) is None
    assert quick_submit.quick_format(_scope("/media.json", **json_post)) is None
    assert quick_submit.quick_format({**_scope("/requests.json"), "method": "GET"}) is None


def test_the_per_city_path_is_the_edges() -> None:
    """Served under a city's prefix (``voirie.api.multicity``), the path is read below it."""
    scope = _scope("/requests.json", **{"content-type": FORM})
    prefixed = {**scope, "root_path": "/paris", "path": "/paris" + scope["path"]}
    assert quick_submit.quick_format(prefixed) == "json"


def test_the_edge_answers_without_the_routes_dependencies(
    app: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The point of the edge: no dependency solving (seen through FastAPI's overrides of
    the app-wide check of parameters, which every routed request solves)."""
    solved: list[str] = []

    async def guard(request: Request) -> None:
        solved.append(request.url.path)
        check_request(request)

    overrides = app.client.app.dependency_overrides
    overrides[guard_request] = guard
    try:
        quick = _post(app.client, _form(app, description="no dependencies"))
        assert (quick.status_code, solved) == (201, []), quick.text
        with _routed(monkeypatch):
            routed = _post(app.client, _form(app, description="dependencies"))
        assert (routed.status_code, solved) == (201, [f"{API}/requests.json"]), routed.text
    finally:
        del overrides[guard_request]
