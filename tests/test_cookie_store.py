"""CookieStore over real HTTP: a Starlette app behind coatcheck.asgi.SessionMiddleware,
served by uvicorn on loopback and driven by a client that keeps cookies like a browser.

Time comes from a FakeClock shared with the server thread: expiry is tested by moving it,
never by sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import coatcheck.stores
from coatcheck import CoatcheckError, ConfigError, MemorySink, SessionConfig, SessionManager
from coatcheck.engine.clientside import COOKIE_LIMIT, HANDLE_PREFIX, revocation_key
from coatcheck.errors import CookieTooLargeError, MissingCapability, UnsupportedOperation
from coatcheck.integrations.asgi import SessionMiddleware
from coatcheck.security.sealing import derived_kid, key_id, new_key, parse_keys
from coatcheck.stores import ClientSide, CookieStore, MemoryStore, SQLiteStore, Store, from_url
from tests.support.browser import Browser, parse_set_cookie
from tests.support.clock import FakeClock
from tests.support.server import serve

COOKIE = "__Host-session"
KEY_A = new_key()
KEY_B = new_key()
KID_A = derived_kid(base64.urlsafe_b64decode(KEY_A + "="))
KID_B = derived_kid(base64.urlsafe_b64decode(KEY_B + "="))
IDLE = SessionConfig().idle_timeout
ABSOLUTE = SessionConfig().absolute_timeout
REMEMBER = SessionConfig().remember_timeout
TOUCH = SessionConfig().effective_touch_interval


# -- the app -----------------------------------------------------------------------------
def make_app(manager: SessionManager) -> Starlette:
    async def count(request: Request) -> Response:
        session = request.session
        session["n"] = session.get("n", 0) + 1
        return JSONResponse({"n": session["n"], "user": session.user_id})

    async def show(request: Request) -> Response:
        session = request.session
        return JSONResponse(
            {
                "data": dict(session),
                "user": session.user_id,
                "handle": session.handle,
                "new": session.is_new,
                "expires_at": session.expires_at,
            }
        )

    async def csrf(request: Request) -> Response:
        return PlainTextResponse(request.session.csrf_token())

    async def add_to_cart(request: Request) -> Response:
        request.session.setdefault("cart", []).append(request.path_params["item"])
        return JSONResponse({"cart": request.session["cart"]})

    async def login(request: Request) -> Response:
        remember = request.query_params.get("remember") == "1"
        request.session.login(request.path_params["user"], remember=remember)
        return JSONResponse({"user": request.session.user_id})

    async def logout(request: Request) -> Response:
        request.session.logout()
        if request.query_params.get("flash"):
            request.session["flash"] = "bye"
        return JSONResponse({"ok": True})

    async def put(request: Request) -> Response:
        size = int(request.query_params["size"])
        if request.query_params.get("kind") == "repeat":
            blob = ("coat check " * size)[:size]
        else:
            blob = secrets.token_urlsafe(size)[:size]
        request.session["blob"] = blob
        return JSONResponse({"size": len(blob)})

    async def on_error(request: Request, exc: Exception) -> Response:
        # uvicorn closes the connection after an app exception: say so, so that the
        # client does not reuse it.
        return PlainTextResponse(
            f"{type(exc).__name__}: {exc}", status_code=500, headers={"connection": "close"}
        )

    return Starlette(
        routes=[
            Route("/count", count),
            Route("/show", show),
            Route("/csrf", csrf),
            Route("/cart/{item}", add_to_cart, methods=["POST"]),
            Route("/login/{user}", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/put", put, methods=["POST"]),
        ],
        middleware=[Middleware(SessionMiddleware, manager=manager)],
        exception_handlers={Exception: on_error},
    )


def make_manager(
    keys: list[Any] | None = None,
    *,
    clock: FakeClock,
    revocations: Store | str | None = None,
    sink: MemorySink | None = None,
) -> SessionManager:
    store = CookieStore(keys or [KEY_A], revocations=revocations)
    return SessionManager(store, clock=clock, events=[sink] if sink else ())


@contextlib.contextmanager
def browse(manager: SessionManager) -> Iterator[Browser]:
    with serve(make_app(manager)) as url, Browser(url) as browser:
        yield browser


def set_cookies(response: httpx.Response) -> list[tuple[str, str, dict[str, str]]]:
    return [parse_set_cookie(v) for v in response.headers.get_list("set-cookie")]


def raw_bytes(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def reasons(sink: MemorySink) -> list[str]:
    return [e.detail.get("reason", "") for e in sink.events if e.name == "session.rejected"]


# -- basics ------------------------------------------------------------------------------
def test_counter_lives_in_an_opaque_cookie(clock: FakeClock) -> None:
    manager = make_manager(clock=clock)
    with browse(manager) as browser:
        first = browser.get("/show")
        assert first.json()["new"] is True
        assert set_cookies(first) == []  # nothing to keep, nothing sent

        values = []
        for expected in (1, 2, 3):
            response = browser.get("/count")
            assert response.json() == {"n": expected, "user": None}
            [(name, value, attrs)] = set_cookies(response)
            assert name == COOKIE
            assert {"secure", "httponly", "path"} <= attrs.keys()
            assert attrs["samesite"] == "Lax"
            assert "max-age" not in attrs  # a browser-session cookie
            assert response.headers["cache-control"] == "no-store"
            values.append(value)
        assert len(set(values)) == 3
        assert all(len(v) > 43 and key_id(v) == KID_A for v in values)

        browser.post("/cart/secret-marker-42")
        value = browser.cookies[COOKIE]
        assert "secret" not in value
        assert b"secret-marker" not in raw_bytes(value)
        assert browser.get("/show").json()["data"] == {"n": 3, "cart": ["secret-marker-42"]}


def test_read_only_requests_reseal_only_at_the_touch_interval(clock: FakeClock) -> None:
    manager = make_manager(clock=clock)
    with browse(manager) as browser:
        browser.get("/count")
        issued = browser.cookies[COOKIE]
        deadline = manager.load_sync(issued).expires_at
        clock.advance(TOUCH / 2)
        assert set_cookies(browser.get("/show")) == []
        clock.advance(TOUCH / 2)
        response = browser.get("/show")
        [(_, touched, _)] = set_cookies(response)
        assert touched != issued
        assert response.json()["expires_at"] == deadline  # rendered before the commit
        assert manager.load_sync(touched).expires_at == deadline + TOUCH
        assert browser.get("/show").json()["expires_at"] == deadline + TOUCH


def test_cart_survives_login_and_the_old_cookie_stays_anonymous(clock: FakeClock) -> None:
    sink = MemorySink()
    manager = make_manager(clock=clock, sink=sink)
    with browse(manager) as browser:
        browser.post("/cart/apple")
        browser.post("/cart/pear")
        anonymous = browser.cookies[COOKIE]
        handle = browser.get("/show").json()["handle"]

        response = browser.post("/login/alice")
        [(_, logged_in, _)] = set_cookies(response)
        assert logged_in != anonymous
        shown = browser.get("/show").json()
        assert shown["user"] == "alice"
        assert shown["data"] == {"cart": ["apple", "pear"]}
        assert shown["handle"] == handle
        assert "session.login" in sink.names()

        # A copy taken before login carries no login: fixation gains nothing.
        replay = browser.get("/show", headers={"Cookie": f"{COOKIE}={anonymous}"}).json()
        assert replay["user"] is None
        assert replay["data"] == {"cart": ["apple", "pear"]}


def test_logout_clears_the_cookie(clock: FakeClock) -> None:
    manager = make_manager(clock=clock)
    with browse(manager) as browser:
        browser.post("/login/alice")
        browser.get("/count")
        copied = browser.cookies[COOKIE]
        response = browser.post("/logout")
        [(name, value, attrs)] = set_cookies(response)
        assert (name, value, attrs["max-age"]) == (COOKIE, '""', "0")
        assert COOKIE not in browser.cookies
        assert browser.get("/show").json()["user"] is None
        # The documented limit of a pure cookie store: without a revocation store, a copy
        # taken before logout lives until the deadline sealed inside it.
        replay = browser.get("/show", headers={"Cookie": f"{COOKIE}={copied}"}).json()
        assert replay["user"] == "alice"


def test_logout_with_a_revocation_store_ends_copies(clock: FakeClock, tmp_path: Path) -> None:
    revocations = SQLiteStore(tmp_path / "revocations.db")
    sink = MemorySink()
    manager = make_manager(clock=clock, revocations=revocations, sink=sink)
    with browse(manager) as browser, Browser(browser.client.base_url) as other_device:
        browser.post("/login/alice")
        other_device.post("/login/alice")
        copied = browser.cookies[COOKIE]
        first_handle = browser.get("/show").json()["handle"]
        browser.post("/logout")
        replay = browser.get("/show", headers={"Cookie": f"{COOKIE}={copied}"}).json()
        assert replay["user"] is None and replay["new"] is True
        assert "revoked" in reasons(sink)
        # Only that session ended: the user's other device is still logged in.
        assert other_device.get("/show").json()["user"] == "alice"

        # Writing after logout starts a new anonymous session; the old one is still ended.
        browser.post("/login/alice")
        before = browser.cookies[COOKIE]
        old_handle = browser.get("/show").json()["handle"]
        response = browser.post("/logout?flash=1")
        [(_, fresh, _)] = set_cookies(response)
        shown = browser.get("/show").json()
        assert shown["user"] is None and shown["data"] == {"flash": "bye"}
        assert shown["handle"] != old_handle
        replay = browser.get("/show", headers={"Cookie": f"{COOKIE}={before}"}).json()
        assert replay["user"] is None and replay["new"] is True
        assert fresh != before

    # Ended handles are kept only until their sessions' deadlines, then pruned.
    entry = revocations.get_sync(revocation_key("alice"))
    assert entry is not None and entry.user_id is None
    assert sorted(entry.data) == sorted(HANDLE_PREFIX + h for h in (first_handle, old_handle))
    clock.advance(ABSOLUTE + 1)
    session = manager.load_sync(None)
    session.login("alice")
    token = manager.commit_sync(session).token
    later = manager.load_sync(token)
    later.logout()
    manager.commit_sync(later)
    entry = revocations.get_sync(revocation_key("alice"))
    assert entry is not None
    assert list(entry.data) == [HANDLE_PREFIX + str(later.handle)]
    # No cookie value ever reaches the revocation store.
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("revocations.db*"))
    assert copied[-40:].encode() not in stored and before[-40:].encode() not in stored
    revocations.close_sync()


# -- hostile cookies ---------------------------------------------------------------------
def _flip(value: str, index: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    replacement = alphabet[(alphabet.index(value[index]) + 1) % 64]
    return value[:index] + replacement + value[index + 1 :]


def test_tampered_truncated_and_garbage_cookies_give_fresh_sessions(clock: FakeClock) -> None:
    sink = MemorySink()
    manager = make_manager(clock=clock, sink=sink)
    with browse(manager) as browser:
        for _ in range(5):
            browser.get("/count")
        good = browser.cookies[COOKIE]
        n = len(good)
        hostile = {
            "version byte": _flip(good, 0),
            "key id": _flip(good, 3),
            "random": _flip(good, 12),
            "ciphertext": _flip(good, n // 2),
            "tag": _flip(good, n - 2),
            "last character": _flip(good, n - 1),
            "truncated by one": good[:-1],
            "truncated by four": good[:-4],
            "half": good[: n // 2],
            "extended": good + "A",
            "doubled": good + good,
            "empty": "",
            "padding added": good + "==",
            "non-alphabet": good[:10] + "!" + good[11:],
            "a server-side token": secrets.token_urlsafe(32),
            "oversized": "A" * 10_000,
        }
        for label, value in hostile.items():
            response = browser.get("/count", headers={"Cookie": f"{COOKIE}={value}"})
            assert response.status_code == 200, label
            assert response.json()["n"] == 1, label
        assert browser.get("/count", headers={"Cookie": f"{COOKIE}={good}"}).json()["n"] == 6
        assert {"malformed", "invalid", "unknown_key"} <= set(reasons(sink))

    # A value of any size is refused on its length, before any decoding: O(1).
    huge = "A" * 50_000_000
    started = time.perf_counter()
    assert manager.load_sync(huge).is_new
    assert time.perf_counter() - started < 0.02


HOSTILE_ALPHABET = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=";")
B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/."


def test_arbitrary_cookie_strings_never_break_a_request(clock: FakeClock) -> None:
    manager = make_manager(clock=clock)
    with serve(make_app(manager)) as url, httpx.Client(base_url=url) as client:

        @settings(max_examples=250, deadline=None)
        @given(st.text(HOSTILE_ALPHABET, max_size=5000))
        def property_holds(value: str) -> None:
            response = client.get("/count", headers={"Cookie": f"{COOKIE}={value}"})
            assert response.status_code == 200
            assert response.json()["n"] == 1

        property_holds()


def test_every_mutation_of_a_valid_cookie_is_rejected(clock: FakeClock) -> None:
    manager = make_manager(clock=clock)
    with browse(manager) as browser:
        for _ in range(3):
            browser.get("/count")
        good = browser.cookies[COOKIE]
        client = browser.client

        @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(st.data())
        def property_holds(data: st.DataObject) -> None:
            value = good
            for _ in range(data.draw(st.integers(1, 3))):
                index = data.draw(st.integers(0, len(value)))
                kind = data.draw(st.sampled_from(["replace", "delete", "insert", "cut"]))
                char = data.draw(st.sampled_from(B64_ALPHABET))
                if kind == "replace" and index < len(value):
                    value = value[:index] + char + value[index + 1 :]
                elif kind == "delete":
                    value = value[:index] + value[index + 1 :]
                elif kind == "insert":
                    value = value[:index] + char + value[index:]
                else:
                    value = value[:index]
            response = client.get("/count", headers={"Cookie": f"{COOKIE}={value}"})
            assert response.status_code == 200
            assert response.json()["n"] == (4 if value == good else 1)

        property_holds()


# -- keys --------------------------------------------------------------------------------
def test_a_cookie_sealed_under_another_key_gives_a_fresh_session(clock: FakeClock) -> None:
    sink = MemorySink()
    foreign = make_manager([KEY_B], clock=clock)
    session = foreign.load_sync(None)
    session.login("mallory")
    sealed = foreign.commit_sync(session).token
    assert sealed is not None
    # Same key id, different secret: authentication fails.
    impostor = make_manager([("main", KEY_B)], clock=clock)
    session = impostor.load_sync(None)
    session.login("mallory")
    same_kid = impostor.commit_sync(session).token
    assert same_kid is not None and key_id(same_kid) == "main"

    manager = make_manager([("main", KEY_A)], clock=clock, sink=sink)
    with browse(manager) as browser:
        for value in (sealed, same_kid):
            shown = browser.get("/show", headers={"Cookie": f"{COOKIE}={value}"}).json()
            assert shown["user"] is None and shown["new"] is True
    assert reasons(sink) == ["unknown_key", "invalid"]


def test_key_rotation_keeps_everyone_logged_in(clock: FakeClock) -> None:
    sink = MemorySink()
    phases = {
        "before": [KEY_A],
        "new key added second": [KEY_A, KEY_B],
        "new key promoted": [KEY_B, KEY_A],
        "old key retired": [KEY_B],
    }
    managers = {name: make_manager(keys, clock=clock, sink=sink) for name, keys in phases.items()}
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(serve(make_app(m))) for name, m in managers.items()}
        browser = stack.enter_context(Browser(urls["before"]))

        browser.post("/login/alice")
        browser.post("/cart/apple")
        sealed_with_a = browser.cookies[COOKIE]
        assert key_id(sealed_with_a) == KID_A

        browser.client.base_url = httpx.URL(urls["new key added second"])
        assert browser.get("/show").json()["user"] == "alice"
        browser.post("/cart/pear")
        assert key_id(browser.cookies[COOKIE]) == KID_A  # the primary still writes

        browser.client.base_url = httpx.URL(urls["new key promoted"])
        assert browser.get("/show").json()["data"] == {"cart": ["apple", "pear"]}
        browser.post("/cart/plum")
        sealed_with_b = browser.cookies[COOKIE]
        assert key_id(sealed_with_b) == KID_B  # new writes move to the new primary
        old = browser.get("/show", headers={"Cookie": f"{COOKIE}={sealed_with_a}"}).json()
        assert old["user"] == "alice"  # and the old key still reads

        browser.client.base_url = httpx.URL(urls["old key retired"])
        shown = browser.get("/show").json()
        assert shown["user"] == "alice"
        assert shown["data"] == {"cart": ["apple", "pear", "plum"]}
        old = browser.get("/show", headers={"Cookie": f"{COOKIE}={sealed_with_a}"}).json()
        assert old["user"] is None
    assert reasons(sink) == ["unknown_key"]


def test_key_configuration_is_checked_without_echoing_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = parse_keys(f" old:{KEY_A} , {KEY_B} ")
    assert [k.kid for k in keys] == ["old", KID_B]
    short = base64.urlsafe_b64encode(b"x" * 16).decode()
    for bad, message in [
        (short, "16 bytes"),
        ("not base64!", "not base64url"),
        (f"a:{KEY_A},a:{KEY_B}", "share the key id"),
        (f"a:{KEY_A},b:{KEY_A}", "twice"),
        (f"bad id:{KEY_A}", "key id"),
    ]:
        with pytest.raises(ConfigError, match=message) as caught:
            CookieStore(parse_keys(bad))
        assert KEY_A not in str(caught.value) and short not in str(caught.value)
    with pytest.raises(ConfigError, match="at least one key"):
        CookieStore([])

    monkeypatch.delenv("COATCHECK_COOKIE_KEYS", raising=False)
    with pytest.raises(ConfigError, match="COATCHECK_COOKIE_KEYS"):
        from_url("cookie://")
    monkeypatch.setenv("COATCHECK_COOKIE_KEYS", f"new:{KEY_B},old:{KEY_A}")
    store = from_url("cookie://")
    assert isinstance(store, CookieStore)
    assert [k.kid for k in store.ring.keys] == ["new", "old"]
    assert store.revocations is None
    assert KEY_A not in repr(store) and KEY_B not in repr(store)
    with pytest.raises(ConfigError, match="no host"):
        from_url("cookie://keys.example")
    with pytest.raises(ConfigError, match="unknown cookie URL options"):
        from_url("cookie://?compress=0")


# -- size --------------------------------------------------------------------------------
def test_a_session_over_4096_bytes_fails_at_commit_naming_the_size(clock: FakeClock) -> None:
    manager = make_manager(clock=clock)
    with browse(manager) as browser:
        browser.get("/count")
        browser.render()  # the page with the form: its CSRF secret is sealed in now
        before = browser.cookies[COOKIE]
        response = browser.post("/put?size=8000")
        assert response.status_code == 500
        assert response.text.startswith("CookieTooLargeError: the session cookie would be ")
        size = int(response.text.split("would be ")[1].split(" ")[0])
        assert size > COOKIE_LIMIT
        assert "4096" in response.text
        assert set_cookies(response) == []  # never truncated, never split
        assert browser.cookies == {COOKIE: before}
        assert browser.get("/count").json()["n"] == 2  # the previous session stands

        # Compression when it helps: 20 000 repetitive characters fit.
        response = browser.post("/put?size=20000&kind=repeat")
        assert response.status_code == 200
        value = browser.cookies[COOKIE]
        assert len(COOKIE) + len(value) < 2000
        assert len(browser.get("/show").json()["data"]["blob"]) == 20000


def test_the_size_limit_is_exact(clock: FakeClock) -> None:
    manager = make_manager(clock=clock)
    fits: list[int] = []
    refused: list[CookieTooLargeError] = []
    for size in range(3600, 4400, 9):
        session = manager.load_sync(None)
        session["blob"] = secrets.token_urlsafe(size)[:size]
        try:
            result = manager.commit_sync(session)
        except CookieTooLargeError as exc:
            refused.append(exc)
        else:
            assert result.token is not None
            fits.append(len(COOKIE) + len(result.token))
    assert fits and refused
    assert max(fits) <= COOKIE_LIMIT
    assert all(exc.size > COOKIE_LIMIT and f"{exc.size} bytes" in str(exc) for exc in refused)
    assert all(isinstance(exc, CoatcheckError) and isinstance(exc, TypeError) for exc in refused)


# -- revocation --------------------------------------------------------------------------
def test_revoke_user_ends_every_session_logged_in_before(
    clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COATCHECK_COOKIE_KEYS", f"a:{KEY_A}")
    url = "cookie://?revocations=" + quote(f"sqlite:///{tmp_path / 'rev.db'}", safe="")
    store = from_url(url)
    assert isinstance(store, CookieStore) and isinstance(store.revocations, SQLiteStore)
    sink = MemorySink()
    manager = SessionManager(store, clock=clock, events=[sink])
    with (
        serve(make_app(manager)) as base,
        Browser(base) as laptop,
        Browser(base) as phone,
        Browser(base) as bob,
        Browser(base) as anonymous,
    ):
        laptop.post("/login/alice")
        phone.post("/login/alice")
        bob.post("/login/bob")
        anonymous.post("/cart/apple")
        laptop_cookie = laptop.cookies[COOKIE]
        phone_handle = phone.get("/show").json()["handle"]

        clock.advance(1)
        assert manager.revoke_user_sync("alice", except_handle=phone_handle) == 0
        assert laptop.get("/show").json()["user"] is None
        assert phone.get("/show").json()["user"] == "alice"  # the one spared
        assert bob.get("/show").json()["user"] == "bob"
        assert anonymous.get("/show").json()["data"] == {"cart": ["apple"]}

        clock.advance(1)
        asyncio.run(manager.revoke_user("alice"))  # the async path, all of them
        assert phone.get("/show").json()["user"] is None

        clock.advance(1)
        laptop.post("/login/alice")  # logging in again after the revocation works
        clock.advance(TOUCH)
        assert laptop.get("/show").json()["user"] == "alice"
        replay = laptop.get("/show", headers={"Cookie": f"{COOKIE}={laptop_cookie}"}).json()
        assert replay["user"] is None
    # Laptop at its next request, which also cleared its cookie (so it logged in again
    # without it); phone; the replayed copy.
    assert reasons(sink).count("revoked") == 3
    assert [e.detail["kept"] for e in sink.events if e.name == "session.revoked"] == [
        phone_handle,
        None,
    ]

    # The revocation record outlives every session it could end, then is purged.
    entry = store.revocations.get_sync(revocation_key("alice"))
    assert entry is not None and entry.user_id is None
    assert entry.data["not_before"] == clock.now - 1 - TOUCH
    clock.advance(REMEMBER + 1)
    assert manager.purge_expired_sync() == 1
    assert store.revocations.get_sync(revocation_key("alice")) is None
    manager.store.close_sync()


def test_what_a_cookie_store_cannot_do_raises_clearly(clock: FakeClock) -> None:
    """The store refuses nothing (it has no method that could); the manager refuses what
    the store's type does not declare, naming the capability."""
    manager = make_manager(clock=clock)
    session = manager.load_sync(None)
    session.login("alice")
    token = manager.commit_sync(session).token
    handle = manager.load_sync(token).handle
    assert handle is not None
    for call, capability, operation in (
        (lambda: manager.list_user_sessions_sync("alice"), "UserIndex", "list_user_sessions"),
        (lambda: manager.revoke_sync(handle), "HandleIndex", "revoke"),
        (lambda: asyncio.run(manager.is_active(handle)), "HandleIndex", "is_active"),
        (lambda: manager.is_active_sync(handle), "HandleIndex", "is_active"),
        (
            lambda: asyncio.run(manager.list_user_sessions("alice")),
            "UserIndex",
            "list_user_sessions",
        ),
        # No revocation store configured:
        (lambda: manager.revoke_user_sync("alice"), "ClientSide.revocations", "revoke_user"),
        (
            lambda: asyncio.run(manager.revoke_user("alice")),
            "ClientSide.revocations",
            "revoke_user",
        ),
    ):
        with pytest.raises(MissingCapability) as caught:
            call()
        error = caught.value
        assert (error.capability, error.operation, error.store) == (
            capability,
            operation,
            "CookieStore",
        )
        assert f"{operation} needs a store with the {capability} capability" in str(error)
        assert isinstance(error, UnsupportedOperation)
        assert isinstance(error, NotImplementedError)
        assert isinstance(error, CoatcheckError)
    assert manager.purge_expired_sync() == 0  # Purgeable: nothing to purge without revocations
    assert asyncio.run(manager.purge_expired()) == 0
    assert manager.load_sync(token).user_id == "alice"  # and the manager still works


