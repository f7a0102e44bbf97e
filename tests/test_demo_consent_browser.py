"""The consent banner and the privacy page as a person uses them: headless Chromium over
the deployment ``coatcheck serve`` builds (a SQLite store, its consent ledger, its privacy
registry). Each choice is checked where it is recorded (the ledger's rows, the registry's
export), and ``coatcheck.storage`` in the page is asked what it now allows. Screenshots
go to build/screenshots/.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from coatcheck.cli.serve import service_manager
from coatcheck.demo import create_app
from coatcheck.integrations.asgi import SessionMiddleware
from coatcheck.privacy.ledger import ConsentLedger
from coatcheck.privacy.registry import PrivacyRegistry
from coatcheck.service.metrics import Metrics
from tests.support.chromium import ARGS, CHROMIUM, unnamed_controls
from tests.support.server import serve
from tests.test_demo_browser import SHOTS, submit

playwright_api = pytest.importorskip("playwright.sync_api")

GPC_NOTE = (
    "Your browser's Global Privacy Control signal is respected: analytics and marketing stay off."
)
CC = "window[Symbol.for('coatcheck')]"
"""coatcheck.js's instance in the page."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, PrivacyRegistry]]:
    monkeypatch.setenv("COATCHECK_TOMBSTONE_SECRET", "t" * 32)
    manager, registry = service_manager(f"sqlite:///{tmp_path / 'shop.db'}", Metrics())
    app = SessionMiddleware(create_app(manager, privacy=registry), manager=manager)
    with serve(app) as url:
        yield url, registry
    manager.store.close_sync()  # type: ignore[union-attr]


def ledger_rows(registry: PrivacyRegistry, handle: str) -> list[dict[str, Any]]:
    (ledger,) = [h for h in registry.holders if isinstance(h, ConsentLedger)]
    return ledger.rows(handle=handle)


def handle_of(page: Any) -> str:
    found = re.search(r"public handle is (\S+) \(safe", page.inner_text("body"))
    assert found is not None
    return found.group(1)


