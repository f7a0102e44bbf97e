"""Flask with ``coatcheck.flask.init_app``, served over real HTTP by a threaded WSGI server.

``flask.session`` is the coatcheck session; these tests check that Flask's own idioms
(``session[...]``, ``flash``, ``permanent``, ``modified``, ``new``) keep working, that the
coatcheck guarantees hold (token rotation at login, no write for an untouched request,
503 on store failure) and that the example app works end to end.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import flask
import pytest
from flask import Flask, flash, get_flashed_messages, jsonify, request, session

from coatcheck import SessionConfig, SessionManager
from coatcheck.core import tokens
from coatcheck.http.refusals import UNAVAILABLE_BODY
from coatcheck.integrations.flask import (
    FlaskSession,
    current_session,
    init_app,
    login_required,
    require_level,
    require_recent_auth,
)
from coatcheck.stores import SQLiteStore
from tests.support.browser import Browser, token_in
from tests.support.clock import FakeClock
from tests.support.wsgi_server import serve_wsgi

COOKIE = "__Host-session"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "flask_app.py"


def make_app(manager: SessionManager) -> tuple[Flask, list[str]]:
    app = Flask(__name__)
    init_app(app, manager)
    views: list[str] = []

    @app.before_request
    def record_view() -> None:
        views.append(request.path)

    def state() -> Any:
        s = current_session()
        return jsonify(
            data=dict(session),
            user_id=s.user_id,
            new=session.new,
            modified=session.modified,
            permanent=session.permanent,
        )

    @app.get("/")
    def index() -> Any:
        return state()

    @app.get("/static-page")
    def static_page() -> str:
        return "no session here"

    @app.get("/count")
    def count() -> Any:
        session["count"] = session.get("count", 0) + 1
        return state()

    @app.get("/cart/add")
    def add() -> Any:
        session.setdefault("cart", []).append(request.args["item"])
        return state()

    @app.get("/login")
    def login() -> Any:
        s = current_session()
        if request.args.get("permanent") == "before":
            session.permanent = True
        s.login(request.args["user"], level=int(request.args.get("level", 1)))
        if request.args.get("permanent") == "after":
            session.permanent = True
        response = state()
        if request.args.get("cache"):
            response.headers["Cache-Control"] = "public, max-age=600"
        return response

    @app.get("/cached")
    def cached() -> Any:
        response = state()
        response.headers["Cache-Control"] = "private, max-age=60"
        return response

    @app.get("/permanent")
    def make_permanent() -> Any:
        session.permanent = True
        return state()

    @app.get("/logout")
    def logout() -> Any:
        current_session().logout()
        if "flash" in request.args:
            flash(request.args["flash"], "info")
        return state()

    @app.get("/flash")
    def add_flash() -> str:
        flash(request.args["msg"], request.args.get("category", "message"))
        return "flashed"

    @app.get("/messages")
    def messages() -> Any:
        return jsonify(get_flashed_messages(with_categories=True))

    @app.get("/modified")
    def modified() -> Any:
        session.modified = True  # the Flask ritual: accepted, and changes nothing
        return state()

    @app.get("/account")
    @login_required
    def account() -> Any:
        return jsonify(user=current_session().user_id)

    @app.get("/sensitive")
    @require_recent_auth(300)
    def sensitive() -> Any:
        return jsonify(ok=True)

    @app.get("/payout")
    @require_level(2)
    def payout() -> Any:
        return jsonify(paid=True)

    @app.get("/second-factor")
    def second_factor() -> Any:
        current_session().reauthenticate(level=2)
        return jsonify(level=current_session().core.auth_level)

    @app.get("/error")
    def error() -> Any:
        session["before_error"] = True
        flask.abort(418)

    return app, views


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "sessions.db", timeout=0.1)
    yield store
    store.close_sync()


@pytest.fixture
def manager(store: SQLiteStore, clock: FakeClock) -> SessionManager:
    return SessionManager(store, SessionConfig(), clock=clock)


@pytest.fixture
def app(manager: SessionManager) -> tuple[Flask, list[str]]:
    return make_app(manager)


@pytest.fixture
def browser(app: tuple[Flask, list[str]]) -> Iterator[Browser]:
    with serve_wsgi(app[0]) as url, Browser(url) as b:
        yield b


def _record(store: SQLiteStore, token: str) -> Any:
    return store.get_sync(tokens.storage_key(token))


def test_flask_session_is_a_coatcheck_session(manager: SessionManager) -> None:
    app, _ = make_app(manager)
    with app.test_request_context("/"):
        assert isinstance(flask.session, FlaskSession)
        assert current_session().core is flask.session.core
        assert flask.session.new is True


def test_counter_and_untouched_requests(
    browser: Browser, store: SQLiteStore, clock: FakeClock
) -> None:
    response = browser.get("/static-page")
    assert "set-cookie" not in response.headers
    assert "vary" not in response.headers  # the session was not even looked at
    response = browser.get("/")
    assert response.json()["data"] == {} and response.json()["new"] is True
    assert "set-cookie" not in response.headers
    assert store.count_sync(clock()) == 0

    first = browser.get("/count")
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert first.headers["cache-control"] == "no-store"
    assert "Cookie" in first.headers["vary"]  # Flask's own rule, kept
    assert browser.get("/count").json()["data"] == {"count": 2}

    token = browser.cookies[COOKIE]
    seen = _record(store, token).last_seen_at
    clock.advance(30)
    response = browser.get("/")
    assert response.json() == {
        "data": {"count": 2},
        "user_id": None,
        "new": False,
        "modified": False,
        "permanent": False,
    }
    assert "set-cookie" not in response.headers
    assert _record(store, token).last_seen_at == seen  # a read writes nothing


def test_cache_control_rules(browser: Browser) -> None:
    """The rule of every edge, kept by Flask's in-place header edit."""
    # Anonymous: the app decides alone, except on responses that carry a new token.
    assert "cache-control" not in browser.get("/").headers
    assert browser.get("/cached").headers["cache-control"] == "private, max-age=60"
    counted = browser.get("/count")
    assert counted.headers.get_list("cache-control") == ["no-store"]
    assert "x-session-expires" in counted.headers
    assert "cache-control" not in browser.get("/").headers
    # A response carrying a credential is never cacheable, whatever the app said.
    login = browser.get("/login?user=alice&cache=1")
    assert login.headers.get_list("cache-control") == ["no-store"]
    assert len(login.headers.get_list("set-cookie")) == 1
    # Authenticated: the app's own choice stands; otherwise no-store is added.
    assert browser.get("/cached").headers.get_list("cache-control") == ["private, max-age=60"]
    assert browser.get("/").headers.get_list("cache-control") == ["no-store"]


