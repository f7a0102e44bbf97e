"""coatcheck.js in Debian's Chromium (headless, through Playwright) against a real
uvicorn-served app (``tests/support/js_app.py``) over a real SQLite store.

What only a browser can show: the CSRF header added to a real ``fetch`` and XHR gets a
POST past the real CSRF check; two tabs of one browser (pages of one context) stay in
step over a real BroadcastChannel; the idle warning appears before the server's deadline,
"Stay signed in" extends it on the server and silence ends in the sign-in page; and no
token is readable from JavaScript. Screenshots go to ``build/screenshots/``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coatcheck import SessionConfig, SessionManager
from coatcheck.core import tokens
from coatcheck.stores import SQLiteStore
from tests.support.chromium import ARGS, CHROMIUM
from tests.support.js_app import create_js_app
from tests.support.server import serve

SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
COOKIE = "__Host-session"

playwright_api = pytest.importorskip("playwright.sync_api")

IMPORT = "(await import('/coatcheck/coatcheck.js')).default"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


class Site:
    def __init__(self, url: str, store: SQLiteStore) -> None:
        self.url = url
        self.store = store

    def record(self, token: str) -> Any:
        return self.store.get_sync(tokens.storage_key(token))


@pytest.fixture
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    """The app; ``@pytest.mark.parametrize("site", [{"idle": 8, "warn": 5}], indirect=True)``
    shortens the timeouts. Clear-Site-Data is off, so what is wiped at sign-out is
    coatcheck.js's doing, not the browser's backstop."""
    options = getattr(request, "param", {})
    store = SQLiteStore(tmp_path / "sessions.db")
    config = SessionConfig(idle_timeout=options.get("idle", 1800), clear_site_data=False)
    manager = SessionManager(store, config)
    app = create_js_app(manager, warn=options.get("warn", 60))
    with serve(app) as url:
        yield Site(url, store)
    store.close_sync()


def sign_in(page: Any, url: str, user: str = "alice") -> None:
    page.goto(url + "/")
    page.fill("input[name=user]", user)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    assert page.url == url + "/account"
    page.wait_for_function(f"async () => {IMPORT}.deadline !== null")


def shot(page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"coatcheck-js-{name}.png"
    page.screenshot(path=str(path))
    return path


def test_the_csrf_header_gets_fetch_xhr_and_form_posts_through(chromium: Any, site: Site) -> None:
    context = chromium.new_context()
    page = context.new_page()
    # The sign-in form has no csrf_token field: the script adds it, or the POST is a 403.
    sign_in(page, site.url)
    saved = page.evaluate(
        """async () => {
            const r = await fetch("/api/note", {method: "POST",
                headers: {"content-type": "application/json"},
                body: JSON.stringify({text: "from fetch"})});
            return [r.status, await r.json()];
        }"""
    )
    assert saved == [200, {"saved": "from fetch"}]
    by_xhr = page.evaluate(
        """() => new Promise((ok) => {
            const x = new XMLHttpRequest();
            x.open("POST", "/api/note");
            x.setRequestHeader("content-type", "application/json");
            x.onloadend = () => ok([x.status, x.responseText]);
            x.send(JSON.stringify({text: "from xhr"}));
        })"""
    )
    assert by_xhr == [200, '{"saved":"from xhr"}']
    # The same cookie without the header is refused: the header is what made it pass.
    bare = context.request.post(site.url + "/api/note", data={"text": "bare"})
    assert bare.status == 403
    assert "CSRF check failed" in bare.text()
    context.close()


def test_sign_out_in_one_tab_takes_the_other_to_sign_in_and_wipes_its_storage(
    chromium: Any, site: Site
) -> None:
    context = chromium.new_context()
    shop, account = context.new_page(), context.new_page()
    sign_in(shop, site.url)
    account.goto(site.url + "/account")
    account.wait_for_function(f"async () => {IMPORT}.deadline !== null")
    stored = shop.evaluate(
        f"""async () => {{
            const cc = {IMPORT};
            return [cc.storage.local.set("draft", {{text: "half a review"}}),
                    cc.storage.session.set("step", 2)];
        }}"""
    )
    assert stored == [True, True]
    assert shop.evaluate("Object.keys(localStorage)") == ["coatcheck:alice:draft"]
    assert shop.evaluate("Object.keys(sessionStorage)") == ["coatcheck:alice:step"]
    shot(shop, "1-signed-in")

    started = time.monotonic()
    with shop.expect_navigation(url=site.url + "/", timeout=5000):
        account.get_by_role("button", name="Sign out").click()
    elapsed = time.monotonic() - started
    assert elapsed < 3, elapsed  # at once, not at the next request of that tab
    assert shop.get_by_role("button", name="Sign in").is_visible()
    assert shop.evaluate("Object.keys(localStorage)") == []
    assert shop.evaluate("Object.keys(sessionStorage)") == []  # this tab's own, too
    shot(shop, "2-signed-out-elsewhere")
    context.close()


def test_sign_in_in_one_tab_reloads_the_other(chromium: Any, site: Site) -> None:
    context = chromium.new_context()
    visitor, signer = context.new_page(), context.new_page()
    visitor.goto(site.url + "/")
    visitor.wait_for_function(f"async () => {IMPORT} !== null")
    with visitor.expect_navigation(timeout=5000):
        sign_in(signer, site.url)
    # The reloaded page is the signed-in state the server now gives this browser.
    assert visitor.evaluate(f"async () => {IMPORT}.user") == "alice"
    context.close()


def test_revocation_seen_in_one_tab_ends_every_tab(chromium: Any, site: Site) -> None:
    laptop = chromium.new_context()
    phone = chromium.new_context()
    one, two = laptop.new_page(), laptop.new_page()
    sign_in(one, site.url)
    two.goto(site.url + "/account")
    two.wait_for_function(f"async () => {IMPORT}.deadline !== null")
    other = phone.new_page()
    sign_in(other, site.url)
    revoked = other.evaluate("fetch('/api/revoke-others', {method: 'POST'}).then(r => r.json())")
    assert revoked == {"revoked": 1}
    # The laptop's next request finds no session (its CSRF token belonged to the revoked
    # session, so the POST is refused): the script asks, and both tabs leave.
    with two.expect_navigation(url=site.url + "/", timeout=5000):
        status = one.evaluate(
            """fetch("/api/note", {method: "POST", body: '{"text": "x"}'}).then(r => r.status)"""
        )
    assert status == 403
    one.wait_for_url(site.url + "/")
    laptop.close()
    phone.close()


@pytest.mark.parametrize("site", [{"idle": 8, "warn": 5}], indirect=True)
def test_idle_warning_stay_signed_in_then_silence_signs_out(chromium: Any, site: Site) -> None:
    context = chromium.new_context()
    page = context.new_page()
    sign_in(page, site.url)
    token = context.cookies()[0]["value"]
    first = site.record(token).expires_at
    deadline_ms = page.evaluate(f"async () => {IMPORT}.deadline")
    # The script's deadline is the server's, never early; late by the rounding to whole
    # seconds (of the header and of the Date that corrects clock skew) and the transit.
    assert first * 1000 <= deadline_ms <= first * 1000 + 3500, (first, deadline_ms)

    warning = page.get_by_role("alertdialog")
    warning.wait_for(timeout=8000)
    assert time.time() < first, ("the warning came before the deadline", time.time(), first)
    assert "You will be signed out in" in warning.inner_text()
    path = shot(page, "3-idle-warning")
    assert path.stat().st_size > 0

    page.get_by_role("button", name="Stay signed in").click()
    warning.wait_for(state="detached", timeout=3000)
    extended = site.record(token).expires_at
    assert extended > first, (first, extended)  # the keep-alive moved the server's deadline

    # Silence: the warning comes back, then the tab leaves for the sign-in page.
    warning.wait_for(timeout=10000)
    page.wait_for_url(site.url + "/", timeout=10000)
    assert time.time() >= extended
    assert site.record(token) is None or site.record(token).expires_at <= time.time()
    assert page.get_by_role("button", name="Sign in").is_visible()
    shot(page, "4-expired")
    context.close()


def test_no_token_is_readable_from_javascript(chromium: Any, site: Site) -> None:
    context = chromium.new_context()
    page = context.new_page()
    sign_in(page, site.url)
    page.evaluate(f"async () => {IMPORT}.storage.local.set('prefs', {{theme: 'dark'}})")
    (cookie,) = context.cookies()
    assert cookie["name"] == COOKIE and cookie["httpOnly"] is True
    token = cookie["value"]
    assert COOKIE not in page.evaluate("document.cookie")
    dump = page.evaluate(
        """() => JSON.stringify([localStorage, sessionStorage].map(
            (s) => Object.keys(s).map((k) => [k, s.getItem(k)])))"""
    )
    assert "prefs" in dump  # the storage is read, and holds what the page wrote
    assert token not in dump
    assert token not in page.content()
    context.close()


def test_the_demo_shop_loads_coatcheck_js(chromium: Any, tmp_path: Path) -> None:
    from coatcheck.demo import create_app
    from coatcheck.integrations.asgi import SessionMiddleware

    store = SQLiteStore(tmp_path / "demo.db")
    # 20 s idle, under the script's default 60 s warning: it shows as soon as it knows.
    manager = SessionManager(store, SessionConfig(idle_timeout=20))
    with serve(SessionMiddleware(create_app(manager), manager=manager)) as url:
        context = chromium.new_context()
        page = context.new_page()
        page.goto(url + "/")
        page.click("text=Start shopping")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", "alice")
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in", exact=True).click()
        assert page.evaluate(f"async () => {IMPORT}.user") == "alice"
        page.get_by_role("alertdialog").wait_for(timeout=5000)
        shot(page, "demo-idle-warning")
        before = page.evaluate(f"async () => {IMPORT}.deadline")
        page.wait_for_timeout(1100)  # the header counts whole seconds
        page.get_by_role("button", name="Stay signed in").click()
        page.wait_for_function(f"async () => {IMPORT}.deadline > {before}", timeout=5000)
        context.close()
    store.close_sync()
