"""FastAPI dependencies of ``coatcheck.fastapi``, driven over real HTTP (uvicorn on loopback).

The example app (examples/fastapi_app.py) is the app under test, with a manager whose store
is a real SQLite file and whose clock is a FakeClock, so "recent login" and expiry are
tested by moving time, never by sleeping.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi import Depends, FastAPI, WebSocket
from starlette.middleware import Middleware
from starlette.testclient import TestClient

from coatcheck import SessionConfig, SessionManager
from coatcheck.core import tokens
from coatcheck.core.session import Session
from coatcheck.integrations.asgi import SessionMiddleware
from coatcheck.integrations.fastapi import (
    EXCEPTION_HANDLERS,
    CurrentSession,
    CurrentUser,
    get_session,
    install,
    require_level,
    require_recent_auth,
)
from coatcheck.stores import MemoryStore, SQLiteStore
from coatcheck.testing import login_client
from tests.support.browser import Browser
from tests.support.clock import FakeClock
from tests.support.server import serve
from tests.support.user_agents import FIREFOX_LINUX, SAFARI_IPHONE

COOKIE = "__Host-session"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fastapi_app.py"
IDLE = 900.0


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the models' annotations through it
    spec.loader.exec_module(module)
    return module


@dataclass
class Site:
    url: str
    manager: SessionManager
    store: SQLiteStore
    clock: FakeClock

    def browser(self, **kwargs: Any) -> Browser:
        # This front end fetches and sends its CSRF token itself (``arm``), as a
        # JavaScript client does: no automatic render before unsafe requests.
        return Browser(self.url, csrf_path=None, **kwargs)

    def record(self, token: str) -> Any:
        return self.store.get_sync(tokens.storage_key(token))


@pytest.fixture
def site(tmp_path: Path, clock: FakeClock) -> Iterator[Site]:
    store = SQLiteStore(tmp_path / "sessions.db")
    manager = SessionManager(store, SessionConfig(idle_timeout=IDLE), clock=clock)
    app = load_example().create_app(manager)
    try:
        with serve(app) as url:
            yield Site(url, manager, store, clock)
    finally:
        store.close_sync()


CSRF = "X-CSRF-Token"


def arm(browser: Browser) -> str:
    """What the front end does first: fetch a CSRF token for its unsafe requests."""
    token: str = browser.get("/csrf").json()["csrf_token"]
    browser.client.headers[CSRF] = token
    return token


def log_in(browser: Browser, user: str = "alice", password: str = "wonderland") -> Any:
    if CSRF not in browser.client.headers:
        arm(browser)
    response = browser.post("/login", json={"username": user, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    browser.client.headers[CSRF] = body.pop("csrf_token")  # login replaced the secret
    return body


# -- get_session ------------------------------------------------------------------------------
def test_get_session_gives_the_coatcheck_session_and_it_persists(site: Site) -> None:
    with site.browser() as browser:
        assert browser.get("/").json() == {"visits": 1, "user": None, "cart": []}
        token = browser.cookies[COOKIE]
        assert tokens.is_well_formed(token)
        assert browser.get("/").json()["visits"] == 2
        assert site.record(token).data["visits"] == 2
    with site.browser() as stranger:
        assert stranger.get("/").json()["visits"] == 1


def test_login_keeps_the_cart_under_a_new_token_and_logout_ends_it(site: Site) -> None:
    with site.browser() as browser:
        arm(browser)
        assert browser.post("/cart", json={"item": "tea"}).json() == {"cart": ["tea"]}
        assert browser.post("/cart", json={"item": "mug"}).json() == {"cart": ["tea", "mug"]}
        anonymous = browser.cookies[COOKIE]

        assert log_in(browser) == {"user": "alice", "cart": ["tea", "mug"]}
        token = browser.cookies[COOKIE]
        assert token != anonymous
        assert site.record(anonymous) is None
        assert site.record(token).user_id == "alice"

        response = browser.post("/logout")
        assert response.json() == {"user": None}
        assert COOKIE not in browser.cookies
        assert site.record(token) is None
        assert browser.get("/account").status_code == 401


# -- require_user -----------------------------------------------------------------------------
def test_require_user_answers_401_json_when_anonymous(site: Site) -> None:
    with site.browser() as browser:
        response = browser.get("/account")
        assert response.status_code == 401
        assert response.json() == {"error": "login_required"}
        assert response.headers["cache-control"] == "no-store"

        log_in(browser)
        response = browser.get("/account")
        assert response.status_code == 200
        body = response.json()
        assert body["user"] == "alice"
        assert body["handle"] == site.record(browser.cookies[COOKIE]).handle


def test_require_user_follows_the_idle_timeout(site: Site) -> None:
    with site.browser() as browser:
        log_in(browser)
        site.clock.advance(IDLE - 1)
        assert browser.get("/account").status_code == 200
        site.clock.advance(IDLE + 1)
        response = browser.get("/account")
        assert response.status_code == 401
        assert response.json() == {"error": "login_required"}


def test_a_bearer_client_is_a_user_too(site: Site) -> None:
    with site.browser() as api:
        response = api.post(
            "/login",
            json={"username": "bob", "password": "builder"},
            headers={"X-Session-Transport": "bearer"},
        )
        token = response.headers["x-session-token"]
        assert "set-cookie" not in response.headers
        account = api.get("/account", headers={"Authorization": f"Bearer {token}"})
        assert account.json()["user"] == "bob"


# -- require_recent_auth ----------------------------------------------------------------------
def test_require_recent_auth_uses_the_managers_clock(site: Site) -> None:
    with site.browser() as browser:
        arm(browser)
        anonymous = browser.post("/account/email", json={"email": "a@example.org"})
        assert anonymous.status_code == 401
        assert anonymous.json() == {"error": "login_required"}

        log_in(browser)
        site.clock.advance(299)
        fresh = browser.post("/account/email", json={"email": "a@example.org"})
        assert fresh.status_code == 200
        assert fresh.json() == {"user": "alice", "email": "a@example.org", "changed": True}

        site.clock.advance(2)  # 301 s after the login: still logged in, but not recently
        stale = browser.post("/account/email", json={"email": "b@example.org"})
        assert stale.status_code == 401
        assert stale.json() == {"error": "reauthentication_required", "max_age": 300.0}
        assert stale.headers["cache-control"] == "no-store"
        assert browser.get("/account").status_code == 200

        log_in(browser)  # signing in again counts as re-authentication
        again = browser.post("/account/email", json={"email": "b@example.org"})
        assert again.status_code == 200


def test_require_level_answers_401_until_a_step_up(tmp_path: Path, clock: FakeClock) -> None:
    app = FastAPI()
    store = SQLiteStore(tmp_path / "sessions.db")
    manager = SessionManager(store, clock=clock)
    install(app, manager)

    @app.get("/login")
    async def login(session: CurrentSession, level: int = 1) -> dict[str, str]:
        session.login("alice", level=level)
        return {}

    @app.get("/payout")
    async def payout(user_id: CurrentUser, _: str = Depends(require_level(2))) -> dict[str, str]:
        return {"paid": user_id}

    try:
        with serve(app) as url, Browser(url) as browser:
            assert browser.get("/payout").json() == {"error": "login_required"}
            browser.get("/login")
            low = browser.get("/payout")
            assert low.status_code == 401
            assert low.json() == {"error": "insufficient_auth_level", "required": 2, "current": 1}
            browser.get("/login?level=2")
            assert browser.get("/payout").json() == {"paid": "alice"}
            handle = manager.list_user_sessions_sync("alice")[0].handle
            assert manager.is_active_sync(handle)
            assert manager.revoke_sync(handle)
            assert not manager.is_active_sync(handle)
    finally:
        store.close_sync()


def test_require_recent_auth_refuses_a_nonpositive_age() -> None:
    with pytest.raises(ValueError, match="max_age"):
        require_recent_auth(0)


def test_unsafe_requests_need_the_csrf_token_and_login_renews_it(site: Site) -> None:
    with site.browser() as browser:
        browser.get("/")  # a session, but no token yet
        refused = browser.post("/cart", json={"item": "tea"})
        assert refused.status_code == 403
        assert "CSRF" in refused.text

        before = arm(browser)
        assert browser.post("/cart", json={"item": "tea"}).status_code == 200
        log_in(browser)
        assert browser.post("/cart", json={"item": "mug"}).json() == {"cart": ["tea", "mug"]}

        stale = browser.post("/cart", json={"item": "mug"}, headers={CSRF: before})
        assert stale.status_code == 403  # a token from before the login is worthless


# -- "your devices" through get_manager -------------------------------------------------------
def test_devices_are_listed_and_another_one_revoked(site: Site) -> None:
    with (
        site.browser(headers={"User-Agent": SAFARI_IPHONE}) as phone,
        site.browser(headers={"User-Agent": FIREFOX_LINUX}) as laptop,
        site.browser() as mallory,
    ):
        log_in(phone)
        log_in(laptop)
        log_in(mallory, "bob", "builder")
        devices = laptop.get("/account/devices").json()
        assert [(d["user_agent"], d["current"]) for d in devices] == [
            ("Mobile Safari 17 / iOS / mobile", False),
            ("Firefox 121 / Linux / desktop", True),
        ]
        phone_handle = devices[0]["handle"]

        stranger = mallory.post(f"/account/devices/{phone_handle}/revoke")
        assert stranger.status_code == 404  # bob cannot end alice's session
        assert phone.get("/account").status_code == 200

        assert laptop.post(f"/account/devices/{phone_handle}/revoke").json() == {"revoked": True}
        assert phone.get("/account").status_code == 401
        assert laptop.get("/account").status_code == 200


# -- wiring mistakes ---------------------------------------------------------------------------
def bare_app(**kwargs: Any) -> FastAPI:
    app = FastAPI(**kwargs)

    @app.get("/who")
    async def who(user_id: CurrentUser) -> dict[str, str]:
        return {"user": user_id}

    @app.get("/peek")
    async def peek(session: Session = Depends(get_session)) -> dict[str, Any]:
        return {"n": len(session)}

    return app


def test_missing_middleware_is_a_clear_error_not_an_empty_session() -> None:
    app = bare_app()
    with TestClient(app) as client, pytest.raises(RuntimeError, match="SessionMiddleware"):
        client.get("/peek")
    with serve(app) as url, Browser(url) as browser:
        response = browser.get("/peek")
        # A server error (the RuntimeError above is in the server's log), never a view
        # that ran with a stand-in session.
        assert response.status_code == 500
        assert response.text == "Internal Server Error"
        assert "set-cookie" not in response.headers


def test_starlettes_own_session_middleware_is_named_as_the_culprit() -> None:
    from starlette.middleware.sessions import SessionMiddleware as StarletteSessions

    app = bare_app(middleware=[Middleware(StarletteSessions, secret_key="x")])
    with TestClient(app) as client, pytest.raises(RuntimeError, match="not a coatcheck Session"):
        client.get("/peek")


def test_without_the_handlers_the_status_is_still_401() -> None:
    manager = SessionManager(MemoryStore())
    app = bare_app(middleware=[Middleware(SessionMiddleware, manager=manager)])
    with serve(app) as url, Browser(url) as browser:
        response = browser.get("/who")
        assert response.status_code == 401
        assert response.json() == {"detail": {"error": "login_required"}}

    handled = bare_app(
        middleware=[Middleware(SessionMiddleware, manager=manager)],
        exception_handlers=dict(EXCEPTION_HANDLERS),
    )
    with serve(handled) as url, Browser(url) as browser:
        assert browser.get("/who").json() == {"error": "login_required"}


def test_get_session_works_in_a_websocket_route(clock: FakeClock) -> None:
    manager = SessionManager(MemoryStore(), clock=clock)
    app = FastAPI()
    install(app, manager)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, session: CurrentSession) -> None:
        await websocket.accept()
        await websocket.send_json({"user": session.user_id, "cart": session.get("cart")})
        await websocket.close()

    with TestClient(app, base_url="https://testserver") as client:
        login_client(client, manager, "carol", data={"cart": ["scarf"]})
        # TestClient joins a relative path to ws://, where a Secure cookie never goes.
        with client.websocket_connect("wss://testserver/ws") as socket:
            assert socket.receive_json() == {"user": "carol", "cart": ["scarf"]}
