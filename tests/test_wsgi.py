"""The sync path through a bare WSGI app, served over real HTTP by the stdlib WSGI server.

Each test drives ``coatcheck.wsgi.SessionMiddleware`` with a real SQLite store and a
browser-like client; store failures are real SQLite locks held by another connection.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from coatcheck import SessionConfig, SessionManager
from coatcheck.core import tokens
from coatcheck.http.refusals import UNAVAILABLE_BODY
from coatcheck.integrations.asgi import SessionMiddleware as ASGISessionMiddleware
from coatcheck.integrations.wsgi import ENVIRON_KEY, SessionMiddleware, get_session
from coatcheck.stores import SQLiteStore
from tests.support.browser import Browser
from tests.support.clock import FakeClock
from tests.support.server import serve
from tests.support.wsgi_server import serve_wsgi

COOKIE = "__Host-session"


def _state(session: Any) -> dict[str, Any]:
    return {"data": dict(session), "user_id": session.user_id, "new": session.is_new}


class Shop:
    """A bare WSGI app: every route reads or changes the session, answers its state as JSON."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.calls += 1
        session = get_session(environ)
        path = environ["PATH_INFO"]
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        headers = [("Content-Type", "application/json")]
        if "cache" in query:
            headers.append(("Cache-Control", "public, max-age=600"))
        if path == "/count":
            session["count"] = session.get("count", 0) + 1
        elif path == "/cart/add":
            session.setdefault("cart", []).append(query["item"])  # in-place mutation
        elif path == "/login":
            session.login(query["user"], remember=query.get("remember") == "1")
        elif path == "/logout":
            session.logout()
            if "flash" in query:
                session["flash"] = query["flash"]
        elif path == "/cached":
            headers.append(("Cache-Control", "private, max-age=60"))
        elif path == "/lazy":
            return self._lazy(session, start_response, query)
        elif path == "/legacy-write":
            session["legacy"] = True
            write = start_response("200 OK", [("Content-Type", "text/plain")])
            write(b"written ")
            return [b"and returned"]
        body = json.dumps(_state(session)).encode()
        start_response("200 OK", headers)
        return [body]

    @staticmethod
    def _lazy(session: Any, start_response: Any, query: dict[str, str]) -> Iterator[bytes]:
        """A generator body: start_response (and so the commit) runs only when iterated."""
        session["lazy"] = query.get("value", "yes")
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"lazy "
        yield b"body"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "sessions.db", timeout=0.1)
    yield store
    store.close_sync()


@pytest.fixture
def manager(store: SQLiteStore, clock: FakeClock) -> SessionManager:
    return SessionManager(store, SessionConfig(), clock=clock)


@pytest.fixture
def shop() -> Shop:
    return Shop()


@pytest.fixture
def browser(shop: Shop, manager: SessionManager) -> Iterator[Browser]:
    with serve_wsgi(SessionMiddleware(shop, manager=manager)) as url, Browser(url) as b:
        yield b


def _record(store: SQLiteStore, token: str) -> Any:
    return store.get_sync(tokens.storage_key(token))


