"""The demo as a person uses it: headless Chromium clicking through the real pages.

Proves what only a browser can: that it accepts and returns the ``__Host-`` Secure cookie
on http://127.0.0.1, follows the redirects, that a revoke from one browser context (one
device) signs the other out at its next click, that the e-mail change asks for the
password once five minutes have passed on the manager's clock, and that Chromium's own
accessibility tree names every control and button. Screenshots go to build/screenshots/.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coatcheck import SessionManager
from coatcheck.demo import create_app
from coatcheck.integrations.asgi import SessionMiddleware
from coatcheck.stores import SQLiteStore
from tests.support.chromium import ARGS, CHROMIUM, unnamed_controls
from tests.support.server import serve
from tests.support.user_agents import FIREFOX_LINUX, KEPT, SAFARI_IPHONE

LAPTOP, PHONE = KEPT[FIREFOX_LINUX], KEPT[SAFARI_IPHONE]
"""What the account page shows of each browser: the reduced user agent."""


SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"

playwright_api = pytest.importorskip("playwright.sync_api")


class OffsetClock:
    """The real time plus an offset the test moves: the browser's cookies and coatcheck.js
    see real deadlines, while the server can be told five minutes have passed."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def submit(page: object, label: str) -> None:
    """Click a form's button and wait for the page it leads to."""
    with page.expect_navigation():  # type: ignore[attr-defined]
        page.get_by_role("button", name=label, exact=True).click()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def clock() -> OffsetClock:
    return OffsetClock()


@pytest.fixture
def demo_url(tmp_path: Path, clock: OffsetClock) -> Iterator[str]:
    store = SQLiteStore(tmp_path / "demo.db")
    manager = SessionManager(store, clock=clock)
    with serve(SessionMiddleware(create_app(manager), manager=manager)) as url:
        yield url
    store.close_sync()


def open_shop(page: object, demo_url: str) -> None:
    """Open the shop and click "Start shopping" (its forms need a session)."""
    page.goto(demo_url + "/")  # type: ignore[attr-defined]
    with page.expect_navigation():  # type: ignore[attr-defined]
        page.click("text=Start shopping")  # type: ignore[attr-defined]


def shot(page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"demo-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Any, user: str = "alice", password: str | None = None) -> None:
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password or user)
    submit(page, "Sign in")


