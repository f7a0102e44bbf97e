"""The per-session lock on every edge, over real HTTP: ASGI and WSGI (``locked=`` paths,
``lock_sessions``), Starlette's ``@locked_session``, FastAPI's ``LockedSession``, Flask's
and Django's ``@locked_session``.

Each edge serves the same small shop: ``POST /start`` (a session with an empty cart),
``POST /add?item=`` (locked: the plain read-modify-write of the cart, with a pause between
the read and the write, as a handler doing I/O has), ``POST /boom`` (locked: reads, then
raises), ``GET /cart``. Concurrent additions keep every item; a lock held elsewhere is a
409 with ``Retry-After`` and the handler does not run; a handler that raised leaves the
lock free; a store that is down is a 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from fastapi import FastAPI

from coatcheck import SessionConfig, SessionManager
from coatcheck.core import tokens
from coatcheck.engine.locking import session_locks
from coatcheck.errors import MissingCapability, SessionLocked
from coatcheck.integrations.fastapi import LockedSession, install
from coatcheck.stores import CookieStore, MemoryStore
from coatcheck.stores.redis import RedisStore
from tests.support.server import serve
from tests.support.wsgi_server import serve_wsgi

COOKIE = "__Host-session"
KEY = "w2s4eRzFttw0lqDOYJHm4WBEvRKbVM0ULpCr_XLHryo"
PAUSE = 0.005
"""Between a handler's read of the cart and its write: long enough for another request
to run in between, were there no lock."""

EDGES = (
    "asgi",
    "starlette",
    "fastapi",
    "asgi-all",
    "wsgi",
    "wsgi-all",
    "flask",
    "flask-all",
    "django",
    "django-all",
)
"""``asgi``/``wsgi``: ``locked=`` paths; ``-all``: ``lock_sessions``; the others: the
framework's marker."""

ASGI_EDGES = ("asgi", "starlette", "fastapi", "asgi-all")


# -- the apps --------------------------------------------------------------------------------
def _starlette(manager: SessionManager, mode: str) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from coatcheck.integrations.asgi import SessionMiddleware
    from coatcheck.integrations.starlette import locked_session

    async def start(request: Request) -> Response:
        request.session["cart"] = []
        return JSONResponse([])

    async def add(request: Request) -> Response:
        session = request.session
        cart = session.get("cart", [])
        await asyncio.sleep(PAUSE)
        session["cart"] = cart + [int(request.query_params["item"])]  # noqa: RUF005
        return JSONResponse(session["cart"])

    async def boom(request: Request) -> Response:
        request.session.get("cart")
        raise RuntimeError("the handler failed")

    async def cart(request: Request) -> Response:
        return JSONResponse(request.session.get("cart"))

    marked = locked_session if mode == "starlette" else (lambda endpoint: endpoint)
    routes = [
        Route("/start", start, methods=["POST"]),
        Route("/add", marked(add), methods=["POST"]),
        Route("/boom", marked(boom), methods=["POST"]),
        Route("/cart", cart),
    ]
    locked = ["/add", "/boom"] if mode == "asgi" else []
    middleware = [Middleware(SessionMiddleware, manager=manager, locked=locked)]
    return Starlette(routes=routes, middleware=middleware)


def _fastapi(manager: SessionManager) -> Any:
    app = FastAPI()
    install(app, manager)

    @app.post("/start")
    async def start(session: LockedSession) -> list[int]:
        session["cart"] = []
        return []

    @app.post("/add")
    async def add(session: LockedSession, item: int) -> list[int]:
        cart = session.get("cart", [])
        await asyncio.sleep(PAUSE)
        session["cart"] = cart + [item]  # noqa: RUF005
        return list(session["cart"])

    @app.post("/boom")
    async def boom(session: LockedSession) -> None:
        session.get("cart")
        raise RuntimeError("the handler failed")

    @app.get("/cart")
    async def cart(session: LockedSession) -> Any:
        return session.get("cart")

    return app