def test_in_place_changes_are_saved_without_modified(browser: Browser) -> None:
    browser.get("/cart/add?item=tea")
    state = browser.get("/cart/add?item=mug").json()
    assert state["modified"] is True
    assert browser.get("/").json()["data"] == {"cart": ["tea", "mug"]}
    # The ritual is harmless: it neither fails nor writes anything new.
    assert browser.get("/modified").json()["modified"] is True
    assert browser.get("/").json()["data"] == {"cart": ["tea", "mug"]}


def test_cart_survives_login_and_the_token_rotates(browser: Browser, store: SQLiteStore) -> None:
    browser.get("/cart/add?item=tea")
    anonymous = browser.cookies[COOKIE]
    response = browser.get("/login?user=alice")
    assert response.headers["cache-control"] == "no-store"
    logged_in = browser.cookies[COOKIE]
    assert logged_in != anonymous
    assert _record(store, anonymous) is None
    state = browser.get("/").json()
    assert state["user_id"] == "alice" and state["data"] == {"cart": ["tea"]}
    stale = browser.get("/", headers={"Cookie": f"{COOKIE}={anonymous}"}).json()
    assert stale["user_id"] is None and stale["data"] == {}


def test_flashed_messages_show_once(browser: Browser) -> None:
    browser.get("/flash?msg=Saved")
    browser.get("/flash?msg=Careful&category=warning")
    assert browser.get("/messages").json() == [["message", "Saved"], ["warning", "Careful"]]
    assert browser.get("/messages").json() == []
    assert browser.get("/").json()["data"] == {}


def test_permanent_means_a_remembered_login(browser: Browser, manager: SessionManager) -> None:
    remember = f"Max-Age={int(manager.config.remember_timeout)}"

    # On an anonymous session it changes nothing: no write, no cookie, no remember-me.
    response = browser.get("/permanent")
    assert response.json()["permanent"] is True  # the pending choice reads back
    assert "set-cookie" not in response.headers
    assert browser.get("/").json()["permanent"] is False

    login = browser.get("/login?user=alice&permanent=before")
    assert remember in login.headers["set-cookie"]
    assert browser.get("/").json()["permanent"] is True

    with Browser(str(browser.client.base_url)) as other:
        login = other.get("/login?user=bob&permanent=after")
        assert remember in login.headers["set-cookie"]
        plain = other.get("/login?user=carol")
        assert "Max-Age" not in plain.headers["set-cookie"]  # a new login decides afresh
        assert other.get("/").json()["permanent"] is False