def test_a_visitor_fills_a_cart_logs_in_and_out(browser: Any, demo_url: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(demo_url + "/")
    assert context.cookies() == []  # looking stores nothing
    with page.expect_navigation():
        page.click("text=Start shopping")
    page.get_by_label("Product").select_option("scarf")
    submit(page, "Add to cart")
    page.get_by_label("Product").select_option("hat")
    submit(page, "Add to cart")
    assert "Striped scarf" in page.inner_text("body")
    (cookie,) = context.cookies()
    assert cookie["name"] == "__Host-session"
    assert cookie["secure"] is True
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert "domain" not in cookie or cookie["domain"] == "127.0.0.1"  # host-only
    anonymous_token = cookie["value"]

    sign_in(page)
    body = page.inner_text("body")
    assert "Signed in as alice" in body
    assert "Striped scarf" in body and "Felt hat" in body  # the cart survived sign-in
    (cookie,) = context.cookies()
    assert cookie["value"] != anonymous_token  # new token at sign-in

    # JavaScript cannot read the session cookie, and nothing keeps the token in storage.
    assert "__Host-session" not in page.evaluate("document.cookie")
    dump = page.evaluate("() => JSON.stringify([{...localStorage}, {...sessionStorage}])")
    assert cookie["value"] not in dump

    submit(page, "Sign out")
    assert "Start shopping" in page.inner_text("body")  # no session any more
    assert "Signed in as" not in page.inner_text("body")
    assert context.cookies() == []
    context.close()


def device_rows(page: Any) -> list[str]:
    return [row.inner_text() for row in page.locator("tbody tr").all()]


def test_revoking_a_device_logs_it_out(browser: Any, demo_url: str, clock: OffsetClock) -> None:
    """The whole account journey: an anonymous cart kept through sign-in, two devices,
    one revoked from the other, the e-mail change that asks for the password again once
    more than five minutes have passed, and sign-out."""
    laptop = browser.new_context(user_agent=FIREFOX_LINUX)
    phone = browser.new_context(user_agent=SAFARI_IPHONE)
    laptop_page, phone_page = laptop.new_page(), phone.new_page()

    open_shop(laptop_page, demo_url)
    laptop_page.get_by_label("Product").select_option("umbrella")
    submit(laptop_page, "Add to cart")
    (anonymous,) = laptop.cookies()
    sign_in(laptop_page)
    assert "Folding umbrella" in laptop_page.inner_text("body")
    (signed,) = laptop.cookies()
    assert signed["value"] != anonymous["value"]

    with laptop_page.expect_navigation():
        laptop_page.get_by_role("link", name="Account", exact=True).click()
    (row,) = device_rows(laptop_page)
    assert LAPTOP in row and "(this device)" in row

    phone_page.goto(demo_url + "/login")
    sign_in(phone_page)
    assert "Signed in as alice" in phone_page.inner_text("body")

    laptop_page.reload()
    rows = device_rows(laptop_page)
    assert len(rows) == 2
    (this,) = [r for r in rows if "(this device)" in r]
    assert LAPTOP in this
    shot(laptop_page, "account-two-devices")
    with laptop_page.expect_navigation():
        laptop_page.get_by_role("button", name=f"Revoke the session on {PHONE}").click()
    assert "That device is signed out." in laptop_page.inner_text("body")
    assert [r for r in device_rows(laptop_page) if PHONE in r] == []
    with phone_page.expect_navigation():  # its next click finds no session
        phone_page.get_by_role("link", name="Shop", exact=True).click()
    assert "Signed in as" not in phone_page.inner_text("body")
    assert phone.cookies() == []  # the dead cookie was cleared

    clock.offset = 5 * 60 + 30  # five and a half minutes later, on the server's clock
    laptop_page.reload()
    assert "enter your password again" in laptop_page.inner_text("body")
    laptop_page.get_by_label("New e-mail address").fill("alice@new.example")
    submit(laptop_page, "Change e-mail")
    assert "Enter your password again" in laptop_page.inner_text("body")  # refused, 401
    shot(laptop_page, "email-asks-for-password")
    laptop_page.get_by_label("New e-mail address").fill("alice@new.example")
    laptop_page.get_by_label("Password", exact=True).fill("alice")
    submit(laptop_page, "Change e-mail")
    assert "Your e-mail address is now alice@new.example." in laptop_page.inner_text("body")
    (reauthenticated,) = laptop.cookies()
    assert reauthenticated["value"] != signed["value"]  # a fresh authentication, a new token

    submit(laptop_page, "Sign out")
    assert "Start shopping" in laptop_page.inner_text("body")
    assert laptop.cookies() == []
    laptop.close()
    phone.close()


def test_every_control_and_button_has_an_accessible_name(browser: Any, demo_url: str) -> None:
    laptop = browser.new_context(user_agent=FIREFOX_LINUX)
    phone = browser.new_context(user_agent=SAFARI_IPHONE)
    page = laptop.new_page()
    open_shop(page, demo_url)
    seen = {"shop": unnamed_controls(page)}
    page.goto(demo_url + "/login")
    seen["sign-in"] = unnamed_controls(page)
    sign_in(page)
    other = phone.new_page()
    other.goto(demo_url + "/login")
    sign_in(other)
    page.goto(demo_url + "/account")
    seen["account"] = unnamed_controls(page)
    shot(page, "account")
    for name, (count, unnamed) in seen.items():
        assert count >= 3, name  # the tree was read: each page has a form or more
        assert unnamed == [], name
    # The DOM agrees: each visible input and select is found by its label.
    for label in ("Current password", "New password", "New password again", "New e-mail address"):
        assert page.get_by_label(label, exact=True).count() == 1, label
    laptop.close()
    phone.close()
