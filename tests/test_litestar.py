"""Litestar with ``coatcheck.asgi.SessionMiddleware``, over real HTTP (uvicorn on loopback).

The app under test is examples/litestar_app.py with a real SQLite store and a FakeClock.
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

from coatcheck import MemorySink, SessionConfig, SessionManager
from coatcheck.core import tokens
from coatcheck.stores import SQLiteStore
from tests.support.browser import Browser, parse_set_cookie
from tests.support.clock import FakeClock
from tests.support.server import serve

COOKIE = "__Host-session"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "litestar_app.py"
IDLE = 600.0


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("litestar_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # Litestar resolves the handlers' annotations through it
    spec.loader.exec_module(module)
    return module


@dataclass
class Site:
    url: str
    store: SQLiteStore
    clock: FakeClock
    sink: MemorySink

    def record(self, token: str) -> Any:
        return self.store.get_sync(tokens.storage_key(token))


@pytest.fixture
def site(tmp_path: Path, clock: FakeClock) -> Iterator[Site]:
    store = SQLiteStore(tmp_path / "sessions.db")
    sink = MemorySink()
    manager = SessionManager(store, SessionConfig(idle_timeout=IDLE), clock=clock, events=[sink])
    try:
        with serve(load_example().create_app(manager)) as url:
            yield Site(url, store, clock, sink)
    finally:
        store.close_sync()


CSRF = "X-CSRF-Token"


def arm(browser: Browser) -> str:
    """What the front end does first: fetch a CSRF token for its unsafe requests."""
    token: str = browser.get("/csrf").json()["csrf_token"]
    browser.client.headers[CSRF] = token
    return token


def log_in(browser: Browser, user: str, password: str) -> Any:
    if CSRF not in browser.client.headers:
        arm(browser)
    response = browser.post("/login", json={"username": user, "password": password})
    if response.status_code != 200:
        return response
    body = response.json()
    browser.client.headers[CSRF] = body.pop("csrf_token")  # login replaced the secret
    return body


def test_the_counter_is_kept_per_browser(site: Site) -> None:
    with Browser(site.url) as browser:
        first = browser.get("/")
        assert first.json() == {"visits": 1, "user": None, "cart": []}
        raw = [v for v in first.headers.get_list("set-cookie") if v.startswith(COOKIE)]
        assert len(raw) == 1
        _, token, attrs = parse_set_cookie(raw[0])
        assert {"secure", "httponly"} <= attrs.keys() and attrs["samesite"].lower() == "lax"
        assert tokens.is_well_formed(token)
        assert [browser.get("/").json()["visits"] for _ in range(3)] == [2, 3, 4]
        assert site.record(token).data == {"visits": 4}
    with Browser(site.url) as other:
        assert other.get("/").json()["visits"] == 1


def test_login_keeps_the_cart_under_a_new_token(site: Site) -> None:
    with Browser(site.url) as browser:
        arm(browser)
        browser.post("/cart", json={"item": "tea"})
        assert browser.post("/cart", json={"item": "scarf"}).json() == {"cart": ["tea", "scarf"]}
        anonymous = browser.cookies[COOKIE]
        assert browser.get("/account").status_code == 401

        body = log_in(browser, "alice", "wonderland")
        assert body == {"user": "alice", "cart": ["tea", "scarf"]}
        token = browser.cookies[COOKIE]
        assert token != anonymous
        assert site.record(anonymous) is None
        assert site.record(token).user_id == "alice"
        assert site.record(token).auth_at == site.clock.now
        assert browser.get("/account").json() == {"user": "alice", "cart": ["tea", "scarf"]}
        assert "session.login" in site.sink.names()

    with Browser(site.url) as replay:
        replay.cookies[COOKIE] = anonymous
        assert replay.get("/account").status_code == 401


def test_logout_ends_the_session(site: Site) -> None:
    with Browser(site.url) as browser:
        log_in(browser, "bob", "builder")
        token = browser.cookies[COOKIE]
        assert browser.post("/logout").json() == {"user": None}
        assert COOKIE not in browser.cookies  # the cookie was cleared (Max-Age=0)
        assert site.record(token) is None
        assert browser.get("/account").status_code == 401

    with Browser(site.url) as replay:
        replay.cookies[COOKIE] = token
        assert replay.get("/account").status_code == 401


def test_wrong_password_and_idle_timeout(site: Site) -> None:
    with Browser(site.url, csrf_path=None) as browser:  # no automatic token: we show the flow
        refused = browser.post("/login", json={"username": "bob", "password": "builder"})
        assert refused.status_code == 403 and "CSRF" in refused.text  # no token yet
        assert COOKIE not in browser.cookies  # and nothing stored for it

        arm(browser)
        anonymous = browser.cookies[COOKIE]
        bad = log_in(browser, "bob", "nope")
        assert bad.status_code == 403 and "wrong" in bad.text
        assert browser.cookies[COOKIE] == anonymous  # a failed login changes nothing

        log_in(browser, "bob", "builder")
        site.clock.advance(IDLE - 1)
        assert browser.get("/account").status_code == 200
        site.clock.advance(IDLE + 1)
        assert browser.get("/account").status_code == 401