def _wsgi(manager: SessionManager, mode: str) -> Any:
    from coatcheck.integrations.wsgi import SessionMiddleware, get_session

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        session = get_session(environ)
        path = environ["PATH_INFO"]
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if path == "/start":
            session["cart"] = []
        elif path == "/add":
            cart = session.get("cart", [])
            time.sleep(PAUSE)
            session["cart"] = cart + [int(query["item"])]  # noqa: RUF005
        elif path == "/boom":
            session.get("cart")
            raise RuntimeError("the handler failed")
        body = json.dumps(session.get("cart")).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    locked = ["/add", "/boom"] if mode == "wsgi" else []
    return SessionMiddleware(app, manager=manager, locked=locked)


def _flask(manager: SessionManager, mode: str) -> Any:
    from flask import Flask, jsonify, request, session

    from coatcheck.integrations.flask import init_app
    from coatcheck.integrations.flask import locked_session as marker

    locked_session = marker if mode == "flask" else (lambda view: view)

    app = Flask(__name__)
    init_app(app, manager)

    @app.post("/start")
    def start() -> Any:
        session["cart"] = []
        return jsonify([])

    @app.post("/add")
    @locked_session
    def add() -> Any:
        cart = session.get("cart", [])
        time.sleep(PAUSE)
        session["cart"] = cart + [int(request.args["item"])]  # noqa: RUF005
        return jsonify(session["cart"])

    @app.post("/boom")
    @locked_session
    def boom() -> Any:
        session.get("cart")
        raise RuntimeError("the handler failed")

    @app.get("/cart")
    def cart() -> Any:
        return jsonify(session.get("cart"))

    return app


URLCONFS: dict[str, Any] = {}
"""The Django edge's URLconfs (its ``ROOT_URLCONF``): views marked, or not (``-all``)."""


def _django_views(mode: str) -> list[Any]:
    from django.http import HttpRequest, JsonResponse
    from django.urls import path
    from django.views.decorators.csrf import csrf_exempt

    from coatcheck.integrations.django import locked_session as marker

    locked_session = marker if mode == "django" else (lambda view: view)

    def start(request: HttpRequest) -> JsonResponse:
        request.session["cart"] = []
        return JsonResponse([], safe=False)

    @locked_session
    def add(request: HttpRequest) -> JsonResponse:
        cart = request.session.get("cart", [])
        time.sleep(PAUSE)
        request.session["cart"] = cart + [int(request.GET["item"])]  # noqa: RUF005
        return JsonResponse(request.session["cart"], safe=False)

    @locked_session
    def boom(request: HttpRequest) -> JsonResponse:
        request.session.get("cart")
        raise RuntimeError("the handler failed")

    def cart(request: HttpRequest) -> JsonResponse:
        return JsonResponse(request.session.get("cart"), safe=False)

    @locked_session
    async def async_add(request: HttpRequest) -> JsonResponse:
        cart = await request.session.aget("cart", [])
        await asyncio.sleep(PAUSE)
        await request.session.aset("cart", [*cart, int(request.GET["item"])])
        return JsonResponse(await request.session.aget("cart"), safe=False)

    views = {"start": start, "add": add, "boom": boom, "cart": cart, "async-add": async_add}
    return [path(name, csrf_exempt(view)) for name, view in views.items()]


@contextlib.contextmanager
def _django(manager: SessionManager, mode: str) -> Iterator[Any]:
    from django.core.wsgi import get_wsgi_application
    from django.test import override_settings

    from coatcheck.integrations.django import configure
    from tests.support import django_settings

    django_settings.setup()
    if mode not in URLCONFS:
        URLCONFS[mode] = type(f"URLconf_{mode}", (), {"urlpatterns": _django_views(mode)})
    settings = override_settings(
        ROOT_URLCONF=URLCONFS[mode],
        MIDDLEWARE=[
            "coatcheck.django.StoreUnavailableMiddleware",
            "coatcheck.django.SessionMiddleware",
        ],
        SESSION_COOKIE_NAME=COOKIE,
        SESSION_COOKIE_SECURE=True,
        DEBUG_PROPAGATE_EXCEPTIONS=False,
    )
    settings.enable()
    configure(manager)
    try:
        yield get_wsgi_application()
    finally:
        configure(None)
        settings.disable()


