"""The server side of coatcheck.js on every edge, over real HTTP: each edge serves the
script (type, ETag, 304), sends ``X-Session-Expires`` for a stored session only, and
answers the keep-alive (POST extends the idle deadline inside the touch interval, GET
only reports, nobody signed in gains nothing).

The same small app is written once per framework (Starlette, FastAPI, Flask, Django, and
a bare WSGI app under ``coatcheck.wsgi``): ``/login`` signs ``alice`` in, ``/read`` reads
the session, ``/logout`` signs out, ``/csrf`` renders a token (for the test browser's
unsafe requests). Time is a FakeClock, so every expected deadline is worked out below.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coatcheck import SessionConfig, SessionManager
from coatcheck.fastapi import CurrentSession  # at module level: FastAPI resolves it here
from coatcheck.stores import SQLiteStore
from tests.support import django_settings
from tests.support.browser import Browser
from tests.support.clock import FakeClock
from tests.support.server import serve
from tests.support.wsgi_server import serve_wsgi

SCRIPT = Path(__file__).resolve().parent.parent / "src" / "coatcheck" / "static" / "coatcheck.js"
START = 1_800_000_000.25
"""The clock at login: idle deadline START + 1800 = 1_800_001_800.25, sent rounded up."""


# -- the app, once per edge ----------------------------------------------------------------
def starlette_app(manager: SessionManager) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    from coatcheck.integrations.asgi import SessionMiddleware
    from coatcheck.integrations.starlette import browser_routes

    async def login(request: Request) -> Response:
        request.session.login("alice")  # type: ignore[attr-defined]
        return PlainTextResponse("in")

    async def read(request: Request) -> Response:
        return PlainTextResponse(str(request.session.get("n")))

    async def logout(request: Request) -> Response:
        request.session.logout()  # type: ignore[attr-defined]
        return PlainTextResponse("out")

    async def csrf(request: Request) -> Response:
        return PlainTextResponse(request.session.csrf_token())  # type: ignore[attr-defined]

    routes = [
        Route("/login", login),
        Route("/read", read),
        Route("/logout", logout, methods=["POST"]),
        Route("/csrf", csrf),
        *browser_routes(),
    ]
    return SessionMiddleware(Starlette(routes=routes), manager=manager)


def fastapi_app(manager: SessionManager) -> Any:
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    from coatcheck.fastapi import browser_router, install

    app = FastAPI()
    install(app, manager)
    app.include_router(browser_router())

    @app.get("/login", response_class=PlainTextResponse)
    async def login(session: CurrentSession) -> str:
        session.login("alice")
        return "in"

    @app.get("/read", response_class=PlainTextResponse)
    async def read(session: CurrentSession) -> str:
        return str(session.get("n"))

    @app.post("/logout", response_class=PlainTextResponse)
    async def logout(session: CurrentSession) -> str:
        session.logout()
        return "out"

    @app.get("/csrf", response_class=PlainTextResponse)
    async def csrf(session: CurrentSession) -> str:
        return session.csrf_token()

    return app


def flask_app(manager: SessionManager) -> Any:
    import flask

    from coatcheck.flask import browser_blueprint, current_session, init_app

    app = flask.Flask(__name__)
    init_app(app, manager)
    app.register_blueprint(browser_blueprint())
    app.add_url_rule("/login", "login", lambda: (current_session().login("alice"), "in")[1])
    app.add_url_rule("/read", "read", lambda: str(flask.session.get("n")))
    app.add_url_rule(
        "/logout", "logout", lambda: (current_session().logout(), "out")[1], methods=["POST"]
    )
    app.add_url_rule(
        "/csrf",
        "csrf",
        lambda: flask.Response(current_session().csrf_token(), mimetype="text/plain"),
    )
    return app


def wsgi_app(manager: SessionManager) -> Any:
    """No framework: the app asks ``coatcheck.http.browser`` itself."""
    from coatcheck.http import browser
    from coatcheck.integrations.wsgi import SessionMiddleware

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        session = environ["coatcheck.session"]
        path = environ["PATH_INFO"]
        if path == browser.KEEP_ALIVE_PATH:
            answer = browser.keep_alive(session, environ["REQUEST_METHOD"])
            start_response(answer.wsgi_status, list(answer.headers))
            return [answer.body]
        text = {"/login": "in", "/logout": "out"}.get(path, "")
        if path == "/login":
            session.login("alice")
        elif path == "/logout":
            session.logout()
        elif path == "/csrf":
            text = session.csrf_token()
        else:
            text = str(session.get("n"))
        start_response("200 OK", [("content-type", "text/plain")])
        return [text.encode()]

    return SessionMiddleware(app, manager)


# Django: this module is the URLconf while the Django edge runs.
def _django_views() -> list[Any]:
    from django.http import HttpRequest, HttpResponse
    from django.urls import path

    from coatcheck.django import AUTH_USER_KEY, browser_urls

    def login(request: HttpRequest) -> HttpResponse:
        request.session[AUTH_USER_KEY] = "alice"  # what django.contrib.auth.login() writes
        return HttpResponse("in")

    def read(request: HttpRequest) -> HttpResponse:
        return HttpResponse(str(request.session.get("n")))

    def logout(request: HttpRequest) -> HttpResponse:
        request.session.flush()  # what django.contrib.auth.logout() does
        return HttpResponse("out")

    def csrf(request: HttpRequest) -> HttpResponse:
        return HttpResponse("no coatcheck CSRF on Django: its own middleware decides")

    def untouched(request: HttpRequest) -> HttpResponse:
        return HttpResponse("this view never opens request.session")

    return [
        path("login", login),
        path("read", read),
        path("logout", logout),
        path("csrf", csrf),
        path("untouched", untouched),
        *browser_urls(),
    ]


urlpatterns: list[Any] = []


@contextlib.contextmanager
def serve_django(manager: SessionManager) -> Iterator[str]:
    from django.core.wsgi import get_wsgi_application
    from django.test import override_settings

    from coatcheck.django import configure

    django_settings.setup()
    urlpatterns[:] = _django_views()
    settings = override_settings(
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[
            "coatcheck.django.StoreUnavailableMiddleware",
            "coatcheck.django.SessionMiddleware",
        ],
        SESSION_COOKIE_NAME="__Host-session",
        SESSION_COOKIE_SECURE=True,
    )
    settings.enable()
    configure(manager)
    try:
        with serve_wsgi(get_wsgi_application()) as url:
            yield url
    finally:
        configure(None)
        settings.disable()


EDGES: dict[str, Callable[[SessionManager], contextlib.AbstractContextManager[str]]] = {
    "starlette": lambda m: serve(starlette_app(m)),
    "fastapi": lambda m: serve(fastapi_app(m)),
    "flask": lambda m: serve_wsgi(flask_app(m)),
    "wsgi": lambda m: serve_wsgi(wsgi_app(m)),
    "django": serve_django,
}
WITH_ROUTES = ["starlette", "fastapi", "flask", "django"]


@pytest.fixture
def manager(tmp_path: Path, clock: FakeClock) -> Iterator[SessionManager]:
    store = SQLiteStore(tmp_path / "sessions.db")
    clock.now = START
    yield SessionManager(store, SessionConfig(idle_timeout=1800), clock=clock)
    store.close_sync()


def expires(response: Any) -> str | None:
    value: str | None = response.headers.get("x-session-expires")
    return value


# -- the script ------------------------------------------------------------------------------
@pytest.mark.parametrize("edge", WITH_ROUTES)
def test_every_edge_serves_the_script_with_its_type_and_etag(
    edge: str, manager: SessionManager
) -> None:
    body = SCRIPT.read_bytes()
    etag = '"' + base64.urlsafe_b64encode(hashlib.sha256(body).digest()[:18]).decode() + '"'
    with EDGES[edge](manager) as url, Browser(url) as browser:
        response = browser.get("/coatcheck/coatcheck.js")
        assert response.status_code == 200
        assert response.content == body
        assert response.headers["content-type"] == "text/javascript; charset=utf-8"
        assert response.headers["etag"] == etag
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-content-type-options"] == "nosniff"
        for current in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            again = browser.get("/coatcheck/coatcheck.js", headers={"If-None-Match": current})
            assert again.status_code == 304, current
            assert again.content == b""
            assert again.headers["etag"] == etag
        stale = browser.get("/coatcheck/coatcheck.js", headers={"If-None-Match": '"old"'})
        assert stale.status_code == 200 and stale.content == body
        head = browser.request("HEAD", "/coatcheck/coatcheck.js")
        assert head.status_code == 200 and head.content == b""
        # A visitor fetching the script is given no session.
        assert browser.cookies == {}


def test_the_wheel_ships_the_script_and_its_types(tmp_path: Path) -> None:
    from hatchling.builders.wheel import WheelBuilder

    root = Path(__file__).resolve().parent.parent
    (wheel,) = WheelBuilder(str(root)).build(directory=str(tmp_path), versions=["standard"])
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("coatcheck/static/coatcheck.js") == SCRIPT.read_bytes()
        assert "coatcheck/static/coatcheck.d.ts" in archive.namelist()
        assert not [n for n in archive.namelist() if "node_modules" in n]


# -- X-Session-Expires and the keep-alive -----------------------------------------------------
@pytest.mark.parametrize("edge", list(EDGES))
def test_the_deadline_header_and_the_keep_alive(
    edge: str, manager: SessionManager, clock: FakeClock
) -> None:
    with EDGES[edge](manager) as url, Browser(url) as browser:
        # Nobody stored yet: no header, and the keep-alive neither answers 2xx nor starts
        # a session.
        first = browser.get("/read")
        assert expires(first) is None
        refused = browser.get("/coatcheck/keep-alive")
        assert refused.status_code == 401
        assert json.loads(refused.content) == {"error": "login_required"}
        assert browser.cookies == {}

        signed_in = browser.get("/login")
        assert expires(signed_in) == "1800001801"  # ceil(START + 1800)

        clock.advance(10)  # within the touch interval (180 s): a read moves nothing
        assert expires(browser.get("/read")) == "1800001801"
        report = browser.get("/coatcheck/keep-alive")
        assert report.status_code == 204
        assert expires(report) == "1800001801"
        assert report.headers["cache-control"] == "no-store"

        token = dict(browser.cookies)
        extended = browser.post("/coatcheck/keep-alive")
        assert extended.status_code == 204
        assert expires(extended) == "1800001811"  # ceil(START + 10 + 1800)
        assert browser.cookies == token  # the same token: nothing else changed
        assert expires(browser.get("/read")) == "1800001811"  # stored, not just sent

        out = browser.post("/logout")
        assert expires(out) is None
        assert browser.get("/coatcheck/keep-alive").status_code == 401


@pytest.mark.parametrize("edge", ["starlette", "flask"])
def test_an_anonymous_session_that_is_stored_carries_the_header_and_stays_cacheable(
    edge: str, manager: SessionManager
) -> None:
    # /csrf stores an anonymous session (its CSRF secret): its deadline is sent, and no
    # no-store is forced on a page nobody is signed in to.
    with EDGES[edge](manager) as url, Browser(url) as browser:
        page = browser.get("/csrf")
        assert page.headers.get("set-cookie")
        assert expires(page) == "1800001801"
        again = browser.get("/read")
        assert expires(again) == "1800001801"
        assert "cache-control" not in again.headers


def test_django_sends_the_header_only_when_the_request_opened_the_session(
    manager: SessionManager,
) -> None:
    # Django opens the session lazily; learning the deadline would cost a store read.
    with serve_django(manager) as url, Browser(url) as browser:
        assert expires(browser.get("/login")) == "1800001801"
        assert expires(browser.get("/untouched")) is None
        assert expires(browser.get("/read")) == "1800001801"
