"""Promises every edge keeps alike (ASGI, FastAPI, WSGI, Flask, Django), over real HTTP.

Each test runs the same small app (tests/support/edges.py) on every edge with a real
SQLite store, so an edge that answers differently from the others fails by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from coatcheck import SessionConfig, SessionManager
from coatcheck.core import tokens
from coatcheck.stores import MemoryStore, SQLiteStore
from coatcheck.testing import csrf_header, force_login
from tests.support.browser import Browser, parse_set_cookie
from tests.support.clock import FakeClock
from tests.support.edges import CSRF_EDGES, EDGES, edge_app, is_asgi, serve_edge

COOKIE = "__Host-session"


@dataclass
class Site:
    edge: str
    url: str
    manager: SessionManager
    store: SQLiteStore
    clock: FakeClock
    db: Path

    def browser(self) -> Browser:
        # Django keeps its own CSRF: no token page to render there.
        return Browser(self.url, csrf_path=None if self.edge == "django" else "/csrf")

    def rows(self) -> list[tuple[str, str]]:
        """Every stored record, as (handle, data JSON)."""
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            query = "SELECT handle, data FROM coatcheck_sessions ORDER BY handle"
            return [(str(h), str(d)) for h, d in conn.execute(query)]


@contextlib.contextmanager
def site_for(
    edge: str, tmp_path: Path, clock: FakeClock, config: SessionConfig | None = None
) -> Iterator[Site]:
    db = tmp_path / f"{edge}.db"
    store = SQLiteStore(db)
    manager = SessionManager(store, config or SessionConfig(), clock=clock)
    try:
        with serve_edge(edge, manager) as url:
            yield Site(edge, url, manager, store, clock, db)
    finally:
        store.close_sync()


@pytest.fixture(params=EDGES)
def site(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[Site]:
    with site_for(request.param, tmp_path, clock) as s:
        yield s


def _logged(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    """What the server and the framework logged so far: an ASGI server logs the app's
    exception after the 500 is out, so the log is awaited briefly (at most 5 s)."""
    text = ""
    deadline = time.monotonic() + 5
    while "Traceback" not in text and time.monotonic() < deadline:
        time.sleep(0.02)
        text += capsys.readouterr().err
    return caplog.text + text


# -- 1. a value that is not JSON is the application's error -----------------------------------
def test_a_value_that_is_not_json_is_a_500_naming_the_key(
    site: Site, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """Never the 503 "store unavailable" (the store is fine: the app stored a datetime),
    nothing written, and the log (the server's or the framework's) names the key."""
    with site.browser() as browser:
        assert browser.post("/set", data={"value": "kept"}).status_code == 200
        before = site.rows()
        with caplog.at_level(logging.ERROR):
            response = browser.post("/bad")
        assert response.status_code == 500, response.text
        assert "unavailable" not in response.text.lower()
        assert "set-cookie" not in response.headers
        assert "session['when'] cannot be stored" in _logged(caplog, capsys)
        assert site.rows() == before
        assert browser.get("/read").json()["data"] == {"value": "kept"}


# -- 3. an empty X-CSRF-Token header leaves the form field to decide ---------------------------
@pytest.mark.parametrize("edge", CSRF_EDGES)
def test_an_empty_csrf_header_does_not_disable_the_form_field(
    edge: str, tmp_path: Path, clock: FakeClock
) -> None:
    """A front end that always sends the header, empty when it has no token, still posts
    forms that carry the token as the ``csrf_token`` field; and an empty header never
    counts as a token."""
    with site_for(edge, tmp_path, clock) as site, site.browser() as browser:
        token = browser.csrf_token()
        empty = {"X-CSRF-Token": ""}
        form = {"csrf_token": token, "value": "by form"}
        response = browser.post("/set", headers=empty, data=form)
        assert response.status_code == 200, response.text
        assert response.json()["data"] == {"value": "by form"}
        refused = browser.post("/set", headers=empty, data={"value": "no token"})
        assert refused.status_code == 403
        assert "missing token" in refused.text
        forged = browser.post("/set", headers=empty, data={"csrf_token": "x" * 86, "value": "?"})
        assert forged.status_code == 403
        assert "invalid token" in forged.text
        assert browser.get("/read").json()["data"] == {"value": "by form"}


# -- 4. garbage cookies from one client never throttle valid users behind the same IP ---------
def test_garbage_cookies_never_throttle_valid_users_behind_the_same_ip(site: Site) -> None:
    """Every client here is 127.0.0.1, as everyone behind one proxy is: a client sending
    35 garbage cookies is refused after the 30 the default allows; alice and bob, whose
    tokens are valid, never are, and a visitor without a cookie is served."""
    with site.browser() as alice, site.browser() as bob, httpx.Client(base_url=site.url) as bad:
        assert alice.post("/login?user=alice").status_code == 200
        assert bob.post("/login?user=bob").status_code == 200
        statuses = []
        for _ in range(35):
            garbage = {"Cookie": f"{COOKIE}={tokens.new_token()}"}
            statuses.append(bad.get("/read", headers=garbage).status_code)
            assert alice.get("/read").json()["user"] == "alice"
            assert bob.get("/read").json()["user"] == "bob"
        assert statuses == [200] * 30 + [429] * 5
        assert bad.get("/read").status_code == 200  # no cookie: an ordinary visitor
        assert alice.post("/set", data={"value": "still mine"}).status_code == 200


# -- 4. ... and X-Forwarded-For counts only from a trusted proxy ------------------------------
PROXY = "10.0.0.7"
STRANGER = "203.0.113.5"


def _send(edge: str, app: Any, peer: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request to the in-process ``app`` from the connection peer ``peer``."""
    method = kwargs.pop("method", "GET")
    if not is_asgi(edge):
        transport = httpx.WSGITransport(app, remote_addr=peer)
        with httpx.Client(transport=transport, base_url="http://shop.example") as client:
            return client.request(method, path, **kwargs)

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app, client=(peer, 4711))
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.example") as c:
            return await c.request(method, path, **kwargs)

    return asyncio.run(send())