@contextlib.contextmanager
def _writer_lock(path: str) -> Iterator[None]:
    """Another connection holds the write lock: reads still work (WAL), writes time out."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


@contextlib.contextmanager
def _total_lock(store: SQLiteStore) -> Iterator[None]:
    """Another connection takes the file in exclusive locking mode: even reads time out."""
    store.close_sync()  # drop the store's connections so the exclusive lock can be taken
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("PRAGMA locking_mode = EXCLUSIVE")
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def test_untouched_request_writes_nothing_and_sets_no_cookie(
    browser: Browser, store: SQLiteStore, clock: FakeClock
) -> None:
    response = browser.get("/")
    assert response.status_code == 200
    assert response.json() == {"data": {}, "user_id": None, "new": True}
    assert "set-cookie" not in response.headers
    assert "cache-control" not in response.headers
    assert store.count_sync(clock()) == 0

    browser.get("/count")
    token = browser.cookies[COOKIE]
    before = _record(store, token)
    clock.advance(60)  # well inside the touch interval (a tenth of the idle timeout)
    response = browser.get("/")
    assert response.json()["data"] == {"count": 1}
    assert response.json()["new"] is False
    assert "set-cookie" not in response.headers
    assert _record(store, token).last_seen_at == before.last_seen_at


def test_write_sets_a_secure_host_cookie_and_persists(browser: Browser) -> None:
    response = browser.get("/count")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for attribute in ("Path=/", "Secure", "HttpOnly", "SameSite=Lax"):
        assert attribute in cookie
    assert "Max-Age" not in cookie  # a browser-session cookie
    assert response.headers["cache-control"] == "no-store"
    assert browser.get("/count").json()["data"] == {"count": 2}
    assert browser.get("/").json()["data"] == {"count": 2}


def test_login_keeps_the_cart_and_rotates_the_token(browser: Browser, store: SQLiteStore) -> None:
    browser.get("/cart/add?item=tea")
    browser.get("/cart/add?item=mug")
    anonymous = browser.cookies[COOKIE]
    assert browser.get("/").json()["data"] == {"cart": ["tea", "mug"]}

    response = browser.get("/login?user=alice")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    logged_in = browser.cookies[COOKIE]
    assert logged_in != anonymous
    state = browser.get("/").json()
    assert state == {"data": {"cart": ["tea", "mug"]}, "user_id": "alice", "new": False}

    # The pre-login token opens nothing any more (session fixation).
    assert _record(store, anonymous) is None
    old = browser.get("/", headers={"Cookie": f"{COOKIE}={anonymous}"})
    assert old.json() == {"data": {}, "user_id": None, "new": True}


def test_remember_me_login_sets_a_persistent_cookie(browser: Browser) -> None:
    cookie = browser.get("/login?user=alice&remember=1").headers["set-cookie"]
    assert f"Max-Age={30 * 24 * 3600}" in cookie


def test_logout_deletes_the_session_and_clears_the_cookie(
    browser: Browser, store: SQLiteStore, clock: FakeClock
) -> None:
    browser.get("/login?user=alice")
    token = browser.cookies[COOKIE]
    response = browser.get("/logout")
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert response.headers["cache-control"] == "no-store"
    assert COOKIE not in browser.cookies
    assert _record(store, token) is None
    assert store.count_sync(clock()) == 0
    assert browser.get("/").json() == {"data": {}, "user_id": None, "new": True}

    # Data written after logout starts a new anonymous session (a flash message).
    browser.get("/login?user=bob")
    response = browser.get("/logout?flash=bye")
    assert "Max-Age=0" not in response.headers["set-cookie"]
    assert browser.get("/").json() == {"data": {"flash": "bye"}, "user_id": None, "new": False}


def test_idle_timeout_ends_the_session(
    browser: Browser, manager: SessionManager, clock: FakeClock
) -> None:
    browser.get("/count")
    clock.advance(manager.config.idle_timeout - 1)
    assert browser.get("/").json()["data"] == {"count": 1}  # touched: deadline moves
    clock.advance(manager.config.idle_timeout - 1)
    assert browser.get("/").json()["data"] == {"count": 1}
    clock.advance(manager.config.idle_timeout + 1)
    state = browser.get("/").json()
    assert state == {"data": {}, "user_id": None, "new": True}
    assert browser.get("/count").json()["data"] == {"count": 1}  # a fresh session


def test_absolute_timeout_ends_even_a_busy_session(
    browser: Browser, manager: SessionManager, clock: FakeClock
) -> None:
    browser.get("/login?user=alice")
    step = manager.config.idle_timeout / 2
    elapsed = 0.0
    while elapsed + step < manager.config.absolute_timeout:
        clock.advance(step)
        elapsed += step
        assert browser.get("/count").json()["user_id"] == "alice"
    clock.advance(step)
    assert browser.get("/").json()["user_id"] is None


def test_malformed_or_unknown_cookie_gives_a_fresh_session(
    browser: Browser, store: SQLiteStore, clock: FakeClock
) -> None:
    for bad in ("garbage", "x" * 5000, "A" * 43, '"quoted"'):
        response = browser.get("/", headers={"Cookie": f"{COOKIE}={bad}"})
        assert response.status_code == 200
        assert response.json() == {"data": {}, "user_id": None, "new": True}
        # Nothing stored; the dead cookie is cleared so it is not sent again.
        assert response.headers["set-cookie"].startswith(f'{COOKIE}=""; ')
        assert "Max-Age=0" in response.headers["set-cookie"]
    response = browser.get("/count", headers={"Cookie": f"{COOKIE}=garbage"})
    issued = browser.cookies[COOKIE]
    assert issued != "garbage" and tokens.is_well_formed(issued)  # never adopted
    assert store.count_sync(clock()) == 1


def test_commit_failure_after_start_response_is_a_plain_503(
    browser: Browser, store: SQLiteStore, shop: Shop
) -> None:
    browser.get("/count")
    token = browser.cookies[COOKIE]
    with _writer_lock(store.path):
        response = browser.get("/count")  # load reads fine; the commit cannot write
        assert shop.calls == 2  # the app ran and called start_response with a 200
        assert response.status_code == 503
        assert response.content == UNAVAILABLE_BODY
        assert response.headers["content-type"].startswith("text/plain")
        assert response.headers["retry-after"] == "5"
        assert response.headers["cache-control"] == "no-store"
        assert "set-cookie" not in response.headers
        assert b"Traceback" not in response.content

        lazy = browser.get("/lazy")  # start_response only once the body is iterated
        assert lazy.status_code == 503
        assert lazy.content == UNAVAILABLE_BODY

        login = browser.get("/login?user=alice")
        assert login.status_code == 503
        assert browser.cookies[COOKIE] == token  # no token was issued
    # Nothing was lost or overwritten: the store is back, the session is as it was.
    assert browser.get("/").json() == {"data": {"count": 1}, "user_id": None, "new": False}
    assert browser.get("/count").json()["data"] == {"count": 2}


def test_load_failure_is_a_503_and_the_app_never_runs(
    browser: Browser, store: SQLiteStore, shop: Shop
) -> None:
    browser.get("/count")
    calls = shop.calls
    with _total_lock(store):
        for path in ("/", "/count"):
            response = browser.get(path)
            assert response.status_code == 503
            assert response.content == UNAVAILABLE_BODY
            assert "set-cookie" not in response.headers
        assert shop.calls == calls
    assert browser.get("/").json()["data"] == {"count": 1}


def test_generator_body_commits_when_start_response_runs(browser: Browser) -> None:
    response = browser.get("/lazy?value=streamed")
    assert response.status_code == 200
    assert response.text == "lazy body"
    assert COOKIE in browser.cookies
    assert browser.get("/").json()["data"] == {"lazy": "streamed"}


def test_legacy_write_callable(browser: Browser) -> None:
    response = browser.get("/legacy-write")
    assert response.text == "written and returned"
    assert COOKIE in browser.cookies
    assert browser.get("/").json()["data"] == {"legacy": True}


def test_bearer_clients_get_their_token_in_a_header(browser: Browser) -> None:
    response = browser.get("/count", headers={"X-Session-Transport": "bearer"})
    assert "set-cookie" not in response.headers
    token = response.headers["x-session-token"]
    assert tokens.is_well_formed(token)
    auth = {"Authorization": f"Bearer {token}"}
    assert browser.get("/count", headers=auth).json()["data"] == {"count": 2}

    login = browser.get("/login?user=alice", headers=auth)
    new_token = login.headers["x-session-token"]
    assert new_token != token and "set-cookie" not in login.headers
    state = browser.get("/", headers={"Authorization": f"Bearer {new_token}"}).json()
    assert state["user_id"] == "alice" and state["data"] == {"count": 2}
    assert browser.get("/", headers=auth).json()["new"] is True  # the old token is dead


def test_cache_control_rules(browser: Browser) -> None:
    # Anonymous: the app decides alone, except on responses that carry a new token.
    assert "cache-control" not in browser.get("/").headers
    assert browser.get("/cached").headers["cache-control"] == "private, max-age=60"
    assert browser.get("/count").headers["cache-control"] == "no-store"
    assert "cache-control" not in browser.get("/").headers
    # A response carrying a credential is never cacheable, whatever the app said.
    login = browser.get("/login?user=alice&cache=1")
    assert login.headers.get_list("cache-control") == ["no-store"]
    # Authenticated: the app's own choice stands; otherwise no-store is added.
    assert browser.get("/cached").headers["cache-control"] == "private, max-age=60"
    assert browser.get("/").headers["cache-control"] == "no-store"


def test_the_environ_key_and_a_clear_error_without_middleware() -> None:
    assert ENVIRON_KEY == "coatcheck.session"
    with pytest.raises(RuntimeError, match="SessionMiddleware"):
        get_session({})


# -- one manager, both paths ---------------------------------------------------------


async def _asgi_shop(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI twin of Shop for the routes the cross-path tests use."""
    session = scope["session"]
    path = scope["path"]
    query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
    headers = [(b"content-type", b"application/json")]
    if "cache" in query:
        headers.append((b"cache-control", b"public, max-age=600"))
    if path == "/count":
        session["count"] = session.get("count", 0) + 1
    elif path == "/cart/add":
        session.setdefault("cart", []).append(query["item"])
    elif path == "/login":
        session.login(query["user"], remember=query.get("remember") == "1")
    elif path == "/logout":
        session.logout()
    elif path == "/cached":
        headers.append((b"cache-control", b"private, max-age=60"))
    body = json.dumps(_state(session)).encode()
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def both(manager: SessionManager, shop: Shop) -> Iterator[tuple[Browser, Browser]]:
    wsgi_app = SessionMiddleware(shop, manager=manager)
    asgi_app = ASGISessionMiddleware(_asgi_shop, manager=manager)
    with (
        serve_wsgi(wsgi_app) as wsgi_url,
        serve(asgi_app) as asgi_url,
        Browser(wsgi_url) as wsgi,
        Browser(asgi_url) as asgi,
    ):
        yield wsgi, asgi


