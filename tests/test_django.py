"""Django with ``SESSION_ENGINE = "coatcheck.django"``, driven over real HTTP.

A real Django WSGI app (this module is its URLconf) runs under wsgiref on a loopback port
in a thread; django.contrib.auth's own login, logout and password-change functions run in
its views, over a real SQLite auth database and a real coatcheck SQLite session store.
Time comes from a FakeClock handed to the manager, so expiry is tested without sleeping.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from coatcheck import MemorySink, SessionConfig, SessionManager
from coatcheck.core import tokens
from coatcheck.http.refusals import UNAVAILABLE_BODY
from coatcheck.integrations.django import (
    AUTH_USER_KEY,
    SessionStore,
    configure,
    get_manager,
    revoke_other_sessions,
    user_sessions,
)
from coatcheck.stores import MemoryStore, SQLiteStore
from tests.support import django_settings
from tests.support.browser import Browser, parse_set_cookie
from tests.support.clock import FakeClock
from tests.support.user_agents import FIREFOX_LINUX, SAFARI_IPHONE

COOKIE = "__Host-session"
IDLE = 600.0
ABSOLUTE = 3600.0
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "django_app"


# -- the app under test: views that call django.contrib.auth as any Django app does ----------
def state(request: HttpRequest) -> JsonResponse:
    user = request.user
    return JsonResponse(
        {
            "user": user.get_username() if user.is_authenticated else None,
            "data": {
                k: v
                for k, v in request.session.items()
                if not k.startswith(("_auth", "_session"))  # Django's own keys
            },
        }
    )


def set_values(request: HttpRequest) -> JsonResponse:
    for name, value in request.POST.items():
        request.session[name] = value
    return state(request)


def add_to_cart(request: HttpRequest) -> JsonResponse:
    cart = request.session.get("cart")
    if cart is None:
        request.session["cart"] = [request.POST["item"]]
    else:
        cart.append(request.POST["item"])  # in place: no `modified = True` ritual
    return state(request)


def append_racing(request: HttpRequest) -> JsonResponse:
    """``request.session.append``, with another request of the same session committing an
    append of its own between this one's load and its save (a race, made deterministic)."""
    request.session.append("cart", request.POST["item"])
    assert request.session.incr("count") >= 1
    token = request.COOKIES.get(COOKIE)
    if token is not None:
        manager = get_manager()
        other = manager.load_sync(token)
        other.append("cart", "from the other tab")
        manager.commit_sync(other)
    return state(request)


def log_in(request: HttpRequest) -> HttpResponse:
    from django.contrib.auth import authenticate, login

    user = authenticate(
        request, username=request.POST["username"], password=request.POST["password"]
    )
    if user is None:
        return HttpResponse("bad credentials", status=403)
    login(request, user)
    return state(request)


def log_in_and_save(request: HttpRequest) -> JsonResponse:
    """A view that saves the session itself right after ``login()``, as many apps do
    (before a redirect, or to read the new key)."""
    from django.contrib.auth import authenticate, login

    user = authenticate(
        request, username=request.POST["username"], password=request.POST["password"]
    )
    assert user is not None
    login(request, user)
    request.session.save()
    return state(request)


def save_in_view(request: HttpRequest) -> JsonResponse:
    """``?how=save|create|cycle``: the view stores the session itself."""
    session = request.session
    session["seen"] = request.GET["how"]
    how = request.GET["how"]
    if how == "create":
        session.create()
    else:
        if how == "cycle":
            session.cycle_key()
        session.save()
    return JsonResponse({"key": session.session_key})


def remove_values(request: HttpRequest) -> JsonResponse:
    for name in request.POST:
        del request.session[name]
    return state(request)


def expire(request: HttpRequest) -> JsonResponse:
    """``set_expiry()`` with ``?seconds=N`` (an int) or ``?at=<epoch seconds>`` (a date)."""
    from datetime import UTC, datetime

    if "at" in request.GET:
        request.session.set_expiry(datetime.fromtimestamp(float(request.GET["at"]), UTC))
    else:
        request.session.set_expiry(int(request.GET["seconds"]))
    return JsonResponse({})


LOCKERS: list[sqlite3.Connection] = []
"""Connections a view opened to hold the session database's write lock (test releases)."""


def cycle_then_lock(request: HttpRequest) -> JsonResponse:
    """cycle_key() succeeds, then another writer takes the store's file: the
    middleware's save fails."""
    request.session.cycle_key()
    request.session["late"] = "lost"
    locker = sqlite3.connect(request.GET["db"], isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN IMMEDIATE")
    LOCKERS.append(locker)
    return JsonResponse({})


def log_out(request: HttpRequest) -> JsonResponse:
    from django.contrib.auth import logout

    logout(request)
    if "flash" in request.POST:
        request.session["flash"] = request.POST["flash"]
    return state(request)


def change_password(request: HttpRequest) -> JsonResponse:
    from django.contrib.auth import update_session_auth_hash

    user = request.user
    user.set_password(request.POST["new"])
    user.save()
    update_session_auth_hash(request, user)
    revoked = revoke_other_sessions(request) if request.POST.get("revoke_others") else 0
    return JsonResponse({"revoked": revoked})


def my_sessions(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "current": request.session.handle,
            "sessions": [
                {"handle": s.handle, "user_agent": s.user_agent, "ip": s.ip}
                for s in user_sessions(request.user.pk)
            ],
        }
    )