def test_logout_then_flash(browser: Browser, store: SQLiteStore, clock: FakeClock) -> None:
    browser.get("/login?user=alice")
    token = browser.cookies[COOKIE]
    response = browser.get("/logout")
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert _record(store, token) is None
    assert COOKIE not in browser.cookies
    assert browser.get("/account").status_code == 401

    browser.get("/login?user=alice")
    browser.get("/logout?flash=Signed+out")
    assert browser.get("/messages").json() == [["info", "Signed out"]]
    assert browser.get("/").json()["user_id"] is None
    assert store.count_sync(clock()) == 1  # the anonymous session that carried the flash


def test_login_required_and_recent_auth(browser: Browser, clock: FakeClock) -> None:
    response = browser.get("/account")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "login_required"}
    assert browser.get("/sensitive").json() == {"error": "login_required"}

    browser.get("/login?user=alice")
    assert browser.get("/account").json() == {"user": "alice"}
    assert browser.get("/sensitive").json() == {"ok": True}

    clock.advance(301)
    response = browser.get("/sensitive")
    assert response.status_code == 401
    assert response.json() == {"error": "reauthentication_required", "max_age": 300}
    assert browser.get("/account").status_code == 200  # still logged in
    browser.get("/login?user=alice")  # re-authenticate
    assert browser.get("/sensitive").status_code == 200


def test_require_level_and_step_up(browser: Browser) -> None:
    assert browser.get("/payout").json() == {"error": "login_required"}
    browser.get("/login?user=alice")
    response = browser.get("/payout")
    assert response.status_code == 401
    assert response.json() == {"error": "insufficient_auth_level", "required": 2, "current": 1}
    before = browser.cookies[COOKIE]
    assert browser.get("/second-factor").json() == {"level": 2}
    assert browser.cookies[COOKIE] != before
    assert browser.get("/payout").json() == {"paid": True}


def test_permanent_after_a_login_keeps_its_level(browser: Browser) -> None:
    """``session.permanent = True`` after ``login(level=2)`` only adds remember-me: the
    level of the pending login stays (it once logged in again at level 1)."""
    login = browser.get("/login?user=alice&level=2&permanent=after")
    assert "Max-Age" in login.headers["set-cookie"]
    assert browser.get("/payout").json() == {"paid": True}
    assert browser.get("/").json()["permanent"] is True


def test_bearer_clients(browser: Browser) -> None:
    response = browser.get("/count", headers={"X-Session-Transport": "bearer"})
    assert "set-cookie" not in response.headers
    token = response.headers["x-session-token"]
    state = browser.get("/count", headers={"Authorization": f"Bearer {token}"}).json()
    assert state["data"] == {"count": 2}


def test_changes_before_an_error_response_are_kept(browser: Browser) -> None:
    assert browser.get("/error").status_code == 418
    assert browser.get("/").json()["data"] == {"before_error": True}


@contextlib.contextmanager
def _writer_lock(path: str) -> Iterator[None]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


@contextlib.contextmanager
def _total_lock(store: SQLiteStore) -> Iterator[None]:
    store.close_sync()
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("PRAGMA locking_mode = EXCLUSIVE")
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def _assert_plain_503(response: Any) -> None:
    assert response.status_code == 503
    assert response.content == UNAVAILABLE_BODY
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["cache-control"] == "no-store"
    assert "set-cookie" not in response.headers


def test_store_failure_on_save_is_a_503(browser: Browser, store: SQLiteStore) -> None:
    browser.get("/count")
    token = browser.cookies[COOKIE]
    with _writer_lock(store.path):
        _assert_plain_503(browser.get("/count"))
        _assert_plain_503(browser.get("/login?user=alice"))
        _assert_plain_503(browser.get("/flash?msg=lost"))
        assert browser.get("/").json()["data"] == {"count": 1}  # reads still work (WAL)
    assert browser.cookies[COOKIE] == token
    assert browser.get("/count").json()["data"] == {"count": 2}
    assert browser.get("/messages").json() == []


def test_store_failure_on_open_is_a_503_and_no_view_runs(
    browser: Browser, store: SQLiteStore, app: tuple[Flask, list[str]]
) -> None:
    browser.get("/count")
    views = app[1]
    before = len(views)
    with _total_lock(store):
        _assert_plain_503(browser.get("/"))
        _assert_plain_503(browser.get("/count"))
        _assert_plain_503(browser.get("/account"))
        assert len(views) == before  # refused before any app hook or view
    assert browser.get("/").json()["data"] == {"count": 1}


def test_an_app_may_restyle_the_503(manager: SessionManager, store: SQLiteStore) -> None:
    app, _ = make_app(manager)

    @app.errorhandler(503)
    def unavailable(error: Exception) -> tuple[str, int]:
        # Reading the session in an error page must not turn the 503 into a 500.
        return f"down for a moment (user={session.get('user')!r})", 503

    with serve_wsgi(app) as url, Browser(url) as browser:
        browser.get("/count")  # a cookie, so that opening the session needs the store
        with _total_lock(store):
            response = browser.get("/count")
            assert response.status_code == 503
            assert response.text == "down for a moment (user=None)"


