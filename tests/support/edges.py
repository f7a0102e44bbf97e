"""The same small app on every coatcheck edge, served over real HTTP, for promises that
must hold on all of them (tests/test_edge_promises.py).

Every edge answers the same routes:

- ``GET /csrf``: the session's CSRF token as plain text (not Django: it keeps its own CSRF);
- ``GET /read``: ``{"user": ..., "data": ...}``, reading the session;
- ``GET /plain``: "ok", never touching the session (Django loads it lazily: it reads it);
- ``POST /set``: the form field ``value`` stored as ``session["value"]``;
- ``POST /login?user=``: a login (Django: the user key ``django.contrib.auth`` writes);
- ``POST /bad``: a value that is not JSON, ``session["when"] = datetime``;
- ``GET /consent``: the consent in force; ``POST /consent?do=``: ``accept_all``, or
  ``grant:<category>`` / ``deny:<category>``, then the consent in force;
- ``GET /.well-known/gpc.json``: each framework's GPC helper route;
- ``/ws`` (Starlette only): a WebSocket that sends the session's user id and closes.

ASGI apps run under uvicorn (its log going to the root logger, so ``caplog`` sees it), the
WSGI ones under the standard library's server, Django as in tests/test_django.py. (FastAPI
resolves the annotations of its routes in this module's globals, hence its imports here.)
"""

from __future__ import annotations

import contextlib
import datetime
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Form
from fastapi.responses import PlainTextResponse

from coatcheck import SessionManager
from coatcheck.core.session import Session
from coatcheck.integrations.fastapi import CurrentSession, install
from coatcheck.integrations.starlette import gpc_route
from tests.support.server import serve
from tests.support.wsgi_server import serve_wsgi

EDGES = ("asgi", "fastapi", "wsgi", "flask", "django")
CSRF_EDGES = ("asgi", "fastapi", "wsgi", "flask")
"""The edges that run coatcheck's CSRF check (Django keeps its own)."""

NOT_JSON = datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC)


def _state(session: Any) -> dict[str, Any]:
    return {"user": session.user_id, "data": dict(session)}


def _consent(session: Session, action: str | None = None) -> dict[str, Any]:
    """Do ``action`` (``accept_all``, ``grant:<c>``, ``deny:<c>``) to the session's consent;
    what is in force afterwards."""
    consent = session.consent
    if action == "accept_all":
        consent.accept_all()
    elif action:
        verb, _, category = action.partition(":")
        consent.grant(category) if verb == "grant" else consent.deny(category)
    state = consent.state
    return {
        "analytics": consent.allows("analytics"),
        "marketing": consent.allows("marketing"),
        "functional": consent.allows("functional"),
        "method": state.method if state is not None else None,
        "gpc": state.gpc if state is not None else False,
    }


# -- ASGI: Starlette and FastAPI --------------------------------------------------------------
def starlette_app(manager: SessionManager) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket

    from coatcheck.integrations.asgi import SessionMiddleware
    from coatcheck.integrations.starlette import gpc_route

    async def csrf(request: Request) -> Response:
        return PlainTextResponse(request.session.csrf_token())  # type: ignore[attr-defined]

    async def read(request: Request) -> Response:
        return JSONResponse(_state(request.session))

    async def plain(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def set_value(request: Request) -> Response:
        form = await request.form()
        request.session["value"] = str(form["value"])
        return JSONResponse(_state(request.session))

    async def login(request: Request) -> Response:
        request.session.login(request.query_params["user"])  # type: ignore[attr-defined]
        return JSONResponse(_state(request.session))

    async def bad(request: Request) -> Response:
        request.session["when"] = NOT_JSON
        return PlainTextResponse("set")

    async def consent(request: Request) -> Response:
        action = request.query_params.get("do") if request.method == "POST" else None
        return JSONResponse(_consent(request.session, action))  # type: ignore[arg-type]

    async def whoami(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(str(websocket.session.user_id))  # type: ignore[attr-defined]
        await websocket.close()

    routes = [
        Route("/csrf", csrf),
        Route("/read", read),
        Route("/plain", plain),
        Route("/set", set_value, methods=["POST"]),
        Route("/login", login, methods=["POST"]),
        Route("/bad", bad, methods=["POST"]),
        Route("/consent", consent, methods=["GET", "POST"]),
        gpc_route(),
        WebSocketRoute("/ws", whoami),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SessionMiddleware, manager=manager)])


def fastapi_app(manager: SessionManager) -> Any:
    app = FastAPI()
    install(app, manager)

    @app.get("/csrf", response_class=PlainTextResponse)
    async def csrf(session: CurrentSession) -> str:
        return session.csrf_token()

    @app.get("/read")
    async def read(session: CurrentSession) -> dict[str, Any]:
        return _state(session)

    @app.get("/plain", response_class=PlainTextResponse)
    async def plain() -> str:
        return "ok"

    @app.post("/set")
    async def set_value(session: CurrentSession, value: str = Form()) -> dict[str, Any]:
        session["value"] = value
        return _state(session)

    @app.post("/login")
    async def login(session: CurrentSession, user: str) -> dict[str, Any]:
        session.login(user)
        return _state(session)

    @app.post("/bad", response_class=PlainTextResponse)
    async def bad(session: CurrentSession) -> str:
        session["when"] = NOT_JSON
        return "set"

    @app.get("/consent")
    async def consent(session: CurrentSession) -> dict[str, Any]:
        return _consent(session)

    @app.post("/consent")
    async def change_consent(session: CurrentSession, do: str) -> dict[str, Any]:
        return _consent(session, do)

    app.router.routes.append(gpc_route())
    return app