def test_a_setting_the_cookie_store_cannot_honour_is_refused_at_startup(
    clock: FakeClock,
) -> None:
    """``max_sessions_per_user`` needs a user index on every login: refused when the
    manager is built, not at the first login (where it was once silently ignored)."""
    with pytest.raises(MissingCapability) as caught:
        SessionManager(CookieStore([KEY_A]), SessionConfig(max_sessions_per_user=3), clock=clock)
    assert (caught.value.capability, caught.value.operation) == (
        "UserIndex",
        "max_sessions_per_user",
    )
    # Rotation needs no handle index here: every re-seal is a new cookie already.
    SessionManager(CookieStore([KEY_A]), SessionConfig(rotation_interval=600), clock=clock)


# -- time --------------------------------------------------------------------------------
def test_idle_and_absolute_deadlines_are_enforced_from_the_payload(clock: FakeClock) -> None:
    sink = MemorySink()
    manager = make_manager(clock=clock, sink=sink)
    with browse(manager) as browser:
        browser.post("/login/alice")
        clock.advance(IDLE - 1)
        assert browser.get("/show").json()["user"] == "alice"
        clock.advance(IDLE)  # the touch above extended the idle deadline by IDLE
        assert browser.get("/show").json()["user"] is None

        browser.post("/login/alice")
        started = clock.now
        while clock.now - started < ABSOLUTE - IDLE / 2:
            clock.advance(IDLE / 2)
            assert browser.get("/count").json()["user"] == "alice"
        clock.advance(IDLE / 2)
        assert browser.get("/show").json()["user"] is None  # busy, but absolutely over
    expired = [e.detail["reason"] for e in sink.events if e.name == "session.expired"]
    # Each dead cookie is presented once: the response to it clears it.
    assert expired == ["idle_expired", "absolute_expired"]


