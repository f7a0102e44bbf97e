"""The demo as a person uses it: headless Chromium clicking through the real pages.

Proves what only a browser can: that it accepts and returns the ``__Host-`` Secure cookie
on http://127.0.0.1, follows the redirects, and that a second browser's revoke logs the
first one out.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from coatcheck import SessionManager
from coatcheck.demo import create_app
from coatcheck.integrations.asgi import SessionMiddleware
from coatcheck.stores import SQLiteStore
from tests.support.server import serve

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

playwright_api = pytest.importorskip("playwright.sync_api")


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
def demo_url(tmp_path: Path) -> Iterator[str]:
    store = SQLiteStore(tmp_path / "demo.db")
    manager = SessionManager(store)
    with serve(SessionMiddleware(create_app(manager), manager=manager)) as url:
        yield url
    store.close_sync()


def open_shop(page: object, demo_url: str) -> None:
    """Open the shop and click "Start shopping" (its forms need a session)."""
    page.goto(demo_url + "/")  # type: ignore[attr-defined]
    with page.expect_navigation():  # type: ignore[attr-defined]
        page.click("text=Start shopping")  # type: ignore[attr-defined]


def test_a_visitor_fills_a_cart_logs_in_and_out(browser: object, demo_url: str) -> None:
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(demo_url + "/")
    assert context.cookies() == []  # looking stores nothing
    with page.expect_navigation():
        page.click("text=Start shopping")
    page.select_option("select[name=item]", "scarf")
    submit(page, "Add to cart")
    page.select_option("select[name=item]", "hat")
    submit(page, "Add to cart")
    assert "Striped scarf" in page.inner_text("body")
    (cookie,) = context.cookies()
    assert cookie["name"] == "__Host-session"
    assert cookie["secure"] is True
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    anonymous_token = cookie["value"]

    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "alice")
    submit(page, "Log in")
    body = page.inner_text("body")
    assert "Logged in as alice" in body
    assert "Striped scarf" in body and "Felt hat" in body  # the cart survived login
    (cookie,) = context.cookies()
    assert cookie["value"] != anonymous_token  # new token at login

    # JavaScript cannot read the session cookie.
    assert "__Host-session" not in page.evaluate("document.cookie")

    submit(page, "Log out")
    assert "Start shopping" in page.inner_text("body")  # no session any more
    assert "Logged in as" not in page.inner_text("body")
    assert context.cookies() == []
    context.close()


def test_revoking_a_device_logs_it_out(browser: object, demo_url: str) -> None:
    laptop = browser.new_context(user_agent="Laptop/1.0")  # type: ignore[attr-defined]
    phone = browser.new_context(user_agent="Phone/2.0")  # type: ignore[attr-defined]
    pages = []
    for context in (laptop, phone):
        page = context.new_page()
        open_shop(page, demo_url)
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", "alice")
        submit(page, "Log in")
        assert "Logged in as alice" in page.inner_text("body")
        pages.append(page)
    laptop_page, phone_page = pages
    with laptop_page.expect_navigation():
        laptop_page.click("text=See your devices")
    listing = laptop_page.inner_text("body")
    assert "Laptop/1.0" in listing
    assert "Phone/2.0" in listing
    submit(laptop_page, "Log out all other devices")
    phone_page.reload()
    assert "Logged in as" not in phone_page.inner_text("body")
    laptop_page.goto(demo_url + "/")
    assert "Logged in as alice" in laptop_page.inner_text("body")
    laptop.close()
    phone.close()