def test_one_manager_serves_asgi_and_wsgi_over_one_store(both: tuple[Browser, Browser]) -> None:
    wsgi, asgi = both
    wsgi.get("/cart/add?item=tea")
    asgi.cookies = dict(wsgi.cookies)  # the same browser, another part of the site
    assert asgi.get("/").json() == {"data": {"cart": ["tea"]}, "user_id": None, "new": False}

    asgi.get("/cart/add?item=mug")
    asgi.get("/login?user=alice")
    wsgi.cookies = dict(asgi.cookies)
    state = wsgi.get("/").json()
    assert state == {"data": {"cart": ["tea", "mug"]}, "user_id": "alice", "new": False}

    wsgi.get("/logout")
    asgi.cookies = dict(wsgi.cookies)
    assert asgi.get("/").json()["new"] is True


def _normalise(response: Any) -> list[tuple[str, str]]:
    """Session-relevant headers with the token masked, for comparing the two edges."""
    keep = ("set-cookie", "cache-control", "x-session-token")
    out = []
    for name, value in response.headers.multi_items():
        if name.lower() in keep:
            masked = value
            for cookie_token in tokens._TOKEN_RE.findall(value):
                masked = masked.replace(cookie_token, "TOKEN")
            out.append((name.lower(), masked))
    return sorted(out)


