"""The demo shop over real HTTP (uvicorn) with a real SQLite store: what a newcomer clicks
through, and the guards a demo must not get wrong (revocation scope, cross-site POSTs,
escaping)."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from coatcheck.core.tokens import storage_key
from coatcheck.demo import create_app
from coatcheck.engine.manager import SessionManager
from coatcheck.integrations.asgi import SessionMiddleware
from coatcheck.stores import SQLiteStore
from tests.support.browser import Browser
from tests.support.server import serve

COOKIE = "__Host-session"
ACCOUNT_POSTS = (
    "/account/devices/revoke",
    "/account/devices/revoke-others",
    "/account/password",
    "/account/email",
)


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[SessionManager]:
    store = SQLiteStore(tmp_path / "demo.db")
    yield SessionManager(store)
    store.close_sync()


@pytest.fixture
def base_url(manager: SessionManager) -> Iterator[str]:
    with serve(SessionMiddleware(create_app(manager), manager=manager)) as url:
        yield url


@pytest.fixture
def browsers(base_url: str) -> Iterator[list[Browser]]:
    opened: list[Browser] = []
    yield opened
    for browser in opened:
        browser.close()


def open_browser(
    base_url: str, opened: list[Browser], user_agent: str, *, start: bool = True
) -> Browser:
    """A visitor who clicked "Start shopping" (``start``), so the shop's forms are there.
    Before each form post it opens the shop page and takes that form's CSRF token."""
    browser = Browser(base_url, csrf_path="/", headers={"User-Agent": user_agent})
    opened.append(browser)
    if start:
        assert browser.get("/start").status_code == 303
    return browser


def stored_records(tmp_path: Path) -> int:
    """Every record in the demo's SQLite file, live or not (nothing hides a write)."""
    with contextlib.closing(sqlite3.connect(tmp_path / "demo.db")) as conn:
        tables = "SELECT count(*) FROM sqlite_master WHERE name = 'coatcheck_sessions'"
        if conn.execute(tables).fetchone()[0] == 0:
            return 0  # the store creates its table at its first write
        return int(conn.execute("SELECT count(*) FROM coatcheck_sessions").fetchone()[0])


def log_in(browser: Browser, user: str, *, remember: bool = False) -> None:
    form = {"username": user, "password": user}
    if remember:
        form["remember"] = "1"
    response = browser.post("/login", data=form)
    assert response.status_code == 303
    assert response.headers["location"] == "/"


def logged_in_as(browser: Browser) -> str | None:
    page = browser.get("/").text
    match = re.search(r"signed in as <b>([^<]+)</b>", page)
    return match.group(1) if match else None


def handles_by_agent(manager: SessionManager, user: str) -> dict[str | None, str]:
    return {info.user_agent: info.handle for info in manager.list_user_sessions_sync(user)}


def test_a_plain_get_writes_nothing(
    base_url: str, browsers: list[Browser], manager: SessionManager, tmp_path: Path
) -> None:
    """Passers-by and crawlers cost the store nothing: a first visit, and a returning
    visitor's reads within the touch interval, store no record and send no cookie."""
    visitor = open_browser(base_url, browsers, "Crawler", start=False)
    for _ in range(3):
        page = visitor.get("/")
        assert page.status_code == 200
        assert "set-cookie" not in page.headers
        assert "no session yet" in page.text and "Start shopping" in page.text
        assert "Wool coat" in page.text  # the catalogue is there to look at
    assert stored_records(tmp_path) == 0

    shopper = open_browser(base_url, browsers, "Laptop")
    assert shopper.post("/cart/add", data={"item": "coat"}).status_code == 303
    assert stored_records(tmp_path) == 1
    before = manager.store.get_sync(storage_key(shopper.cookies[COOKIE]))
    for _ in range(3):
        page = shopper.get("/")
        assert "Wool coat &times; 1" in page.text and "set-cookie" not in page.headers
    after = manager.store.get_sync(storage_key(shopper.cookies[COOKIE]))
    assert stored_records(tmp_path) == 1
    assert before is not None and after is not None
    assert (after.data, after.last_seen_at) == (before.data, before.last_seen_at)


def test_starting_to_shop_opens_a_secure_cookie_session(
    base_url: str, browsers: list[Browser], manager: SessionManager, tmp_path: Path
) -> None:
    browser = open_browser(base_url, browsers, "Laptop", start=False)
    first = browser.get("/start")
    assert first.status_code == 303 and first.headers["location"] == "/"
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Max-Age" not in cookie  # a browser-session cookie until remember-me
    page = browser.get("/").text
    assert "anonymous visitor" in page
    assert "alice" in page  # the demo users are shown
    assert 'action="/cart/add"' in page and 'action="/login"' in page
    assert browser.get("/start").headers.get("set-cookie") is None  # the session is kept

    token = browser.cookies[COOKIE]
    assert manager.store.get_sync(storage_key(token)) is not None
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("demo.db"))
    assert token.encode() not in stored
    assert storage_key(token).encode() in stored