@contextlib.contextmanager
def served(edge: str, manager: SessionManager) -> Iterator[str]:
    """``edge``'s shop over ``manager``, on a real server; yields its base URL."""
    if edge in ASGI_EDGES:
        app = _fastapi(manager) if edge == "fastapi" else _starlette(manager, edge)
        with serve(app) as url:
            yield url
    elif edge.startswith("django"):
        with _django(manager, edge) as app, serve_wsgi(app) as url:
            yield url
    else:
        app = _flask(manager, edge) if edge.startswith("flask") else _wsgi(manager, edge)
        with serve_wsgi(app) as url:
            yield url


def config_for(edge: str, **settings: Any) -> SessionConfig:
    lock_all = edge.endswith("-all")
    return SessionConfig(secure=True, csrf=False, lock_sessions=lock_all, **settings)


def token_of(response: httpx.Response) -> str:
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    return cookie.split(";", 1)[0].split("=", 1)[1]


def started(url: str) -> str:
    response = httpx.post(f"{url}/start")
    assert response.status_code == 200, response.text
    return token_of(response)


def cookie(token: str) -> dict[str, str]:
    return {"cookie": f"{COOKIE}={token}"}


# -- the promises ----------------------------------------------------------------------------
@pytest.mark.parametrize("edge", EDGES)
async def test_concurrent_additions_to_one_cart_keep_every_item(edge: str) -> None:
    manager = SessionManager(MemoryStore(), config_for(edge))
    with served(edge, manager) as url:
        token = started(url)
        async with httpx.AsyncClient(base_url=url, headers=cookie(token), timeout=30) as client:
            answers = await asyncio.gather(
                *(client.post("/add", params={"item": i}) for i in range(12))
            )
        assert [a.status_code for a in answers] == [200] * 12
        final = httpx.get(f"{url}/cart", headers=cookie(token)).json()
        assert sorted(final) == list(range(12))


@pytest.mark.parametrize("edge", EDGES)
def test_a_lock_held_elsewhere_is_a_409_and_the_handler_does_not_run(edge: str) -> None:
    manager = SessionManager(MemoryStore(), config_for(edge, lock_timeout=0))
    with served(edge, manager) as url:
        token = started(url)
        locks = session_locks(manager)
        held = locks.acquire_sync(token)  # another request of the session, still running
        response = httpx.post(f"{url}/add", params={"item": 1}, headers=cookie(token))
        assert response.status_code == 409
        assert response.headers["retry-after"] == "1"
        assert "set-cookie" not in response.headers
        assert "Traceback" not in response.text
        locks.release_sync(held)
        assert httpx.get(f"{url}/cart", headers=cookie(token)).json() == []  # did not run
        response = httpx.post(f"{url}/add", params={"item": 1}, headers=cookie(token))
        assert (response.status_code, response.json()) == (200, [1])


@pytest.mark.parametrize("edge", EDGES)
def test_a_handler_that_raised_leaves_the_lock_free(edge: str) -> None:
    manager = SessionManager(MemoryStore(), config_for(edge, lock_timeout=0))
    with served(edge, manager) as url:
        token = started(url)
        response = httpx.post(f"{url}/boom", headers=cookie(token))
        assert response.status_code == 500
        held = session_locks(manager).acquire_sync(token)
        assert held is not None  # free: nobody holds it any more
        session_locks(manager).release_sync(held)


@pytest.mark.parametrize("edge", EDGES)
def test_a_new_session_takes_no_lock(edge: str) -> None:
    """No token, nothing to wait for: a lock held on some other session changes nothing,
    and the request that starts a session needs none."""
    manager = SessionManager(MemoryStore(), config_for(edge, lock_timeout=0))
    with served(edge, manager) as url:
        response = httpx.post(f"{url}/add", params={"item": 7})
        assert (response.status_code, response.json()) == (200, [7])