@pytest.mark.parametrize("edge", EDGES)
def test_forwarded_for_names_the_client_only_from_a_trusted_proxy(
    edge: str, clock: FakeClock
) -> None:
    config = SessionConfig(unknown_token_limit=1, trusted_proxies=[PROXY])
    manager = SessionManager(MemoryStore(), config, clock=clock)
    with edge_app(edge, manager) as app:

        def garbage(peer: str, forwarded_for: str) -> int:
            headers = {"Cookie": f"{COOKIE}={tokens.new_token()}", "X-Forwarded-For": forwarded_for}
            return _send(edge, app, peer, "/read", headers=headers).status_code

        # Through the proxy, each client is its own address (and cannot forge another).
        assert garbage(PROXY, "198.51.100.1") == 200
        assert garbage(PROXY, "198.51.100.1") == 429
        assert garbage(PROXY, "198.51.100.2, 198.51.100.1") == 429
        assert garbage(PROXY, "198.51.100.2") == 200
        # A direct client's X-Forwarded-For is ignored: it counts as itself.
        assert garbage(STRANGER, "198.51.100.3") == 200
        assert garbage(STRANGER, "198.51.100.4") == 429


@pytest.mark.parametrize("edge", CSRF_EDGES)
def test_the_https_scheme_comes_only_from_a_trusted_proxy(edge: str, clock: FakeClock) -> None:
    """Behind a TLS-terminating proxy the browser's Origin is https://; the app's own
    origin is https only when a trusted proxy says so in X-Forwarded-Proto."""
    config = SessionConfig(trusted_proxies=[PROXY])
    manager = SessionManager(MemoryStore(), config, clock=clock)
    token = force_login(manager, "alice")
    headers = {
        "Cookie": f"{COOKIE}={token}",
        "Origin": "https://shop.example",
        "X-Forwarded-Proto": "https",
        **csrf_header(manager, token),
    }
    with edge_app(edge, manager) as app:

        def post(peer: str, **changes: str) -> httpx.Response:
            sent = {k: v for k, v in {**headers, **changes}.items() if v}
            return _send(edge, app, peer, "/set", method="POST", headers=sent, data={"value": "v"})

        assert post(PROXY).status_code == 200
        refused = post(STRANGER)
        assert refused.status_code == 403 and "origin" in refused.text.lower()
        assert post(PROXY, **{"X-Forwarded-Proto": ""}).status_code == 403


# -- 5. a dead cookie is cleared at its next request, and then costs nothing -------------------
def _cleared(response: httpx.Response) -> bool:
    """Does the response carry a Set-Cookie that makes the browser drop the session cookie?"""
    for raw in response.headers.get_list("set-cookie"):
        name, _, attrs = parse_set_cookie(raw)
        if name == COOKIE and attrs.get("max-age") == "0":
            return True
    return False


@pytest.mark.parametrize("ending", ["revoked", "expired"])
@pytest.mark.parametrize("edge", EDGES)
def test_a_dead_cookie_is_cleared_at_its_next_request(
    edge: str, ending: str, tmp_path: Path, clock: FakeClock
) -> None:
    """The next request after the session ended (even one that does not touch the session;
    on Django, which loads the session lazily, one that reads it) clears the cookie, and
    the requests after it, sent without a cookie, are not counted against the address."""
    config = SessionConfig(idle_timeout=600, unknown_token_limit=2)
    with site_for(edge, tmp_path, clock, config) as site, site.browser() as browser:
        assert browser.post("/login?user=alice").status_code == 200
        assert COOKIE in browser.cookies
        if ending == "expired":
            clock.advance(601)
        else:
            assert site.manager.revoke_user_sync("alice") == 1
        response = browser.get("/plain")
        assert response.status_code == 200
        assert _cleared(response)
        assert COOKIE not in browser.cookies
        for _ in range(5):  # no cookie now: ordinary anonymous requests, never counted
            follow = browser.get("/read")
            assert follow.json()["user"] is None and not _cleared(follow)
        with httpx.Client(base_url=site.url) as prober:
            statuses = [
                prober.get(
                    "/read", headers={"Cookie": f"{COOKIE}={tokens.new_token()}"}
                ).status_code
                for _ in range(3)
            ]
    # A revoked token opened nothing: the first of the two misses allowed. An expired
    # session is a real user's: never a miss.
    assert statuses == ([200, 200, 429] if ending == "expired" else [200, 429, 429])