def test_cart_survives_login_with_a_new_token(
    base_url: str, browsers: list[Browser], manager: SessionManager
) -> None:
    browser = open_browser(base_url, browsers, "Laptop")
    for item in ("coat", "scarf", "coat"):
        response = browser.post("/cart/add", data={"item": item})
        assert response.status_code == 303
    page = browser.get("/").text
    assert "Wool coat &times; 2" in page and "Striped scarf &times; 1" in page
    anonymous_token = browser.cookies[COOKIE]

    log_in(browser, "alice")
    assert browser.cookies[COOKIE] != anonymous_token  # no session fixation
    assert manager.store.get_sync(storage_key(anonymous_token)) is None
    page = browser.get("/").text
    assert "signed in as <b>alice</b>" in page
    assert "Wool coat &times; 2" in page and "Striped scarf &times; 1" in page

    assert browser.post("/cart/clear").status_code == 303
    assert "Your cart is empty." in browser.get("/").text


def test_unknown_product_is_rejected(base_url: str, browsers: list[Browser]) -> None:
    browser = open_browser(base_url, browsers, "Laptop")
    response = browser.post("/cart/add", data={"item": "<b>free money</b>"})
    assert response.status_code == 400
    assert "<b>free money</b>" not in response.text
    assert "Your cart is empty." in browser.get("/").text


def test_wrong_password_is_401_and_stays_anonymous(
    base_url: str, browsers: list[Browser], manager: SessionManager
) -> None:
    browser = open_browser(base_url, browsers, "Laptop")
    response = browser.post("/login", data={"username": "alice", "password": "bob"})
    assert response.status_code == 401
    assert "Wrong username or password." in response.text
    unknown = browser.post("/login", data={"username": "mallory", "password": "x"})
    assert unknown.status_code == 401
    assert logged_in_as(browser) is None
    assert manager.list_user_sessions_sync("alice") == []


def test_remember_me_sets_a_persistent_cookie(base_url: str, browsers: list[Browser]) -> None:
    plain = open_browser(base_url, browsers, "Laptop")
    response = plain.post("/login", data={"username": "bob", "password": "bob"})
    assert "Max-Age" not in response.headers["set-cookie"]

    remembered = open_browser(base_url, browsers, "Phone")
    response = remembered.post(
        "/login", data={"username": "bob", "password": "bob", "remember": "1"}
    )
    assert response.status_code == 303
    max_age = re.search(r"Max-Age=(\d+)", response.headers["set-cookie"])
    assert max_age and int(max_age.group(1)) > 29 * 24 * 3600
    assert "remember-me" in remembered.get("/").text


def test_account_pages_need_a_sign_in(base_url: str, browsers: list[Browser]) -> None:
    """Every account route sends an anonymous visitor to the sign-in page."""
    browser = open_browser(base_url, browsers, "Laptop")
    response = browser.get("/account")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    for path in ACCOUNT_POSTS:
        response = browser.post(path, data={"handle": "x", "email": "a@b.example"})
        assert (response.status_code, response.headers["location"]) == (303, "/login"), path


def test_sessions_lists_devices_and_revokes_the_other(
    base_url: str, browsers: list[Browser], manager: SessionManager
) -> None:
    laptop = open_browser(base_url, browsers, "Laptop Firefox")
    phone = open_browser(base_url, browsers, "Phone Safari")
    log_in(laptop, "alice")
    log_in(phone, "alice")
    handles = handles_by_agent(manager, "alice")
    assert set(handles) == {"Laptop Firefox", "Phone Safari"}

    page = laptop.get("/account")
    assert page.status_code == 200
    assert "2 active session(s)" in page.text
    assert "Laptop Firefox" in page.text and "Phone Safari" in page.text
    assert "127.0.0.0" in page.text  # truncated IP, never the full address
    assert page.text.count("(this device)") == 1
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", page.text)
    (this_row,) = [row for row in rows if "(this device)" in row]
    assert handles["Laptop Firefox"] in this_row and "Phone Safari" not in this_row

    response = laptop.post("/account/devices/revoke", data={"handle": handles["Phone Safari"]})
    assert response.status_code == 303
    assert response.headers["location"] == "/account"
    assert logged_in_as(phone) is None
    assert logged_in_as(laptop) == "alice"
    assert set(handles_by_agent(manager, "alice")) == {"Laptop Firefox"}