urlpatterns = [
    path("state", state),
    path("set", set_values),
    path("cart", add_to_cart),
    path("append-racing", append_racing),
    path("login", log_in),
    path("login-and-save", log_in_and_save),
    path("save-in-view", save_in_view),
    path("cycle-then-lock", cycle_then_lock),
    path("expire", expire),
    path("remove", remove_values),
    path("logout", log_out),
    path("password", change_password),
    path("sessions", my_sessions),
]


# -- Django, configured once for this module --------------------------------------------------
class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    from django.core.management import call_command
    from django.test import override_settings

    django_settings.setup()
    app = override_settings(
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[
            "coatcheck.django.StoreUnavailableMiddleware",
            "coatcheck.django.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        SESSION_COOKIE_NAME=COOKIE,
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_EXPIRE_AT_BROWSER_CLOSE=True,
        COATCHECK_MIGRATE_FROM="django.contrib.sessions.backends.db",
    )
    app.enable()
    call_command("migrate", verbosity=0, interactive=False)
    from django.core.wsgi import get_wsgi_application

    server = make_server(
        "127.0.0.1", 0, get_wsgi_application(), server_class=WSGIServer, handler_class=QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        app.disable()


@dataclass
class Site:
    url: str
    manager: SessionManager
    store: SQLiteStore
    clock: FakeClock
    sink: MemorySink
    db: Path

    def browser(self, **kwargs: Any) -> Browser:
        return Browser(self.url, **kwargs)

    def record(self, token: str) -> Any:
        return self.store.get_sync(tokens.storage_key(token))

    def rows(self) -> int:
        """Stored sessions; the marker a login or cycle_key() leaves under its old key for
        ``rotation_grace`` (no data, no user; tests/conformance/test_login_races.py) is
        not one."""
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            query = (
                "SELECT count(*) FROM coatcheck_sessions WHERE meta NOT LIKE '%\"superseded_at\"%'"
            )
            return int(conn.execute(query).fetchone()[0])


@pytest.fixture
def site(base_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[Site]:
    db = tmp_path / "sessions.db"
    store = SQLiteStore(db, timeout=0.2)
    sink = MemorySink()
    config = SessionConfig(idle_timeout=IDLE, absolute_timeout=ABSOLUTE)
    manager = SessionManager(store, config, clock=clock, events=[sink])
    configure(manager)
    try:
        yield Site(base_url, manager, store, clock, sink, db)
    finally:
        configure(None)
        store.close_sync()


def make_user(password: str = "correct horse") -> Any:
    from django.contrib.auth.models import User

    return User.objects.create_user(f"user-{uuid.uuid4().hex[:8]}", password=password)


def log_in_as(browser: Browser, user: Any, password: str = "correct horse") -> dict[str, Any]:
    response = browser.post("/login", data={"username": user.username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def session_cookie(response: Any) -> tuple[str, dict[str, str]]:
    for raw in response.headers.get_list("set-cookie"):
        name, value, attrs = parse_set_cookie(raw)
        if name == COOKIE:
            return value, attrs
    raise AssertionError(f"no {COOKIE} cookie in {response.headers.get_list('set-cookie')}")


# -- django.contrib.auth flows ----------------------------------------------------------------
def test_login_issues_a_new_token_kills_the_old_one_and_keeps_the_data(site: Site) -> None:
    user = make_user()
    with site.browser() as browser:
        first = browser.post("/set", data={"theme": "dark"})
        anonymous, attrs = session_cookie(first)
        assert tokens.is_well_formed(anonymous)
        assert {"secure", "httponly", "path"} <= attrs.keys()
        assert attrs["samesite"] == "Lax"
        assert site.record(anonymous).user_id is None

        body = log_in_as(browser, user)
        token = browser.cookies[COOKIE]
        assert token != anonymous and tokens.is_well_formed(token)
        assert body == {"user": user.username, "data": {"theme": "dark"}}

    record = site.record(token)
    assert record.user_id == str(user.pk)
    assert record.auth_at == site.clock.now
    assert site.record(anonymous) is None
    assert "session.login" in site.sink.names()

    with site.browser() as replay:
        replay.cookies[COOKIE] = anonymous
        response = replay.get("/state")
        assert response.json() == {"user": None, "data": {}}
        # Within rotation_grace the old token may be a request the browser sent before the
        # login's cookie came back: it is never cleared, which could delete the new one.
        assert replay.cookies[COOKIE] == anonymous
        site.clock.advance(site.manager.config.rotation_grace + 1)
        response = replay.get("/state")
        assert response.json() == {"user": None, "data": {}}
        assert COOKIE not in replay.cookies  # the dead token's cookie is cleared


def test_logout_deletes_the_session_and_later_data_starts_a_new_one(site: Site) -> None:
    user = make_user()
    with site.browser() as browser:
        log_in_as(browser, user)
        token = browser.cookies[COOKIE]
        response = browser.post("/logout")
        assert response.json() == {"user": None, "data": {}}
        assert COOKIE not in browser.cookies
        assert site.record(token) is None
        assert "session.logout" in site.sink.names()

        log_in_as(browser, user)
        second = browser.cookies[COOKIE]
        browser.post("/logout", data={"flash": "see you"})
        flash = browser.cookies[COOKIE]
        assert flash not in (token, second)
        assert site.record(second) is None
        fresh = site.record(flash)
        assert fresh.user_id is None and fresh.data == {"flash": "see you"}

    with site.browser() as replay:
        replay.cookies[COOKIE] = token
        assert replay.get("/state").json()["user"] is None


def test_responses_carry_the_headers_of_every_coatcheck_edge(site: Site) -> None:
    """no-store on credentials and personal pages, Clear-Site-Data at logout (keeping
    cookies when the logout leaves a new anonymous session, such as a flash message)."""
    user = make_user()
    with site.browser() as browser:
        anonymous = browser.get("/state")
        assert "no-store" not in anonymous.headers.get("cache-control", "")
        login = browser.post(
            "/login", data={"username": user.username, "password": "correct horse"}
        )
        assert login.headers["cache-control"] == "no-store"
        assert browser.get("/state").headers["cache-control"] == "no-store"  # logged in
        logout = browser.post("/logout")
        assert logout.headers["clear-site-data"] == '"cache", "cookies", "storage"'
        assert logout.headers["cache-control"] == "no-store"
        log_in_as(browser, user)
        flash = browser.post("/logout", data={"flash": "bye"})
        assert flash.headers["clear-site-data"] == '"cache", "storage"'
        assert browser.get("/state").json()["data"] == {"flash": "bye"}


def test_a_rotated_out_token_in_grace_is_never_sent_back(site: Site) -> None:
    """Two requests racing a periodic rotation: the one that loaded the session through
    the old token (its grace window) must not set that token again as the cookie."""
    config = dataclasses.replace(site.manager.config, rotation_interval=60)
    configure(SessionManager(site.store, config, clock=site.clock, events=[site.sink]))
    with site.browser() as browser:
        browser.post("/set", data={"a": "1"})
        old = browser.cookies[COOKIE]
        site.clock.advance(61)
        rotated = browser.get("/state")
        new, _ = session_cookie(rotated)
        assert new != old
        browser.cookies[COOKIE] = old  # a request that left before the new cookie arrived
        late = browser.post("/set", data={"b": "2"})
        assert late.status_code == 200
        assert COOKIE not in {parse_set_cookie(v)[0] for v in late.headers.get_list("set-cookie")}
        browser.cookies[COOKIE] = new
        assert browser.get("/state").json()["data"] == {"a": "1", "b": "2"}
        site.clock.advance(31)
        assert browser.get("/state").json()["data"] == {"a": "1", "b": "2"}
        assert "session.theft_suspected" not in site.sink.names()


def test_password_change_keeps_this_session_and_revokes_the_others(site: Site) -> None:
    alice, bob = make_user(), make_user()
    with site.browser() as here, site.browser() as laptop, site.browser() as bobs:
        log_in_as(here, alice)
        log_in_as(laptop, alice)
        log_in_as(bobs, bob)
        before = here.cookies[COOKIE]
        handle = site.record(before).handle
        assert len(user_sessions(alice.pk)) == 2

        response = here.post("/password", data={"new": "new secret", "revoke_others": "1"})
        assert response.json() == {"revoked": 1}
        after = here.cookies[COOKIE]
        assert after != before  # update_session_auth_hash cycles the key
        assert site.record(before) is None
        assert here.get("/state").json()["user"] == alice.username

        assert [s.handle for s in user_sessions(alice.pk)] == [handle]
        assert laptop.get("/state").json()["user"] is None
        assert bobs.get("/state").json()["user"] == bob.username


def test_password_change_without_revoke_still_logs_other_sessions_out(site: Site) -> None:
    """Django's own auth-hash check keeps working through coatcheck."""
    alice = make_user()
    with site.browser() as here, site.browser() as laptop:
        log_in_as(here, alice)
        log_in_as(laptop, alice)
        assert here.post("/password", data={"new": "another"}).json() == {"revoked": 0}
        assert here.get("/state").json()["user"] == alice.username
        assert laptop.get("/state").json()["user"] is None


def test_the_store_holds_no_raw_token(site: Site) -> None:
    user = make_user()
    with site.browser() as browser:
        anonymous = session_cookie(browser.post("/set", data={"a": "1"}))[0]
        log_in_as(browser, user)
        token = browser.cookies[COOKIE]
    raw = b"".join(p.read_bytes() for p in site.db.parent.glob("sessions.db*"))
    assert tokens.storage_key(token).encode() in raw
    for secret in (token, anonymous):
        assert secret.encode() not in raw


def test_a_users_sessions_are_listed_with_their_devices(site: Site) -> None:
    user = make_user()
    with (
        site.browser(headers={"User-Agent": SAFARI_IPHONE}) as phone,
        site.browser(headers={"User-Agent": FIREFOX_LINUX}) as laptop,
    ):
        log_in_as(phone, user)
        log_in_as(laptop, user)
        listing = laptop.get("/sessions").json()
    assert [s["user_agent"] for s in listing["sessions"]] == [
        "Mobile Safari 17 / iOS / mobile",
        "Firefox 121 / Linux / desktop",
    ]
    assert {s["ip"] for s in listing["sessions"]} == {"127.0.0.0"}
    assert listing["current"] == listing["sessions"][1]["handle"]


def test_an_emptied_session_keeps_its_key_and_its_cookie(site: Site) -> None:
    """What Django's test_empty_session_saved checks, but through coatcheck's store
    instead of Django's Session model (the part of it that is an accepted failure)."""
    with site.browser() as browser:
        token = session_cookie(browser.post("/set", data={"foo": "bar"}))[0]
        response = browser.post("/remove", data={"foo": ""})
        assert response.json()["data"] == {}
        assert session_cookie(response)[0] == token  # not flushed: the cookie is set again
        assert "cookie" in response.headers["vary"].lower()
        assert site.record(token).data == {}


def test_in_place_mutation_is_saved_without_the_modified_flag(site: Site) -> None:
    with site.browser() as browser:
        browser.post("/cart", data={"item": "apple"})
        body = browser.post("/cart", data={"item": "pear"}).json()
        assert body["data"]["cart"] == ["apple", "pear"]
        assert browser.get("/state").json()["data"]["cart"] == ["apple", "pear"]


def test_appends_are_applied_in_the_store_and_keep_a_racing_request_s(site: Site) -> None:
    with site.browser() as browser:
        first = browser.post("/append-racing", data={"item": "apple"}).json()
        assert first["data"] == {"cart": ["apple"], "count": 1}  # no cookie yet: no race
        body = browser.post("/append-racing", data={"item": "pear"}).json()
        assert body["data"]["cart"] == ["apple", "pear"]  # what this request saw
        record = site.record(browser.cookies[COOKIE])
        # The other tab's append landed between this request's load and its save; the
        # save appended to what the store held, so both are kept.
        assert record.data == {"cart": ["apple", "from the other tab", "pear"], "count": 2}


# -- timeouts, with the injected clock ---------------------------------------------------------
def test_idle_timeout_is_enforced_and_read_only_traffic_extends_it(site: Site) -> None:
    user = make_user()
    with site.browser() as browser:
        log_in_as(browser, user)
        token = browser.cookies[COOKIE]
        seen = site.record(token).last_seen_at

        site.clock.advance(10)  # well inside the touch interval: no write at all
        assert browser.get("/state").json()["user"] == user.username
        assert site.record(token).last_seen_at == seen

        site.clock.advance(IDLE - 20)  # a read-only request now touches the deadline
        assert browser.get("/state").json()["user"] == user.username
        assert site.record(token).expires_at == site.clock.now + IDLE

        site.clock.advance(IDLE - 1)
        assert browser.get("/state").json()["user"] == user.username

        site.clock.advance(IDLE)
        assert browser.get("/state").json()["user"] is None
        assert "session.expired" in site.sink.names()


def test_absolute_timeout_ends_even_a_busy_session(site: Site) -> None:
    user = make_user()
    with site.browser() as browser:
        log_in_as(browser, user)
        logged_in_at = site.clock.now
        while site.clock.now + IDLE / 2 < logged_in_at + ABSOLUTE:
            site.clock.advance(IDLE / 2)  # busy: never idle for long
            assert browser.get("/state").json()["user"] == user.username
        site.clock.advance(IDLE / 2)
        assert site.clock.now >= logged_in_at + ABSOLUTE
        assert browser.get("/state").json()["user"] is None


def test_set_expiry_shortens_the_server_side_deadline(site: Site) -> None:
    with site.browser() as browser:
        browser.post("/set", data={"a": "1"})
        token = browser.cookies[COOKIE]
        assert site.record(token).expires_at == site.clock.now + IDLE
        _, attrs = session_cookie(browser.get("/expire", params={"seconds": "300"}))
        assert attrs["max-age"] == "300"  # Django's cookie, as Django sets it
        assert site.record(token).expires_at == site.clock.now + 300  # and the server's

        site.clock.advance(200)  # a read-only request past the touch interval (IDLE / 10)
        assert browser.get("/state").json()["data"] == {"a": "1"}
        assert site.record(token).expires_at == site.clock.now + 300  # not + IDLE

        site.clock.advance(300)
        assert browser.get("/state").json()["data"] == {}
        assert site.record(token) is None or site.record(token).expires_at <= site.clock.now


def test_a_longer_set_expiry_changes_only_the_cookie(site: Site) -> None:
    with site.browser() as browser:
        browser.post("/set", data={"a": "1"})
        token = browser.cookies[COOKIE]
        _, attrs = session_cookie(browser.get("/expire", params={"seconds": "5000"}))
        assert attrs["max-age"] == "5000"
        assert site.record(token).expires_at == site.clock.now + IDLE
        site.clock.advance(IDLE)
        assert browser.get("/state").json()["data"] == {}


def test_set_expiry_to_a_date_never_outlives_the_absolute_deadline(site: Site) -> None:
    """A Django login is never a remember-me login: the absolute timeout holds, whatever
    date set_expiry() names."""
    user = make_user()
    with site.browser() as browser:
        log_in_as(browser, user)
        token = browser.cookies[COOKIE]
        record = site.record(token)
        assert record.remember is False and record.absolute_at == site.clock.now + ABSOLUTE
        soon = site.clock.now + 100
        browser.get("/expire", params={"at": str(soon)})
        assert site.record(token).expires_at == soon
        browser.get("/expire", params={"at": str(site.clock.now + 2 * ABSOLUTE)})
        logged_in_at = record.auth_at
        while site.clock.now + IDLE / 2 < logged_in_at + ABSOLUTE:
            site.clock.advance(IDLE / 2)
            assert browser.get("/state").json()["user"] == user.username
            assert site.record(token).expires_at <= logged_in_at + ABSOLUTE
        site.clock.advance(IDLE / 2)
        assert browser.get("/state").json()["user"] is None


def test_set_expiry_in_the_past_ends_the_session(site: Site) -> None:
    user = make_user()
    with site.browser() as browser:
        log_in_as(browser, user)
        browser.post("/cart", data={"item": "tea"})
        token = browser.cookies[COOKIE]
        response = browser.get("/expire", params={"seconds": "-10"})
        assert response.status_code == 200
        value, attrs = session_cookie(response)
        assert value == '""' and attrs["max-age"] == "0"  # cleared, not "None"
        assert COOKIE not in browser.cookies
        assert site.record(token) is None
        assert "session.expired" in site.sink.names()
        assert user_sessions(user.pk) == []
        assert browser.get("/state").json() == {"user": None, "data": {}}


def test_a_session_cookie_age_below_the_idle_timeout_bounds_the_server_too(site: Site) -> None:
    from django.test import override_settings

    with override_settings(SESSION_COOKIE_AGE=120), site.browser() as browser:
        browser.post("/set", data={"a": "1"})
        token = browser.cookies[COOKIE]
        assert site.record(token).expires_at == site.clock.now + 120
        site.clock.advance(120)
        assert browser.get("/state").json()["data"] == {}


def test_clearsessions_purges_expired_sessions(site: Site) -> None:
    from django.core.management import call_command

    with site.browser() as old1, site.browser() as old2:
        old1.post("/set", data={"a": "1"})
        old2.post("/set", data={"a": "2"})
    site.clock.advance(IDLE + 1)
    with site.browser() as fresh:
        fresh.post("/set", data={"a": "3"})
        assert site.rows() == 3
        call_command("clearsessions")
        assert site.rows() == 1
        assert fresh.get("/state").json()["data"] == {"a": "3"}


# -- the async methods of Django 5 -------------------------------------------------------------
async def test_async_methods_follow_the_contract(site: Site) -> None:
    store = SessionStore()
    await store.aset("a", 1)
    await store.asave()
    key = store.session_key
    assert key is not None and tokens.is_well_formed(key)

    again = SessionStore(key)
    assert await again.aload() == {"a": 1}
    assert await again.aexists(key)
    await again.aset("b", [1, 2])
    await again.acycle_key()
    await again.asave()
    cycled = again.session_key
    assert cycled is not None and cycled != key
    assert not await again.aexists(key)
    assert await again.aexists(cycled)

    third = SessionStore(cycled)
    assert await third.aget("b") == [1, 2]
    await third.aflush()
    assert third.session_key is None
    assert not await third.aexists(cycled)

    empty = SessionStore()
    await empty.acreate()
    created = empty.session_key
    assert created is not None and await empty.aexists(created)
    await empty.adelete()
    assert not await empty.aexists(created)

    kept = SessionStore()
    await kept.aset("x", "y")
    await kept.asave()
    site.clock.advance(ABSOLUTE)
    await SessionStore.aclear_expired()
    assert site.rows() == 0


def test_sync_contract_details(site: Site) -> None:
    from django.contrib.auth import SESSION_KEY

    assert AUTH_USER_KEY == SESSION_KEY
    store = SessionStore()
    store.save()  # Django promises a key even for an empty session (its test Client uses it)
    key = store.session_key
    assert key is not None and store.exists(key)
    assert not store.exists("not-a-token")
    assert SessionStore("x" * 43).load() == {}

    renamed = SessionStore(key)
    renamed["n"] = 1
    renamed.cycle_key()  # as Django's backends: a new key at once, the old one gone
    cycled = renamed.session_key
    assert cycled is not None and cycled != key and tokens.is_well_formed(cycled)
    assert not renamed.exists(key) and renamed.exists(cycled)
    assert renamed["n"] == 1 and site.record(cycled).data == {"n": 1}
    assert renamed.modified  # so the middleware sends the new key
    renamed.save()
    assert renamed.session_key == cycled  # nothing left to rename

    fresh = SessionStore()
    fresh["n"] = 1
    fresh.cycle_key()  # not stored yet: no old key to end, nothing written
    assert fresh.session_key is None and site.rows() == 1
    fresh.save()
    assert fresh.session_key is not None and site.record(fresh.session_key).data == {"n": 1}

    stale = SessionStore(renamed.session_key)
    stale["n"] = 2
    site.store.delete_sync(tokens.storage_key(renamed.session_key))
    from django.contrib.sessions.backends.base import UpdateError

    with pytest.raises(UpdateError):
        stale.save()  # never resurrect a session revoked while the request ran


def test_dropping_the_auth_keys_files_the_session_as_anonymous(site: Site) -> None:
    """Not only logout(): any removal of Django's user key takes the session out of the
    user's index, under a new token."""
    store = SessionStore()
    store[AUTH_USER_KEY] = "7"
    store["cart"] = ["tea"]
    store.save()
    key = store.session_key
    assert key is not None and site.record(key).user_id == "7"
    assert [s.user_id for s in user_sessions(7)] == ["7"]

    again = SessionStore(key)
    del again[AUTH_USER_KEY]
    again.save()
    moved = again.session_key
    assert moved is not None and moved != key and site.record(key) is None
    assert site.record(moved).user_id is None and site.record(moved).data == {"cart": ["tea"]}
    assert user_sessions(7) == []

    emptied = SessionStore(moved)
    emptied[AUTH_USER_KEY] = "8"
    emptied.save()
    emptied = SessionStore(emptied.session_key)
    emptied.clear()
    emptied.save()  # Django keeps an emptied session under a key; coatcheck drops the user
    last = emptied.session_key
    assert last is not None and site.record(last).data == {}
    assert site.record(last).user_id is None and user_sessions(8) == []


def test_a_login_saved_in_the_view_keeps_the_user_and_the_cart(site: Site) -> None:
    """``auth.login(request, user)`` then ``request.session.save()`` in the view: the
    new key reaches the client, so the next request is still logged in, cart and all."""
    from django.test import Client

    user = make_user()
    client = Client()
    assert client.post("/cart", {"item": "apple"}).json()["data"] == {"cart": ["apple"]}
    anonymous = client.cookies[COOKIE].value
    response = client.post(
        "/login-and-save", {"username": user.username, "password": "correct horse"}
    )
    assert response.json() == {"user": user.username, "data": {"cart": ["apple"]}}
    token = response.cookies[COOKIE].value  # Set-Cookie sent, with the new key
    assert token != anonymous and site.record(anonymous) is None
    assert site.record(token).user_id == str(user.pk)
    assert client.get("/state").json() == {"user": user.username, "data": {"cart": ["apple"]}}
    assert client.post("/cart", {"item": "pear"}).json()["data"] == {"cart": ["apple", "pear"]}


@pytest.mark.parametrize("how", ["save", "create", "cycle"])
def test_a_session_stored_in_the_view_reaches_the_client(site: Site, how: str) -> None:
    from django.test import Client

    client = Client()
    client.post("/set", {"a": "1"})
    before = client.cookies[COOKIE].value
    response = client.get("/save-in-view", {"how": how})
    key = response.json()["key"]
    assert tokens.is_well_formed(key)
    assert response.cookies[COOKIE].value == key
    if how != "save":
        assert key != before  # create() and cycle_key() give the session a new key
    assert client.get("/state").json()["data"] == {"a": "1", "seen": how}


def test_session_cookie_age_shapes_the_cookie(site: Site) -> None:
    from django.test import Client, override_settings

    client = Client()
    with override_settings(SESSION_EXPIRE_AT_BROWSER_CLOSE=False, SESSION_COOKIE_AGE=900):
        cookie = client.post("/set", {"a": "1"}).cookies[COOKIE]
    assert cookie["max-age"] == 900
    cookie = client.post("/set", {"a": "2"}).cookies[COOKIE]  # at browser close again
    assert cookie["max-age"] == ""


def test_djangos_test_client_can_force_login(site: Site) -> None:
    from django.test import Client

    user = make_user()
    client = Client()
    client.force_login(user)
    assert client.get("/state").json()["user"] == user.username
    token = client.cookies[COOKIE].value
    assert site.record(token).user_id == str(user.pk)


def test_coatcheck_testing_logs_a_django_client_in_with_data(site: Site) -> None:
    from django.test import Client

    from coatcheck.testing import login_client

    user, other = make_user(), make_user()
    client = Client()
    token = login_client(client, None, user, data={"cart": ["tea"]})  # get_manager()'s
    assert client.cookies[COOKIE].value == token
    assert client.get("/state").json() == {"user": user.username, "data": {"cart": ["tea"]}}
    record = site.record(token)
    assert record.user_id == str(user.pk) and record.auth_at == site.clock.now
    assert [s.handle for s in user_sessions(user.pk)] == [record.handle]

    by_pk = Client()
    login_client(by_pk, site.manager, other.pk)  # a primary key works too
    assert by_pk.get("/state").json()["user"] == other.username
    by_pk.post("/logout")
    assert by_pk.get("/state").json()["user"] is None


# -- a client-side store behind Django -------------------------------------------------------
def test_the_cookie_store_works_behind_django(site: Site, tmp_path: Path) -> None:
    from coatcheck.security.sealing import new_key
    from coatcheck.stores import CookieStore

    revocations = SQLiteStore(tmp_path / "revocations.db")
    cookie_store = CookieStore([new_key()], revocations=revocations)
    configure(SessionManager(cookie_store, site.manager.config, clock=site.clock))
    user = make_user()
    try:
        with site.browser() as here, site.browser() as laptop:
            here.post("/set", data={"theme": "dark"})
            anonymous = here.cookies[COOKIE]
            assert len(anonymous) > tokens.TOKEN_LENGTH  # the session itself, sealed
            assert log_in_as(here, user) == {"user": user.username, "data": {"theme": "dark"}}
            assert here.cookies[COOKIE] != anonymous
            log_in_as(laptop, user)

            revoked = here.post("/password", data={"new": "n3w", "revoke_others": "1"})
            assert revoked.json() == {"revoked": 0}  # a cookie store cannot count them
            assert here.get("/state").json()["user"] == user.username
            assert laptop.get("/state").json()["user"] is None  # revoked by "not before"

            sealed = here.cookies[COOKIE]
            here.post("/logout")
            assert COOKIE not in here.cookies
        with site.browser() as thief:
            thief.cookies[COOKIE] = sealed  # a copy kept from before the logout
            assert thief.get("/state").json()["user"] is None
    finally:
        revocations.close_sync()


# -- migration from Django's db backend --------------------------------------------------------
def test_a_db_backend_session_moves_into_coatcheck_at_its_next_request(site: Site) -> None:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore as DbSessionStore
    from django.contrib.sessions.models import Session as DbSession

    user = make_user()
    old = DbSessionStore()
    old.update(
        {
            "cart": ["apple"],
            SESSION_KEY: str(user.pk),
            BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
            HASH_SESSION_KEY: user.get_session_auth_hash(),
        }
    )
    old.save()
    old_key = old.session_key
    assert old_key is not None and DbSession.objects.filter(session_key=old_key).exists()
    assert SessionStore(old_key).load()["cart"] == ["apple"]  # load(): what the old store holds

    with site.browser() as browser:
        browser.cookies[COOKIE] = old_key
        response = browser.get("/state")
        assert response.json() == {"user": user.username, "data": {"cart": ["apple"]}}
        token = browser.cookies[COOKIE]
        assert tokens.is_well_formed(token)
        record = site.record(token)
        assert record.user_id == str(user.pk) and record.data["cart"] == ["apple"]
        assert not DbSession.objects.filter(session_key=old_key).exists()
        assert browser.get("/state").json()["user"] == user.username

    with site.browser() as replay:
        replay.cookies[COOKIE] = old_key
        assert replay.get("/state").json() == {"user": None, "data": {}}


# -- the engine's refusals: 429 and 403 as on every edge, never a 500 ---------------------------
def test_a_client_guessing_tokens_is_throttled_with_a_429(site: Site) -> None:
    config = dataclasses.replace(site.manager.config, unknown_token_limit=3)
    configure(SessionManager(site.store, config, clock=site.clock))
    with site.browser() as browser:
        statuses = []
        for _ in range(5):
            browser.cookies[COOKIE] = tokens.new_token()
            statuses.append(browser.get("/state").status_code)
        assert COOKIE not in browser.cookies  # each answer, the 429s too, cleared it
        browser.cookies[COOKIE] = tokens.new_token()
        response = browser.get("/state")
    assert statuses == [200, 200, 200, 429, 429]
    assert response.status_code == 429 and int(response.headers["retry-after"]) >= 1


def test_a_login_over_the_session_limit_is_a_403_in_deny_mode(site: Site) -> None:
    config = dataclasses.replace(
        site.manager.config, max_sessions_per_user=1, session_limit_action="deny"
    )
    configure(SessionManager(site.store, config, clock=site.clock))
    user = make_user()
    with site.browser() as first, site.browser() as second:
        log_in_as(first, user)
        second.post("/set", data={"draft": "kept"})
        anonymous = second.cookies[COOKIE]
        refused = second.post(
            "/login", data={"username": user.username, "password": "correct horse"}
        )
        assert refused.status_code == 403
        assert b"too many active sessions" in refused.content
        # cycle_key() had moved the anonymous session before the refused save: the 403
        # still carries its new key (the old one is dead), so the draft is not lost.
        moved, _ = session_cookie(refused)
        assert moved != anonymous and site.record(anonymous) is None
        assert second.get("/state").json() == {"user": None, "data": {"draft": "kept"}}
        assert first.get("/state").json()["user"] == user.username


# -- a store failure is a 503, never a traceback -----------------------------------------------
def test_store_failure_on_load_is_a_503(site: Site, tmp_path: Path) -> None:
    broken = SQLiteStore(tmp_path / "no-such-dir" / "sessions.db")
    configure(SessionManager(broken, site.manager.config, clock=site.clock))
    with site.browser() as browser:
        browser.cookies[COOKIE] = tokens.new_token()
        response = browser.get("/state")
    assert response.status_code == 503
    assert response.content == UNAVAILABLE_BODY
    assert response.headers["cache-control"] == "no-store"
    assert "set-cookie" not in response.headers


def test_store_failure_on_save_is_a_503(site: Site) -> None:
    with site.browser() as browser:
        browser.post("/set", data={"a": "1"})
        token = browser.cookies[COOKIE]
        with contextlib.closing(sqlite3.connect(site.db, isolation_level=None)) as locker:
            locker.execute("BEGIN IMMEDIATE")  # another writer holds the file
            response = browser.post("/set", data={"a": "2"})
            locker.execute("ROLLBACK")
        assert response.status_code == 503
        assert response.content == UNAVAILABLE_BODY
        assert browser.cookies[COOKIE] == token
        assert browser.get("/state").json()["data"] == {"a": "1"}


def test_a_503_after_cycle_key_still_delivers_the_moved_key(site: Site) -> None:
    with site.browser() as browser:
        browser.post("/set", data={"a": "1"})
        before = browser.cookies[COOKIE]
        try:
            response = browser.get("/cycle-then-lock", params={"db": str(site.db)})
        finally:
            while LOCKERS:
                LOCKERS.pop().close()
        assert response.status_code == 503
        moved, _ = session_cookie(response)
        assert moved != before and site.record(before) is None
        assert browser.get("/state").json()["data"] == {"a": "1"}  # "late" was not saved


# -- settings ----------------------------------------------------------------------------------
def fixed_clock() -> float:
    return 1234.5


def test_manager_comes_from_settings_then_the_environment(
    base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    configure(None)
    try:
        with override_settings(
            COATCHECK_STORE="memory://",
            COATCHECK_CONFIG={"idle_timeout": 120},
            COATCHECK_CLOCK=f"{__name__}.fixed_clock",
        ):
            manager = get_manager()
            assert isinstance(manager.store, MemoryStore)
            assert manager.config.idle_timeout == 120
            assert manager.clock() == 1234.5
            assert get_manager() is manager

        monkeypatch.setenv("COATCHECK_STORE", "memory://")
        monkeypatch.setenv("COATCHECK_IDLE_TIMEOUT", "300")
        with override_settings(COATCHECK_STORE=None):
            assert get_manager().config.idle_timeout == 300

        monkeypatch.delenv("COATCHECK_STORE")
        with override_settings(COATCHECK_STORE=None), pytest.raises(ImproperlyConfigured):
            get_manager()
        with (
            override_settings(COATCHECK_STORE="memory://", COATCHECK_CONFIG={"idle": 1}),
            pytest.raises(ImproperlyConfigured, match="idle"),
        ):
            get_manager()
    finally:
        configure(None)


# -- the example project ----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_example_project_runs_login_and_logout(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "COATCHECK_STORE": f"sqlite:///{tmp_path / 'sessions.db'}",
        "EXAMPLE_DB": str(tmp_path / "auth.db"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    manage = [sys.executable, str(EXAMPLE / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, timeout=60)
    subprocess.run(
        [
            *manage,
            "shell",
            "-c",
            "from django.contrib.auth.models import User; "
            "User.objects.create_user('ada', password='lovelace-1815')",
        ],
        env=env,
        check=True,
        timeout=60,
    )
    port = free_port()
    log = (tmp_path / "runserver.log").open("wb")
    server = subprocess.Popen(
        [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        with Browser(url) as browser:
            page = wait_for(browser, "/login/")
            csrf = page.text.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
            response = browser.post(
                "/login/",
                data={"username": "ada", "password": "lovelace-1815", "csrfmiddlewaretoken": csrf},
                headers={"Referer": f"{url}/login/"},
            )
            assert response.status_code == 302, response.text
            token = browser.cookies[COOKIE]
            assert tokens.is_well_formed(token)
            home = browser.get("/")
            assert "ada" in home.text and "1 active session" in home.text
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def wait_for(browser: Browser, path: str) -> Any:
    import time

    import httpx

    deadline = time.monotonic() + 20
    while True:
        try:
            return browser.get(path)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