def test_a_replayed_cookie_dies_at_its_own_deadline(clock: FakeClock) -> None:
    manager = make_manager(clock=clock)
    with browse(manager) as browser:
        browser.post("/login/alice")
        early = browser.cookies[COOKIE]
        for _ in range(4):
            clock.advance(IDLE / 2)
            browser.get("/count")
        assert browser.cookies[COOKIE] != early
        # Replayed from elsewhere (the raw client: this browser's jar stays as it is).
        replay = browser.client.get("/show", headers={"Cookie": f"{COOKIE}={early}"})
        assert replay.json()["user"] is None and replay.json()["new"] is True
        assert "Max-Age=0" in replay.headers["set-cookie"]  # the copy is told to go
        assert browser.get("/show").json()["user"] == "alice"


def test_remember_me_has_no_idle_limit_and_a_persistent_cookie(clock: FakeClock) -> None:
    manager = make_manager(clock=clock)
    with browse(manager) as browser:
        response = browser.post("/login/alice?remember=1")
        [(_, _, attrs)] = set_cookies(response)
        assert int(attrs["max-age"]) == REMEMBER
        clock.advance(3 * 86400)  # far past the idle timeout
        response = browser.get("/count")
        assert response.json()["user"] == "alice"
        [(_, _, attrs)] = set_cookies(response)
        assert int(attrs["max-age"]) == REMEMBER - 3 * 86400  # re-seals stay persistent
        clock.advance(REMEMBER - 3 * 86400)
        assert browser.get("/show").json()["user"] is None