# -- WSGI: a bare app and Flask ---------------------------------------------------------------
def wsgi_app(manager: SessionManager) -> Any:
    from coatcheck.integrations.wsgi import SessionMiddleware, get_session, gpc_app

    well_known = gpc_app()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        session = get_session(environ)
        path = environ["PATH_INFO"]
        if path == "/.well-known/gpc.json":
            return well_known(environ, start_response)
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if path == "/csrf":
            token = session.csrf_token().encode()  # before start_response, which commits
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [token]
        if path == "/plain":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
        if path == "/set":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            form = parse_qs(environ["wsgi.input"].read(length).decode())
            session["value"] = form["value"][-1]
        elif path == "/login":
            session.login(query["user"])
        elif path == "/bad":
            session["when"] = NOT_JSON
        elif path == "/consent":
            post = environ["REQUEST_METHOD"] == "POST"
            body = json.dumps(_consent(session, query.get("do") if post else None)).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(_state(session)).encode()]

    return SessionMiddleware(app, manager=manager)


def flask_app(manager: SessionManager) -> Any:
    from flask import Flask, jsonify, request, session

    from coatcheck.integrations.flask import current_session, gpc_blueprint, init_app

    app = Flask(__name__)
    init_app(app, manager)
    app.register_blueprint(gpc_blueprint())

    def state() -> Any:
        return jsonify(user=current_session().user_id, data=dict(session))

    @app.get("/csrf")
    def csrf() -> Any:
        return app.response_class(current_session().csrf_token(), mimetype="text/plain")

    @app.get("/read")
    def read() -> Any:
        return state()

    @app.get("/plain")
    def plain() -> str:
        return "ok"

    @app.post("/set")
    def set_value() -> Any:
        session["value"] = request.form["value"]
        return state()

    @app.post("/login")
    def login() -> Any:
        current_session().login(request.args["user"])
        return state()

    @app.post("/bad")
    def bad() -> str:
        session["when"] = NOT_JSON
        return "set"

    @app.route("/consent", methods=["GET", "POST"])
    def consent() -> Any:
        action = request.args.get("do") if request.method == "POST" else None
        return jsonify(_consent(current_session().core, action))

    return app


# -- Django ----------------------------------------------------------------------------------
def _django_views() -> list[Any]:
    from django.http import HttpRequest, HttpResponse, JsonResponse
    from django.urls import path

    from coatcheck.integrations.django import gpc_urls

    def inner(request: HttpRequest) -> Session:
        return request.session._get_session()  # type: ignore[attr-defined,no-any-return]

    def read(request: HttpRequest) -> JsonResponse:
        return JsonResponse(_state(inner(request)))

    def plain(request: HttpRequest) -> HttpResponse:
        request.session.get("value")  # Django reads the session only when asked
        return HttpResponse("ok")

    def set_value(request: HttpRequest) -> JsonResponse:
        request.session["value"] = request.POST["value"]
        return JsonResponse(_state(inner(request)))

    def login(request: HttpRequest) -> JsonResponse:
        request.session["_auth_user_id"] = request.GET["user"]  # what auth.login writes
        return JsonResponse({"user": request.GET["user"]})

    def bad(request: HttpRequest) -> HttpResponse:
        request.session["when"] = NOT_JSON
        return HttpResponse("set")

    def consent(request: HttpRequest) -> JsonResponse:
        action = request.GET.get("do") if request.method == "POST" else None
        return JsonResponse(_consent(inner(request), action))

    return [
        *gpc_urls(),
        path("consent", consent),
        path("read", read),
        path("plain", plain),
        path("set", set_value),
        path("login", login),
        path("bad", bad),
    ]


urlpatterns: list[Any] = []
"""Django's URLconf (``ROOT_URLCONF`` of the Django edge), filled on first use."""


@contextlib.contextmanager
def _django_app(manager: SessionManager) -> Iterator[Any]:
    from django.core.wsgi import get_wsgi_application
    from django.test import override_settings

    from coatcheck.integrations.django import configure
    from tests.support import django_settings

    django_settings.setup()
    if not urlpatterns:
        urlpatterns.extend(_django_views())
    settings = override_settings(
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[
            "coatcheck.django.StoreUnavailableMiddleware",
            "coatcheck.django.SessionMiddleware",
        ],
        SESSION_COOKIE_NAME=manager.config.cookie_name,
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
    )
    settings.enable()
    configure(manager)
    try:
        yield get_wsgi_application()
    finally:
        configure(None)
        settings.disable()


# -- serving ---------------------------------------------------------------------------------
_ASGI: dict[str, Callable[[SessionManager], Any]] = {
    "asgi": starlette_app,
    "fastapi": fastapi_app,
}
_WSGI: dict[str, Callable[[SessionManager], Any]] = {"wsgi": wsgi_app, "flask": flask_app}


def is_asgi(edge: str) -> bool:
    return edge in _ASGI


@contextlib.contextmanager
def edge_app(edge: str, manager: SessionManager) -> Iterator[Any]:
    """``edge``'s app over ``manager`` (an ASGI app for ``is_asgi`` edges, else WSGI)."""
    if edge in _ASGI:
        yield _ASGI[edge](manager)
    elif edge in _WSGI:
        yield _WSGI[edge](manager)
    elif edge == "django":
        with _django_app(manager) as app:
            yield app
    else:
        raise ValueError(f"unknown edge {edge!r}")


@contextlib.contextmanager
def serve_edge(edge: str, manager: SessionManager) -> Iterator[str]:
    """Serve ``edge``'s app over ``manager``; yields its base URL."""
    with edge_app(edge, manager) as app:
        if is_asgi(edge):
            # log_config=None: uvicorn's error log reaches the root logger (and caplog).
            with serve(app, log_config=None) as url:
                yield url
        else:
            with serve_wsgi(app) as url:
                yield url