def exported(registry: PrivacyRegistry, user: str) -> dict[str, Any]:
    """The registry's export, run on a thread of its own (Playwright's sync API keeps an
    event loop running in this one)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, registry.export(user)).result()


def start(page: Any, url: str) -> None:
    page.goto(url + "/")
    with page.expect_navigation():
        page.click("text=Start shopping")


def writes(page: Any, category: str) -> bool:
    """Does coatcheck.storage in ``page`` accept a write in ``category``?"""
    return bool(page.evaluate(f"(c) => {CC}.storage.local.set('probe-' + c, 1, c)", category))


def wait_for_script(page: Any) -> None:
    page.wait_for_function(f"() => !!{CC}")


def test_first_visit_banner_then_each_answer_is_recorded(browser: Any, shop: Any) -> None:
    url, registry = shop
    context = browser.new_context()
    page = context.new_page()
    page.goto(url + "/")
    banner = page.get_by_role("complementary", name="Cookies and privacy")
    assert banner.is_visible() and context.cookies() == []  # asking stored nothing
    shot(page, "banner-first-visit")
    with page.expect_navigation():
        page.get_by_role("link", name="Make your choice").click()
    assert page.url == url + "/consent"
    submit(page, "Reject all")
    assert page.url == url + "/"
    handle = handle_of(page)
    rows = ledger_rows(registry, handle)
    assert [(r["method"], r["allowed"]) for r in rows] == [("reject_all", [])]
    assert page.get_by_role("complementary", name="Cookies and privacy").count() == 0
    wait_for_script(page)
    assert writes(page, "functional") is False and writes(page, "necessary") is True
    # The footer reopens the choices: accept all, recorded, and storage now takes it.
    with page.expect_navigation():
        page.get_by_role("link", name="Privacy choices").click()
    submit(page, "Accept all")
    rows = ledger_rows(registry, handle)
    assert rows[-1]["method"] == "accept_all"
    assert rows[-1]["allowed"] == ["analytics", "functional", "marketing"]
    wait_for_script(page)
    assert writes(page, "functional") is True and writes(page, "analytics") is True
    context.close()


def test_choose_records_the_ticked_categories(browser: Any, shop: Any) -> None:
    url, registry = shop
    context = browser.new_context()
    page = context.new_page()
    start(page, url)
    assert page.get_by_label("Necessary", exact=False).is_disabled()
    page.get_by_text("Choose", exact=True).click()
    shot(page, "banner-choose")
    page.get_by_label("Functional", exact=False).check()
    submit(page, "Save my choices")
    (row,) = ledger_rows(registry, handle_of(page))
    assert (row["method"], row["allowed"]) == ("custom", ["functional"])
    assert row["refused"] == ["analytics", "marketing"]
    wait_for_script(page)
    assert writes(page, "functional") is True and writes(page, "analytics") is False
    context.close()


def test_gpc_is_said_and_accept_all_keeps_analytics_off(browser: Any, shop: Any) -> None:
    url, registry = shop
    context = browser.new_context(extra_http_headers={"Sec-GPC": "1"})
    page = context.new_page()
    start(page, url)
    assert GPC_NOTE in page.inner_text("body")
    shot(page, "banner-gpc")
    submit(page, "Accept all")
    rows = ledger_rows(registry, handle_of(page))
    assert [r["method"] for r in rows] == ["gpc", "accept_all"]
    assert rows[-1]["allowed"] == ["functional"]
    assert rows[-1]["refused"] == ["analytics", "marketing"]
    wait_for_script(page)
    assert writes(page, "analytics") is False and writes(page, "functional") is True
    context.close()


def test_a_consent_change_reaches_the_other_tab(browser: Any, shop: Any) -> None:
    url, _ = shop
    context = browser.new_context()
    one = context.new_page()
    start(one, url)
    submit(one, "Accept all")
    two = context.new_page()
    two.goto(url + "/")
    wait_for_script(two)
    assert writes(two, "functional") is True
    one.goto(url + "/consent")
    submit(one, "Reject all")
    two.wait_for_function(f"() => {CC}.consent.get().length === 0")
    assert two.evaluate(f"() => {CC}.storage.local.get('probe-functional')") is None
    assert writes(two, "functional") is False
    context.close()


def sign_in(page: Any, url: str, user: str) -> None:
    page.goto(url + "/login")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(user)
    submit(page, "Sign in")


def test_download_gives_that_users_json_only(browser: Any, shop: Any, tmp_path: Path) -> None:
    url, _ = shop
    laptop, phone = browser.new_context(), browser.new_context()
    alice, bob = laptop.new_page(), phone.new_page()
    sign_in(alice, url, "alice")
    sign_in(bob, url, "bob")
    alice_handle, bob_handle = handle_of(alice), handle_of(bob)
    alice.goto(url + "/privacy")
    with alice.expect_download() as caught:
        alice.get_by_role("button", name="Download my data").click()
    download = caught.value
    assert download.suggested_filename == "coatcheck-data-alice.json"
    saved = tmp_path / "export.json"
    download.save_as(saved)
    document = json.loads(saved.read_text())
    assert document["user_id"] == "alice"
    assert [s["handle"] for s in document["holders"]["sessions"]["sessions"]] == [alice_handle]
    assert bob_handle not in saved.read_text() and "bob" not in saved.read_text()
    laptop.close()
    phone.close()


def test_erase_ends_the_session_and_leaves_only_the_tombstone(browser: Any, shop: Any) -> None:
    url, registry = shop
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, url, "alice")
    submit(page, "Accept all")
    wait_for_script(page)
    assert writes(page, "functional") is True
    other = context.new_page()  # a second tab of alice's
    other.goto(url + "/account")
    page.goto(url + "/privacy")
    page.get_by_label("Password").fill("alice")
    submit(page, "Erase my account")
    assert "Your account is erased" in page.inner_text("body")
    shot(page, "erased")
    assert context.cookies() == []
    wait_for_script(page)
    dump = page.evaluate("() => JSON.stringify([{...localStorage}, {...sessionStorage}])")
    assert "probe" not in dump  # coatcheck.storage wiped
    other.wait_for_url(url + "/", timeout=10_000)  # the other tab heard and left
    page.goto(url + "/account")
    assert page.url == url + "/login"  # the next request is anonymous
    document = exported(registry, "alice")
    assert document["erased"] is not None
    assert all(not any(section.values()) for section in document["holders"].values())
    context.close()


def test_every_control_of_the_banner_and_privacy_pages_is_named(browser: Any, shop: Any) -> None:
    url, _ = shop
    context = browser.new_context()
    page = context.new_page()
    start(page, url)
    page.get_by_text("Choose", exact=True).click()
    seen = {"banner": unnamed_controls(page)}
    page.goto(url + "/consent")
    seen["choices"] = unnamed_controls(page)
    sign_in(page, url, "bob")
    page.goto(url + "/privacy")
    seen["privacy"] = unnamed_controls(page)
    for name, (count, unnamed) in seen.items():
        assert count >= 3, name
        assert unnamed == [], name
    context.close()


def shot(page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"demo-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