@pytest.mark.parametrize("edge", ["asgi", "wsgi"])
def test_a_dead_bearer_token_is_answered_with_an_empty_token_header(
    edge: str, clock: FakeClock
) -> None:
    """An API client learns the same way that its token died: ``X-Session-Token: ""``
    (discard), never a cookie."""
    manager = SessionManager(MemoryStore(), clock=clock)
    token = force_login(manager, "alice")
    assert manager.revoke_user_sync("alice") == 1
    with edge_app(edge, manager) as app:
        response = _send(edge, app, STRANGER, "/read", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.headers["x-session-token"] == ""
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("edge", EDGES)
def test_a_dead_cookie_refused_429_is_cleared_too(
    edge: str, tmp_path: Path, clock: FakeClock
) -> None:
    """Behind an address a prober has throttled, a user's revoked cookie is answered 429
    (it opens nothing), and that answer clears it as well, so the user's next request
    comes without it and is served."""
    config = SessionConfig(unknown_token_limit=1)
    with site_for(edge, tmp_path, clock, config) as site, site.browser() as browser:
        assert browser.post("/login?user=alice").status_code == 200
        assert site.manager.revoke_user_sync("alice") == 1
        with httpx.Client(base_url=site.url) as prober:
            garbage = {"Cookie": f"{COOKIE}={tokens.new_token()}"}
            assert prober.get("/read", headers=garbage).status_code == 200
        refused = browser.get("/read")
        assert refused.status_code == 429
        assert _cleared(refused)
        assert COOKIE not in browser.cookies
        assert browser.get("/read").json()["user"] is None


# -- a request racing a login -----------------------------------------------------------------
@pytest.mark.parametrize("edge", EDGES)
def test_the_old_token_after_a_login_clears_nothing_and_a_write_is_a_409(
    edge: str, tmp_path: Path, clock: FakeClock
) -> None:
    """Requests a browser sent with its old cookie while the login's response (with the
    new one) was on its way: a read gets an anonymous view, and no ``Set-Cookie`` that
    would delete the new login cookie; a write is refused 409 (retryable), also without a
    ``Set-Cookie``, and never answered as if it had been stored. The coatcheck CSRF edges
    check a cookie's write against the session's own CSRF secret, which the old token no
    longer reaches, so the write there comes as an API client's, with a bearer token."""
    with site_for(edge, tmp_path, clock) as site, site.browser() as browser:
        assert browser.post("/set", data={"value": "cart"}).status_code == 200
        old = browser.cookies[COOKIE]
        assert browser.post("/login?user=alice").status_code == 200
        assert browser.cookies[COOKIE] != old
        with httpx.Client(base_url=site.url) as late:
            read = late.get("/read", headers={"Cookie": f"{COOKIE}={old}"})
            assert read.status_code == 200
            assert read.json() == {"user": None, "data": {}}
            assert "set-cookie" not in read.headers
            if edge in CSRF_EDGES:
                headers = {"Authorization": f"Bearer {old}"}
            else:
                headers = {"Cookie": f"{COOKIE}={old}"}
            write = late.post("/set", data={"value": "lost"}, headers=headers)
        assert write.status_code == 409
        assert "set-cookie" not in write.headers
        assert write.headers.get("x-session-token") is None
        assert write.headers["retry-after"] == "1"
        assert "retry" in write.text
        after = browser.get("/read").json()
        assert after["user"] == "alice"
        assert after["data"]["value"] == "cart"  # (Django's also holds its auth user key)


# -- a write over max_data_bytes is refused 413, on every edge ---------------------------------
@pytest.mark.parametrize("edge", EDGES)
def test_a_session_over_the_size_limit_is_a_413_without_a_traceback(
    edge: str,
    tmp_path: Path,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The store refuses the whole write (so concurrent writers of different keys cannot
    pass the limit together either); the client hears 413, the log says why in one line,
    and the stored session is as it was."""
    config = SessionConfig(max_data_bytes=1000)
    with site_for(edge, tmp_path, clock, config) as site, site.browser() as browser:
        assert browser.post("/set", data={"value": "kept"}).status_code == 200
        before = site.rows()
        with caplog.at_level(logging.INFO):
            response = browser.post("/set", data={"value": "x" * 1200})
        assert response.status_code == 413, response.text
        assert "set-cookie" not in response.headers
        logged = _logged(caplog, capsys)
        assert "session data too large on commit" in logged
        assert "Traceback" not in logged
        assert site.rows() == before
        assert browser.get("/read").json()["data"] == {"value": "kept"}