def test_revoking_this_device_logs_out(
    base_url: str, browsers: list[Browser], manager: SessionManager
) -> None:
    laptop = open_browser(base_url, browsers, "Laptop")
    log_in(laptop, "alice")
    handle = handles_by_agent(manager, "alice")["Laptop"]
    response = laptop.post("/account/devices/revoke", data={"handle": handle})
    assert response.status_code == 303
    assert COOKIE not in laptop.cookies
    assert manager.list_user_sessions_sync("alice") == []


def test_revoke_others_keeps_only_this_device(
    base_url: str, browsers: list[Browser], manager: SessionManager
) -> None:
    devices = [open_browser(base_url, browsers, f"Device {i}") for i in range(3)]
    for device in devices:
        log_in(device, "alice")
    bob = open_browser(base_url, browsers, "Bob's")
    log_in(bob, "bob")

    response = devices[0].post("/account/devices/revoke-others")
    assert response.status_code == 303
    assert [logged_in_as(d) for d in devices] == ["alice", None, None]
    assert logged_in_as(bob) == "bob"
    assert set(handles_by_agent(manager, "alice")) == {"Device 0"}
    assert "Sign out everywhere else" not in devices[0].get("/account").text


def test_revoking_another_users_handle_does_nothing(
    base_url: str, browsers: list[Browser], manager: SessionManager
) -> None:
    alice = open_browser(base_url, browsers, "Alice's")
    bob = open_browser(base_url, browsers, "Bob's")
    log_in(alice, "alice")
    log_in(bob, "bob")
    bob_handle = handles_by_agent(manager, "bob")["Bob's"]

    response = alice.post("/account/devices/revoke", data={"handle": bob_handle})
    assert response.status_code == 303
    assert logged_in_as(bob) == "bob"
    assert handles_by_agent(manager, "bob") == {"Bob's": bob_handle}
    assert logged_in_as(alice) == "alice"


def test_logout_deletes_the_session(
    base_url: str, browsers: list[Browser], manager: SessionManager
) -> None:
    browser = open_browser(base_url, browsers, "Laptop")
    browser.post("/cart/add", data={"item": "hat"})
    log_in(browser, "alice")
    token = browser.cookies[COOKIE]

    response = browser.post("/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert COOKIE not in browser.cookies
    assert manager.store.get_sync(storage_key(token)) is None
    assert manager.list_user_sessions_sync("alice") == []
    page = browser.get("/").text
    assert "anonymous visitor" in page and "Your cart is empty." in page


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
def test_cross_site_posts_are_forbidden(
    base_url: str, browsers: list[Browser], headers: dict[str, str]
) -> None:
    browser = open_browser(base_url, browsers, "Laptop")
    log_in(browser, "alice")
    for path, data in (("/logout", None), ("/cart/add", {"item": "coat"})):
        response = browser.post(path, data=data, headers=headers)
        assert response.status_code == 403
    assert logged_in_as(browser) == "alice"
    assert "Your cart is empty." in browser.get("/").text
    forged_login = browser.post(
        "/login", data={"username": "bob", "password": "bob"}, headers=headers
    )
    assert forged_login.status_code == 403
    assert logged_in_as(browser) == "alice"


def test_same_origin_posts_are_allowed(base_url: str, browsers: list[Browser]) -> None:
    browser = open_browser(base_url, browsers, "Laptop")
    response = browser.post(
        "/cart/add",
        data={"item": "coat"},
        headers={"Origin": base_url, "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 303
    assert "Wool coat &times; 1" in browser.get("/").text


def test_user_agent_is_escaped_on_the_sessions_page(base_url: str, browsers: list[Browser]) -> None:
    browser = open_browser(base_url, browsers, '<script>alert("x")</script>')
    log_in(browser, "alice")
    page = browser.get("/account").text
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_every_form_carries_its_own_csrf_token_and_a_post_without_one_is_refused(
    base_url: str, browsers: list[Browser]
) -> None:
    browser = open_browser(base_url, browsers, "Laptop")
    page = browser.get("/").text
    forms = page.count("<form")
    fields = re.findall(r'<input type=hidden name="csrf_token" value="([^"]+)">', page)
    assert forms >= 2 and len(fields) == forms  # one per form...
    assert len(set(fields)) == len(fields)  # ...each masked afresh

    # The same browser, posting without taking the token from a page (a forged form).
    forger = Browser(base_url, csrf_path=None)
    browsers.append(forger)
    forger.cookies = dict(browser.cookies)
    refused = forger.post("/cart/add", data={"item": "coat"})
    assert refused.status_code == 403
    assert refused.text == "CSRF check failed: missing token\n"
    stale = forger.post("/cart/add", data={"item": "coat", "csrf_token": fields[0][::-1]})
    assert stale.status_code == 403
    assert "Your cart is empty." in browser.get("/").text
    accepted = forger.post("/cart/add", data={"item": "coat", "csrf_token": fields[-1]})
    assert accepted.status_code == 303
    assert "Wool coat &times; 1" in browser.get("/").text