# -- the example app -------------------------------------------------------------------


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flask_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _submit(browser: Browser, path: str, data: dict[str, str]) -> str:
    """Open the page, POST one of its forms (with the page's hidden ``csrf_token`` field)
    and follow the redirect by hand (httpx drops the Cookie header the Browser sets when
    it follows redirects itself); returns the page."""
    token = token_in(browser.get("/"))
    assert token is not None
    response = browser.post(path, data={**data, "csrf_token": token})
    assert response.status_code == 302
    return browser.get(response.headers["location"]).text


def _flashes(html: str) -> list[str]:
    return re.findall(r'<p class="flash \w+">([^<]*)</p>', html)


def test_the_example_app_works(manager: SessionManager, clock: FakeClock) -> None:
    example = _load_example()
    app = example.create_app(manager)
    # Before each post the browser opens the page and takes its form's CSRF token.
    with serve_wsgi(app) as url, Browser(url, csrf_path="/") as browser:
        page = browser.get("/").text
        assert '<span id="visits">1</span>' in page
        assert browser.get("/").text.count('<span id="visits">2</span>') == 1

        page = _submit(browser, "/cart", {"item": "tea"})
        assert _flashes(page) == ["Green tea added to your cart."]
        assert "<li>Green tea</li>" in page
        anonymous = browser.cookies[COOKIE]

        page = _submit(browser, "/login", {"username": "alice", "password": "nope"})
        assert _flashes(page) == ["Wrong user name or password."]
        assert browser.get("/account").status_code == 401

        page = _submit(
            browser, "/login", {"username": "alice", "password": "wonderland", "remember": "1"}
        )
        assert _flashes(page) == ["Welcome, alice!"]
        assert '<strong id="user">alice</strong> (remembered)' in page
        assert "<li>Green tea</li>" in page  # the cart survived the login
        assert browser.cookies[COOKIE] != anonymous
        assert browser.get("/account").json() == {"user": "alice", "cart": ["tea"]}
        assert browser.post("/account/email", data={"email": "a@example.org"}).json() == {
            "changed": True,
            "email": "a@example.org",
        }
        clock.advance(301)
        assert browser.post("/account/email", data={"email": "x"}).status_code == 401

        page = _submit(browser, "/logout", {})
        assert _flashes(page) == ["You are signed out."]
        assert 'id="user"' not in page and "<li>" not in page
        assert browser.get("/account").status_code == 401


def test_flasks_test_client_and_session_transaction_work(manager: SessionManager) -> None:
    """Apps test with Flask's own client; coatcheck must not break it."""
    app, _ = make_app(manager)
    client = app.test_client()
    assert client.get("/count").json["data"] == {"count": 1}
    with client.session_transaction() as s:
        assert isinstance(s, FlaskSession) and dict(s) == {"count": 1}
        s["seeded"] = "by the test"
    assert client.get("/count").json["data"] == {"count": 2, "seeded": "by the test"}


def test_fifty_concurrent_appends_through_flask_all_land(tmp_path: Path) -> None:
    """``session.append`` on Flask, fifty requests of one session at once on the threaded
    WSGI server (each thread its own blocking SQLite write): all fifty items are kept."""
    import threading

    import httpx

    store = SQLiteStore(tmp_path / "concurrent.db")
    manager = SessionManager(store, SessionConfig())
    app = Flask(__name__)
    init_app(app, manager)

    @app.get("/csrf")
    def csrf() -> Any:
        return flask.Response(current_session().csrf_token(), mimetype="text/plain")

    @app.post("/add")
    def add() -> Any:
        session.append("cart", request.args["item"])
        return jsonify(count=session.incr("count"))

    with serve_wsgi(app) as url, Browser(url) as browser:
        token = browser.csrf_token()
        cookies = dict(browser.cookies)
        start = threading.Barrier(50)
        statuses: list[int] = []

        def post(i: int) -> None:
            with httpx.Client(base_url=url, cookies=cookies) as client:
                start.wait()
                headers = {"X-CSRF-Token": token}
                statuses.append(client.post(f"/add?item=i{i}", headers=headers).status_code)

        threads = [threading.Thread(target=post, args=(i,)) for i in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [200] * 50
        record = _record(store, browser.cookies[manager.config.cookie_name])
    assert sorted(record.data["cart"]) == sorted(f"i{i}" for i in range(50))
    assert record.data["count"] == 50
    store.close_sync()
