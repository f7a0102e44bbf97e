"""``coatcheck.testing``: the helpers apps use in their own tests.

Each client adapter is proven by the app itself answering as the logged-in user, and by the
app's own logout then removing the cookie the helper planted (the cookie was filed under
the same jar key as the app's Set-Cookie, not beside it). The Django ``Client`` adapter is
tested in tests/test_django.py, where Django is configured.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask, jsonify
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from coatcheck import SessionConfig, SessionManager
from coatcheck.core import tokens
from coatcheck.integrations.asgi import SessionMiddleware
from coatcheck.integrations.flask import current_session, init_app
from coatcheck.security.csrf import SECRET_KEY
from coatcheck.security.sealing import new_key
from coatcheck.stores import CookieStore, MemoryStore, SQLiteStore
from coatcheck.testing import (
    FrozenClock,
    aforce_login,
    alogin_client,
    csrf_header,
    force_login,
    login_client,
)
from tests.support.server import serve

COOKIE = "__Host-session"


# -- FrozenClock --------------------------------------------------------------------------------
def test_frozen_clock_stands_still_until_moved() -> None:
    before = time.time()
    clock = FrozenClock()
    assert before <= clock() <= time.time()  # starts at the real time by default
    start = clock()
    assert clock() == start
    assert clock.advance(90) == start + 90
    assert clock() == start + 90
    clock.set(1000.0)
    assert clock() == 1000.0  # set() may go backward
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)
    assert clock() == 1000.0
    assert FrozenClock(5)() == 5.0


def test_frozen_clock_expires_sessions_without_sleeping(tmp_path: Path) -> None:
    clock = FrozenClock()
    store = SQLiteStore(tmp_path / "s.db")
    manager = SessionManager(store, SessionConfig(idle_timeout=60), clock=clock)
    try:
        token = force_login(manager, "ann")
        clock.advance(59)
        assert manager.load_sync(token).user_id == "ann"
        clock.advance(61)
        assert manager.load_sync(token).user_id is None
    finally:
        store.close_sync()


# -- force_login ------------------------------------------------------------------------------
def test_force_login_stores_a_real_login(tmp_path: Path) -> None:
    clock = FrozenClock(1_900_000_000)
    store = SQLiteStore(tmp_path / "s.db")
    manager = SessionManager(store, clock=clock)
    try:
        token = force_login(manager, 42, data={"cart": ["tea"]}, remember=True)
        assert tokens.is_well_formed(token)
        record = store.get_sync(tokens.storage_key(token))  # stored under the hash only
        assert record is not None
        assert record.user_id == "42"
        assert record.data == {"cart": ["tea"]}
        assert record.auth_at == clock()
        assert record.remember is True
        assert [s.handle for s in manager.list_user_sessions_sync("42")] == [record.handle]
        assert force_login(manager, 42) != token  # every call is a new session
    finally:
        store.close_sync()


async def test_aforce_login_uses_the_async_path(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    manager = SessionManager(store)
    try:
        token = await aforce_login(manager, "bea", data={"theme": "dark"})
        session = await manager.load(token)
        assert session.user_id == "bea" and dict(session) == {"theme": "dark"}
        assert session.remember is False
    finally:
        await store.close()


def test_force_login_works_with_the_cookie_store() -> None:
    manager = SessionManager(CookieStore([new_key()]))
    sealed = force_login(manager, "cy", data={"n": 1})
    assert len(sealed) > tokens.TOKEN_LENGTH  # the session itself, sealed
    session = manager.load_sync(sealed)
    assert session.user_id == "cy" and session["n"] == 1


# -- httpx and Starlette's TestClient ----------------------------------------------------------
async def me(request: Request) -> JSONResponse:
    session = request.session
    return JSONResponse({"user": session.user_id, "data": dict(session)})


async def logout(request: Request) -> JSONResponse:
    request.session.logout()
    return JSONResponse({"user": None})


def starlette_app(manager: SessionManager) -> Starlette:
    return Starlette(
        routes=[Route("/me", me), Route("/logout", logout, methods=["POST"])],
        middleware=[Middleware(SessionMiddleware, manager=manager)],
    )


def test_starlette_testclient_is_logged_in_and_logged_out() -> None:
    manager = SessionManager(MemoryStore())
    with TestClient(starlette_app(manager), base_url="https://testserver") as client:
        token = login_client(client, manager, "dee", data={"cart": ["mug"]})
        assert manager.load_sync(token).user_id == "dee"
        assert client.get("/me").json() == {"user": "dee", "data": {"cart": ["mug"]}}

        client.post("/logout")
        assert list(client.cookies.jar) == []  # the app's clearing cookie replaced ours
        assert client.get("/me").json() == {"user": None, "data": {}}


def test_an_http_base_url_is_refused_for_a_secure_cookie() -> None:
    manager = SessionManager(MemoryStore())
    with (
        TestClient(starlette_app(manager)) as client,
        pytest.raises(ValueError, match="https://testserver"),
    ):
        login_client(client, manager, "eve")


@pytest.fixture
def insecure_server() -> Iterator[tuple[str, SessionManager]]:
    config = SessionConfig(cookie_name="sid", secure=False)
    manager = SessionManager(MemoryStore(), config)
    with serve(starlette_app(manager)) as url:
        yield url, manager


def test_httpx_client_over_real_http(insecure_server: tuple[str, SessionManager]) -> None:
    url, manager = insecure_server
    with httpx.Client(base_url=url) as client:
        login_client(client, manager, "fay", data={"n": 7})
        assert client.get("/me").json() == {"user": "fay", "data": {"n": 7}}
        client.post("/logout")
        assert list(client.cookies.jar) == []
        assert client.get("/me").json()["user"] is None

    with httpx.Client() as no_base:  # no base_url: the origin must be named
        with pytest.raises(ValueError, match="url="):
            login_client(no_base, manager, "fay")
        login_client(no_base, manager, "gus", url=url)
        assert no_base.get(f"{url}/me").json()["user"] == "gus"


def test_csrf_header_lets_a_cookie_client_post(
    insecure_server: tuple[str, SessionManager],
) -> None:
    url, manager = insecure_server
    token = force_login(manager, "max")
    cookie = {"Cookie": f"sid={token}"}
    with httpx.Client(base_url=url) as client:
        refused = client.post("/logout", headers=cookie)
        assert refused.status_code == 403  # the CSRF check is on by default
        assert manager.load_sync(token).user_id == "max"
        allowed = client.post("/logout", headers={**cookie, **csrf_header(manager, token)})
        assert allowed.status_code == 200
    assert manager.load_sync(token).is_new  # logged out


def test_csrf_header_stores_a_secret_for_a_session_made_elsewhere(
    insecure_server: tuple[str, SessionManager],
) -> None:
    url, manager = insecure_server
    session = manager.load_sync(None)
    session["theme"] = "dark"
    token = manager.commit_sync(session).token
    assert token is not None and SECRET_KEY not in manager.load_sync(token).meta
    header = csrf_header(manager, token)
    assert SECRET_KEY in manager.load_sync(token).meta
    with httpx.Client(base_url=url) as client:
        response = client.post("/logout", headers={"Cookie": f"sid={token}", **header})
        assert response.status_code == 200
    with pytest.raises(ValueError, match="no live session"):
        csrf_header(manager, token)


async def test_httpx_async_client_with_alogin_client() -> None:
    manager = SessionManager(MemoryStore())
    transport = httpx.ASGITransport(app=starlette_app(manager))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        token = await alogin_client(client, manager, "hal", remember=True)
        assert (await manager.load(token)).remember is True
        assert (await client.get("/me")).json()["user"] == "hal"


# -- Flask's test client ----------------------------------------------------------------------
def flask_app(manager: SessionManager, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    init_app(app, manager)

    @app.get("/me")
    def flask_me() -> Any:
        session = current_session()
        return jsonify(user=session.user_id, data=dict(session))

    @app.post("/logout")
    def flask_logout() -> Any:
        current_session().logout()
        return jsonify(user=None)

    return app


def test_flask_test_client_is_logged_in_and_logged_out(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    manager = SessionManager(store)
    try:
        client = flask_app(manager).test_client()
        token = login_client(client, None, "ivy", data={"cart": ["scarf"]})  # init_app's
        assert store.get_sync(tokens.storage_key(token)) is not None
        assert client.get("/me").json == {"user": "ivy", "data": {"cart": ["scarf"]}}

        client.post("/logout")
        assert client.get_cookie(COOKIE) is None
        assert client.get("/me").json == {"user": None, "data": {}}
    finally:
        store.close_sync()


def test_flask_test_client_follows_server_name() -> None:
    manager = SessionManager(MemoryStore())
    client = flask_app(manager, SERVER_NAME="shop.example:8443").test_client()
    login_client(client, manager, "jo")
    assert client.get_cookie(COOKIE, domain="shop.example") is not None
    assert client.get("/me").json["user"] == "jo"


def test_flask_app_without_coatcheck_is_refused() -> None:
    client = Flask(__name__).test_client()
    with pytest.raises(ValueError, match="init_app"):
        login_client(client, None, "kim")


# -- misuse -----------------------------------------------------------------------------------
def test_unknown_clients_and_missing_managers_are_refused() -> None:
    manager = SessionManager(MemoryStore())
    with pytest.raises(TypeError, match="unsupported test client"):
        login_client(object(), manager, "lea")
    with pytest.raises(TypeError, match="SessionManager"), httpx.Client() as client:
        login_client(client, None, "lea")
    with pytest.raises(TypeError, match="user id"), httpx.Client() as client:
        login_client(client, manager, object())