# -- transports and packaging ------------------------------------------------------------
def test_bearer_clients_carry_the_sealed_session_in_a_header(clock: FakeClock) -> None:
    manager = make_manager(clock=clock)
    with serve(make_app(manager)) as url, httpx.Client(base_url=url) as client:
        response = client.post("/login/alice", headers={"X-Session-Transport": "bearer"})
        token = response.headers["x-session-token"]
        assert "set-cookie" not in response.headers
        response = client.get("/count", headers={"Authorization": f"Bearer {token}"})
        assert response.json() == {"n": 1, "user": "alice"}
        token = response.headers["x-session-token"]
        response = client.get("/count", headers={"Authorization": f"Bearer {token}"})
        assert response.json() == {"n": 2, "user": "alice"}


def test_import_coatcheck_stores_works_without_cryptography() -> None:
    code = """
import sys
sys.modules["cryptography"] = None  # as if it were not installed
import coatcheck.stores
assert coatcheck.stores.MemoryStore().count_sync(0) == 0
for attempt in (lambda: coatcheck.stores.CookieStore,
                lambda: coatcheck.stores.from_url("cookie://")):
    try:
        attempt()
    except ImportError as exc:
        assert "coatcheck[cookie]" in str(exc), exc
    else:
        raise SystemExit("CookieStore imported without cryptography")
print("ok")
"""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "COATCHECK_COOKIE_KEYS": KEY_A}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert coatcheck.stores.CookieStore is CookieStore
    assert isinstance(CookieStore([KEY_A]), ClientSide)
    assert not isinstance(CookieStore([KEY_A]), Store)  # it keeps no records
    assert not isinstance(MemoryStore(), CookieStore)