@pytest.mark.parametrize("edge", EDGES)
def test_a_store_that_is_down_is_a_503(edge: str) -> None:
    """Redis on a port where nothing listens: the lock cannot be asked for."""
    store = RedisStore.from_url("redis://127.0.0.1:9/0?timeout=0.5&connect_timeout=0.5")
    manager = SessionManager(store, config_for(edge, lock_timeout=0))
    with served(edge, manager) as url:
        token = tokens.new_token()
        response = httpx.post(f"{url}/add", params={"item": 1}, headers=cookie(token))
        assert response.status_code == 503
        assert "Traceback" not in response.text


def test_a_store_that_cannot_lock_is_refused_when_the_app_starts() -> None:
    from coatcheck.integrations.asgi import SessionMiddleware as AsgiMiddleware
    from coatcheck.integrations.wsgi import SessionMiddleware as WsgiMiddleware

    manager = SessionManager(CookieStore([KEY]))
    for middleware in (AsgiMiddleware, WsgiMiddleware):
        with pytest.raises(MissingCapability) as caught:
            middleware(lambda *a: None, manager=manager, locked=["/cart"])  # type: ignore[arg-type]
        assert caught.value.capability == "Lockable"


async def test_asgi_frees_the_lock_when_the_client_left() -> None:
    """The app awaits something when the client goes away and the server cancels it; or
    it returns without a response at all. Either way the lock is free afterwards."""
    from coatcheck.integrations.asgi import SessionMiddleware

    manager = SessionManager(MemoryStore(), SessionConfig(csrf=False, lock_timeout=0))
    session = manager.load_sync(None)
    session["cart"] = []
    token = manager.commit_sync(session).token
    assert token is not None
    entered = asyncio.Event()

    async def hangs(scope: Any, receive: Any, send: Any) -> None:
        entered.set()
        await asyncio.Event().wait()

    async def answers_nothing(scope: Any, receive: Any, send: Any) -> None:
        return None

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        return None

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/cart",
        "headers": [(b"cookie", f"{COOKIE}={token}".encode())],
        "client": ("192.0.2.1", 5000),
        "scheme": "https",
    }
    for app in (hangs, answers_nothing):
        middleware = SessionMiddleware(app, manager=manager, locked=["/cart"])
        task = asyncio.ensure_future(middleware(dict(scope), receive, send))
        if app is hangs:
            await entered.wait()
            with pytest.raises(SessionLocked):  # held while the app runs
                session_locks(manager).acquire_sync(token)
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        held = session_locks(manager).acquire_sync(token)
        assert held is not None
        session_locks(manager).release_sync(held)


def test_wsgi_frees_the_lock_when_the_body_is_closed_before_the_commit() -> None:
    """A WSGI generator app that calls ``start_response`` only when iterated; the client
    leaves first, and the server closes the body it never iterated."""
    from coatcheck.integrations.wsgi import SessionMiddleware

    manager = SessionManager(MemoryStore(), SessionConfig(csrf=False, lock_timeout=0))
    session = manager.load_sync(None)
    session["cart"] = []
    token = manager.commit_sync(session).token
    assert token is not None

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"[]"

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/cart",
        "HTTP_COOKIE": f"{COOKIE}={token}",
        "REMOTE_ADDR": "192.0.2.1",
        "wsgi.url_scheme": "https",
    }
    body = SessionMiddleware(app, manager=manager, locked=["/cart"])(environ, lambda *a: None)
    with pytest.raises(SessionLocked):  # still held: the request runs
        session_locks(manager).acquire_sync(token)
    body.close()  # type: ignore[attr-defined]
    held = session_locks(manager).acquire_sync(token)
    assert held is not None


def test_an_async_django_view_takes_the_lock_too() -> None:
    manager = SessionManager(MemoryStore(), config_for("django", lock_timeout=0))
    with served("django", manager) as url:
        token = started(url)
        locks = session_locks(manager)
        held = locks.acquire_sync(token)
        response = httpx.post(f"{url}/async-add", params={"item": 1}, headers=cookie(token))
        assert (response.status_code, response.headers["retry-after"]) == (409, "1")
        locks.release_sync(held)
        response = httpx.post(f"{url}/async-add", params={"item": 1}, headers=cookie(token))
        assert (response.status_code, response.json()) == (200, [1])
        assert locks.acquire_sync(token) is not None  # freed after the save
