"""The demo shop over real HTTP (uvicorn) with a real SQLite store: what a newcomer clicks
through, and the guards a demo must not get wrong (revocation scope, cross-site POSTs,
escaping)."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from coatcheck.core.record import Patch
from coatcheck.core.tokens import storage_key
from coatcheck.demo import create_app
from coatcheck.demo.shop import Accounts
from coatcheck.engine.manager import SessionManager
from coatcheck.integrations.asgi import SessionMiddleware
from coatcheck.stores import SQLiteStore
from tests.support.browser import Browser
from tests.support.clock import FakeClock
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
    agent = AGENTS.get(user_agent, user_agent)
    browser = Browser(base_url, csrf_path="/", headers={"User-Agent": agent})
    opened.append(browser)
    if start:
        assert browser.get("/start").status_code == 303
    return browser


_NAMES = ["Laptop", "Phone", "Tablet", "Laptop Firefox", "Phone Safari", "Bob's", "Alice's"]
_NAMES += [f"Device {i}" for i in range(3)]
AGENTS = {
    name: f"Mozilla/5.0 (X11; Linux x86_64; rv:{100 + i}.0) Gecko/20100101 Firefox/{100 + i}.0"
    for i, name in enumerate(_NAMES)
}
"""The test's labels of browsers, and the real user agent each sends: Firefox on Linux,
each label its own major version (100 for "Laptop", 101 for "Phone", ...)."""
KEPT_AS = {name: f"Firefox {100 + i} / Linux / desktop" for i, name in enumerate(_NAMES)}
"""What the store keeps of each (family and major, OS family, device class)."""
LABELS = {kept: name for name, kept in KEPT_AS.items()}


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
    """The user's sessions by the label of the browser that opened each (the store keeps
    the reduced user agent: ``KEPT``)."""
    infos = manager.list_user_sessions_sync(user)
    return {LABELS.get(info.user_agent or "", info.user_agent): info.handle for info in infos}


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
    assert KEPT_AS["Laptop Firefox"] in page.text and KEPT_AS["Phone Safari"] in page.text
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


def test_user_agent_is_escaped_on_the_sessions_page(
    base_url: str, browsers: list[Browser], manager: SessionManager
) -> None:
    # What the edges keep is reduced (a script in a user agent never reaches the store),
    # but a record written before minimisation, or by another client, may still hold one.
    browser = open_browser(base_url, browsers, "Laptop")
    log_in(browser, "alice")
    handle = handles_by_agent(manager, "alice")["Laptop"]
    record = manager.store.get_by_handle_sync(handle)
    assert record is not None
    manager.store.apply_sync(
        record.key, Patch(fields={"user_agent": '<script>alert("x")</script>'})
    )
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


class FormAudit(HTMLParser):
    """Every visible form control of a page inside a ``<label>``, and every button's text:
    what a screen reader would name them by."""

    def __init__(self) -> None:
        super().__init__()
        self.label_depth = 0
        self.unlabelled: list[str] = []
        self.controls = 0
        self.buttons: list[str] = []
        self._button: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        fields = dict(attrs)
        if tag == "label":
            self.label_depth += 1
        elif tag in ("input", "select", "textarea") and fields.get("type") != "hidden":
            self.controls += 1
            if self.label_depth == 0 and not fields.get("aria-label"):
                self.unlabelled.append(str(fields.get("name")))
        elif tag == "button":
            self._button = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.label_depth -= 1
        elif tag == "button" and self._button is not None:
            self.buttons.append("".join(self._button).strip())
            self._button = None

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button.append(data)


def audit(html: str) -> FormAudit:
    parser = FormAudit()
    parser.feed(html)
    return parser


def account_of(browser: Browser) -> str:
    response = browser.get("/account")
    assert response.status_code == 200
    return response.text


def test_demo_passwords_are_argon2id_hashes() -> None:
    accounts = Accounts()
    stored = accounts.password_hash_of("alice")
    assert stored.startswith("$argon2id$v=19$")
    assert "alice" not in stored.split("$", 4)[-1]  # salt and hash only, no password
    assert accounts.authenticate("alice", "alice") == "alice"
    assert accounts.authenticate("alice", "bob") is None
    assert accounts.authenticate("mallory", "mallory") is None
    accounts.set_password("alice", "correct horse")
    assert accounts.password_hash_of("alice") != stored  # a fresh salt, a new hash
    assert accounts.authenticate("alice", "alice") is None
    assert accounts.authenticate("alice", "correct horse") == "alice"


def test_the_sign_in_page_names_the_demo_users(
    base_url: str, browsers: list[Browser], manager: SessionManager
) -> None:
    """The sign-in page is where a visitor chose to go: it starts the session its form's
    CSRF token needs, names alice and bob, and a failed sign-in shows it again with 401."""
    browser = open_browser(base_url, browsers, "Laptop", start=False)
    first = browser.get("/login")
    assert first.status_code == 200 and first.headers["set-cookie"].startswith(f"{COOKIE}=")
    assert "<code>alice</code> / <code>alice</code>" in first.text
    assert "<code>bob</code> / <code>bob</code>" in first.text
    assert 'name="csrf_token"' in first.text and "Remember me" in first.text
    failed = browser.post("/login", data={"username": "bob", "password": "alice"})
    assert failed.status_code == 401 and "Wrong username or password." in failed.text
    assert 'action="/login"' in failed.text
    # Names are trimmed and lower-cased, as people type them; passwords are not.
    typed = browser.post("/login", data={"username": " Bob ", "password": "bob"})
    assert typed.status_code == 303
    assert logged_in_as(browser) == "bob"
    again = browser.get("/login")
    assert (again.status_code, again.headers["location"]) == (303, "/account")


def test_the_account_page_is_private_and_complete(base_url: str, browsers: list[Browser]) -> None:
    browser = open_browser(base_url, browsers, "Laptop")
    log_in(browser, "alice", remember=True)
    response = browser.get("/account")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"  # never kept for the back button
    page = response.text
    assert "Signed in as <b>alice</b> (remember-me (persistent cookie))" in page
    assert "Your e-mail address is <b>alice@example.com</b>." in page
    assert "1 active session(s)" in page and "(this device)" in page
    assert "No other device is signed in." in page
    for action in ('"/account/password"', '"/account/email"', '"/logout"'):
        assert f"action={action}" in page
    assert "name=password type=password" not in page  # signed in just now: no re-prompt


def test_every_control_has_a_label_and_every_button_a_name(
    base_url: str, browsers: list[Browser]
) -> None:
    laptop = open_browser(base_url, browsers, "Laptop")
    phone = open_browser(base_url, browsers, "Phone")
    laptop.post("/cart/add", data={"item": "coat"})
    pages_seen = [laptop.get("/").text, laptop.get("/login").text]
    log_in(laptop, "alice")
    log_in(phone, "alice")
    pages_seen += [laptop.get("/").text, account_of(laptop)]
    buttons: list[str] = []
    for html in pages_seen:
        found = audit(html)
        assert found.unlabelled == []
        assert found.controls > 0 and all(found.buttons)
        buttons += found.buttons
    assert f"Revoke the session on {KEPT_AS['Phone']}" in " ".join(buttons)
    assert {"Sign in", "Add to cart", "Sign out", "Change password", "Change e-mail"} <= {
        b.split("  ")[0] for b in buttons
    }


def test_changing_the_password_ends_the_other_sessions(
    base_url: str, browsers: list[Browser], manager: SessionManager
) -> None:
    laptop = open_browser(base_url, browsers, "Laptop")
    phone = open_browser(base_url, browsers, "Phone")
    bob = open_browser(base_url, browsers, "Bob's")
    for browser, user in ((laptop, "alice"), (phone, "alice"), (bob, "bob")):
        log_in(browser, user)
    before = laptop.cookies[COOKIE]

    def change(current: str, new: str, confirm: str) -> httpx.Response:
        form = {"current_password": current, "new_password": new, "confirm_password": confirm}
        return laptop.post("/account/password", data=form)

    wrong = change("bob", "correct horse", "correct horse")
    assert wrong.status_code == 401 and "Your current password is wrong." in wrong.text
    differ = change("alice", "correct horse", "correct h0rse")
    assert differ.status_code == 400 and "The two new passwords differ." in differ.text
    short = change("alice", "seven77", "seven77")
    assert short.status_code == 400 and "at least 8 characters" in short.text
    assert logged_in_as(phone) == "alice"  # nothing changed yet

    done = change("alice", "correct horse", "correct horse")
    assert (done.status_code, done.headers["location"]) == (303, "/account")
    assert laptop.cookies[COOKIE] != before  # this session's token changed too
    assert "Password changed; 1 other session(s) signed out." in account_of(laptop)
    assert "Password changed" not in account_of(laptop)  # the notice shows once
    assert logged_in_as(phone) is None
    assert logged_in_as(bob) == "bob"  # another user's sessions are untouched
    assert set(handles_by_agent(manager, "alice")) == {"Laptop"}

    old = open_browser(base_url, browsers, "Tablet")
    assert old.post("/login", data={"username": "alice", "password": "alice"}).status_code == 401
    new = old.post("/login", data={"username": "alice", "password": "correct horse"})
    assert new.status_code == 303


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clocked_url(tmp_path: Path, clock: FakeClock) -> Iterator[str]:
    """The demo over a manager whose clock the test moves: five minutes pass at once."""
    store = SQLiteStore(tmp_path / "clocked.db")
    manager = SessionManager(store, clock=clock)
    with serve(SessionMiddleware(create_app(manager), manager=manager)) as url:
        yield url
    store.close_sync()


def test_changing_the_email_asks_for_the_password_after_five_minutes(
    clocked_url: str, browsers: list[Browser], clock: FakeClock
) -> None:
    browser = open_browser(clocked_url, browsers, "Laptop")
    log_in(browser, "alice")

    clock.advance(300)  # exactly five minutes: still recent (older than 300 s asks)
    fresh = browser.post("/account/email", data={"email": "alice@new.example"})
    assert fresh.status_code == 303
    assert "Your e-mail address is now alice@new.example." in account_of(browser)

    clock.advance(1)  # 301 s since sign-in
    page = account_of(browser)
    assert "You signed in 5 min ago" in page  # 301 s, in whole minutes
    assert "name=password type=password" in page
    token = browser.cookies[COOKIE]
    asked = browser.post("/account/email", data={"email": "alice@later.example"})
    assert asked.status_code == 401
    assert "Enter your password again to change your e-mail address." in asked.text
    assert 'value="alice@later.example"' in asked.text  # what was typed is kept
    wrong = browser.post("/account/email", data={"email": "alice@later.example", "password": "x"})
    assert wrong.status_code == 401 and "That password is wrong." in wrong.text
    assert "<b>alice@new.example</b>" in account_of(browser)
    assert browser.cookies[COOKIE] == token

    done = browser.post(
        "/account/email", data={"email": "alice@later.example", "password": "alice"}
    )
    assert done.status_code == 303
    assert browser.cookies[COOKIE] != token  # a fresh authentication: a new token
    page = account_of(browser)
    assert "<b>alice@later.example</b>" in page
    assert "name=password type=password" not in page  # recent again
    clock.advance(60)
    again = browser.post("/account/email", data={"email": "a@third.example"})
    assert again.status_code == 303


@pytest.mark.parametrize("email", ["", "no-at-sign", "a@nodot", "two words@example.com"])
def test_a_malformed_email_is_refused(base_url: str, browsers: list[Browser], email: str) -> None:
    browser = open_browser(base_url, browsers, "Laptop")
    log_in(browser, "alice")
    response = browser.post("/account/email", data={"email": email})
    assert response.status_code == 400
    assert "Enter an e-mail address like name@example.com." in response.text
    assert "<b>alice@example.com</b>" in account_of(browser)


@pytest.fixture
def redis_shop() -> Iterator[tuple[str, SessionManager]]:
    """The demo over Redis, whose async client awaits the network: requests of one session
    interleave between their load and their commit, as they do in production."""
    from coatcheck.stores.redis import RedisStore
    from tests.support.redis_servers import delete_prefix, shared_redis_url, unique_prefix

    url, prefix = shared_redis_url(), unique_prefix()
    store = RedisStore.from_url(f"{url}?prefix={prefix}")
    manager = SessionManager(store)
    try:
        with serve(SessionMiddleware(create_app(manager), manager=manager)) as base:
            yield base, manager
    finally:
        store.close_sync()
        delete_prefix(url, prefix)


def test_fifty_concurrent_cart_additions_all_land(
    redis_shop: tuple[str, SessionManager], browsers: list[Browser]
) -> None:
    """Fifty tabs of one visitor add to the cart at once, over real HTTP: each addition is
    an append made in the store, so all fifty are kept (a write of the whole list would
    keep only what each request saw)."""
    import threading

    base_url, manager = redis_shop
    browser = open_browser(base_url, browsers, "Laptop")
    token = browser.csrf_token()
    cookies = dict(browser.cookies)
    items = ["coat", "scarf", "umbrella", "hat"]
    start = threading.Barrier(50)
    statuses: list[int] = []

    def add(i: int) -> None:
        with httpx.Client(base_url=base_url, cookies=cookies) as client:
            start.wait()
            form = {"item": items[i % 4], "csrf_token": token}
            statuses.append(client.post("/cart/add", data=form).status_code)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [303] * 50
    record = manager.store.get_sync(storage_key(browser.cookies[COOKIE]))
    assert record is not None
    cart = record.data["cart"]
    # 50 additions cycling through 4 products: 13 coats, 13 scarves, 12 umbrellas, 12 hats.
    assert len(cart) == 50
    assert {item: cart.count(item) for item in items} == {
        "coat": 13,
        "scarf": 13,
        "umbrella": 12,
        "hat": 12,
    }