def test_wsgi_sends_the_same_session_headers_as_asgi(both: tuple[Browser, Browser]) -> None:
    wsgi, asgi = both
    steps: list[tuple[str, dict[str, str]]] = [
        ("/", {}),
        ("/cached", {}),
        ("/count", {}),
        ("/", {}),
        ("/cached", {}),
        ("/login?user=alice&cache=1", {}),
        ("/", {}),
        ("/cached", {}),
        ("/login?user=bob&remember=1", {}),
        ("/count?cache=1", {}),
        ("/logout?cache=1", {}),
        ("/count", {"X-Session-Transport": "bearer"}),
    ]
    for path, headers in steps:
        a = wsgi.get(path, headers=headers)
        b = asgi.get(path, headers=headers)
        assert (a.status_code, _normalise(a)) == (b.status_code, _normalise(b)), path
        assert a.json()["data"] == b.json()["data"], path


@pytest.mark.parametrize("length", [b"\xb2", b"1\xb9", b"-1", b"1e3"])
def test_an_odd_content_length_is_not_a_500(manager: SessionManager, length: bytes) -> None:
    """ "\xb2" (superscript two) passes ``str.isdigit`` but not ``int``; over a real socket."""
    import socket

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ran"]

    with serve_wsgi(SessionMiddleware(app, manager=manager)) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(
                b"POST /act HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: " + length + b"\r\nConnection: close\r\n\r\nab"
            )
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
    status = reply.split(b"\r\n", 1)[0]
    # No token, a cross-site-less POST: refused by CSRF (403), never a crash (500).
    assert status.split()[1] == b"403", reply[:200]