def test_the_payload_is_compact_json_behind_the_seal(clock: FakeClock) -> None:
    store = CookieStore([KEY_A])
    manager = SessionManager(store, clock=clock)
    session = manager.load_sync(None)
    session["n"] = 1
    session.login("alice")
    value = manager.commit_sync(session).token
    assert value is not None
    plain = store.ring.unseal(value)
    head, _, body = plain[1:].partition(b"\x00")
    assert plain[0] == 0  # small data is not worth deflating
    assert json.loads(body) == {"n": 1}
    assert json.loads(head)[5] == "alice"
    assert len(COOKIE) + len(value) < 300


# -- atomic operations: applied to the cookie's own copy ---------------------------------
def test_atomic_operations_apply_to_the_cookie_but_cannot_merge_concurrent_requests(
    clock: FakeClock,
) -> None:
    """``incr``, ``append`` and ``add_to_set`` work on a cookie store (the new cookie
    holds their result), but the session lives in the cookie: two requests that started
    from the same cookie each answer a cookie of their own, and the browser keeps the
    last one, so a cookie store cannot merge them (a server-side store does)."""
    manager = make_manager(clock=clock)
    first = manager.load_sync(None)
    first.append("cart", "hat")
    token = manager.commit_sync(first).token
    assert token is not None

    again = manager.load_sync(token)
    assert again.incr("visits") == 1
    again.append("cart", "scarf")
    again.add_to_set("tags", "new")
    again.add_to_set("tags", "new")
    token = manager.commit_sync(again).token
    assert token is not None
    assert dict(manager.load_sync(token)) == {
        "cart": ["hat", "scarf"],
        "visits": 1,
        "tags": ["new"],
    }

    a, b = manager.load_sync(token), manager.load_sync(token)
    a.append("cart", "gloves")
    b.append("cart", "boots")
    token_a, token_b = manager.commit_sync(a).token, manager.commit_sync(b).token
    assert token_a is not None and token_b is not None
    assert manager.load_sync(token_b)["cart"] == ["hat", "scarf", "boots"]  # no "gloves"
