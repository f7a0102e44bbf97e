"""The admin dashboard (``/admin``) as an operator uses it: Debian's headless Chromium,
through Playwright, against the service served by uvicorn on a real port, over a SQLite
store seeded with real sessions.

What is seeded, and so what the pages must show: alice's phone session (which later comes
back from a tablet: a "client changed" event), bob's two sessions, carol's four (the
limit) and her refused fifth login (a "session limit reached" event), the admin key
``ops`` and an ``introspect`` key ``gateway``. Analytics and the consent ledger are not
part of this service yet, so the figures come from a provider returning a hand-made
document of the documented shape (``coatcheck.service.admin``); the live count, the
users, their sessions and the security events are the store's and the engine's own.

Screenshots go to ``tests/artifacts/`` (ignored by git); with
``COATCHECK_DOC_IMAGES=1`` the overview and the user page are also copied to
``docs/images/``, where ``docs/analytics.md`` shows them.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from coatcheck import SessionConfig, SessionManager
from coatcheck.core.client import ClientInfo
from coatcheck.core.events import SessionEvent
from coatcheck.demo import create_app as create_demo
from coatcheck.engine.operations import run_sync
from coatcheck.errors import SessionLimitExceeded
from coatcheck.integrations.asgi import SessionMiddleware
from coatcheck.service import apikeys
from coatcheck.service.admin import RecentEvents
from coatcheck.service.app import create_app
from coatcheck.service.context import Service
from coatcheck.service.metrics import Metrics, TimedStore
from coatcheck.service.settings import ServiceSettings
from coatcheck.stores import SQLiteStore
from tests.support.browser import Browser
from tests.support.chromium import ARGS, CHROMIUM, unnamed_controls
from tests.support.server import serve
from tests.support.user_agents import (
    CHROME_ANDROID,
    CHROME_WINDOWS,
    FIREFOX_LINUX,
    KEPT,
    SAFARI_IPHONE,
)

PHONE = KEPT[CHROME_ANDROID]
"""Alice's phone as the dashboard shows it: the user agent as it is kept (reduced)."""
LAPTOP = KEPT[CHROME_WINDOWS]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
DOC_IMAGES = ROOT / "docs" / "images"
ADMIN_COOKIE = "__Host-coatcheck-admin"
DAY = 86400.0
DOC_SHOTS = ("admin-overview", "admin-user")
"""The screenshots docs/analytics.md shows (the others stay in tests/artifacts/)."""

playwright_api = pytest.importorskip("playwright.sync_api")


class OffsetClock:
    """The real time plus an offset the test moves (the browser sees real deadlines)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class SeededFigures:
    """A provider of the documented shape: a hand-made week of analytics and consent
    figures; the security events are the real ones the service's sink kept."""

    def __init__(self, recent: RecentEvents) -> None:
        self.recent = recent
        self.asked: list[tuple[float, float, str | None]] = []
        self.broken = False
        """Set by a test: every method raises, as a provider whose store is down."""

    def check(self) -> None:
        if self.broken:
            raise ConnectionError("the analytics store is down")

    async def summary(self, since: float, until: float, route: str | None = None) -> dict[str, Any]:
        self.check()
        self.asked.append((since, until, route))
        start = until - 7 * DAY
        return {
            "visits": 412,
            "visitors": 57,
            "active_now": 9,
            "bounce_rate": 0.31,
            "pages_per_visit": 4.2,
            "duration_p50": 95,
            "duration_p90": 610,
            "login_share": 0.38,
            "time_to_login_p50": 42,
            "top_pages": [
                {"route": "/", "views": 640},
                {"route": "/products/{id}", "views": 480},
                {"route": "/cart", "views": 210},
                {"route": "/login", "views": 150},
                {"route": "/account", "views": 90},
            ],
            "transitions": [
                {"from": "/", "to": "/products/{id}", "count": 300},
                {"from": "/products/{id}", "to": "/cart", "count": 140},
                {"from": "/cart", "to": "/login", "count": 80},
            ],
            "end_reasons": {"idle_expired": 180, "logout": 60, "absolute_expired": 12},
            "devices": {"desktop": 230, "mobile": 160, "tablet": 22},
            "browsers": {"Firefox": 120, "Chrome": 250, "Safari": 42},
            "os": {"Linux": 90, "Windows": 150, "Android": 110, "iOS": 62},
            "series": {
                "day": [
                    {"start": start + i * DAY, "visits": v}
                    for i, v in enumerate([40, 52, 61, 58, 70, 66, 65])
                ],
                "hour": [
                    {"start": until - (12 - i) * 3600, "active": a}
                    for i, a in enumerate([2, 3, 5, 8, 12, 15, 14, 11, 9, 7, 6, 9])
                ],
            },
            "duration_histogram": [
                {"upto": 10, "visits": 128},
                {"upto": 60, "visits": 96},
                {"upto": 300, "visits": 110},
                {"upto": 1800, "visits": 64},
                {"upto": None, "visits": 14},
            ],
        }

    async def security_events(self, limit: int) -> list[SessionEvent]:
        self.check()
        return self.recent.latest(limit)

    async def consent(self, since: float, until: float) -> dict[str, Any]:
        self.check()
        return {
            "sessions": 40,
            "categories": {"necessary": 1.0, "analytics": 0.6, "marketing": 0.25},
            "gpc_share": 0.15,
        }


@dataclass
class Dashboard:
    url: str
    admin_key: str
    gateway_key: str
    manager: SessionManager
    store: SQLiteStore
    clock: OffsetClock
    figures: SeededFigures
    phone_token: str

    def live_handles(self, user: str) -> list[str]:
        return [info.handle for info in self.manager.list_user_sessions_sync(user)]


def seed(manager: SessionManager, user: str, agent: str, ip: str) -> str:
    session = manager.load_sync(None, ClientInfo(agent, ip))
    session.login(user)
    token = manager.commit_sync(session).token
    assert token is not None
    return token


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    store = SQLiteStore(tmp_path / "sessions.db")
    clock = OffsetClock()
    metrics = Metrics()
    config = SessionConfig(max_sessions_per_user=4, session_limit_action="deny")
    manager = SessionManager(TimedStore(store, metrics), config, clock, [metrics.sink])
    settings = ServiceSettings(store_url=f"sqlite:///{tmp_path / 'sessions.db'}", api_key_cache=0)
    service = Service.build(manager, settings, metrics)
    recent = RecentEvents()
    figures = SeededFigures(recent)
    demo = SessionMiddleware(create_demo(manager), manager=manager)
    app = create_app(manager, service, fallback=demo, dashboard=figures, recent=recent)

    admin_key = run_sync(apikeys.create("ops", ["admin"], clock()), store)
    gateway_key = run_sync(apikeys.create("gateway", ["introspect"], clock()), store)
    phone = seed(manager, "alice", CHROME_ANDROID, "203.0.113.7")
    seed(manager, "bob", FIREFOX_LINUX, "198.51.100.20")
    seed(manager, "bob", SAFARI_IPHONE, "192.0.2.44")
    for n in range(4):
        seed(manager, "carol", f"Kiosk/{n}.0", "198.51.100.80")
    with pytest.raises(SessionLimitExceeded):  # the fifth: "session limit reached"
        seed(manager, "carol", "Kiosk/5.0", "198.51.100.80")
    manager.load_sync(phone, ClientInfo("Tablet/3.0", "192.0.2.99")).close()  # client changed
    with serve(app) as url:
        yield Dashboard(url, admin_key, gateway_key, manager, store, clock, figures, phone)
    store.close_sync()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def submit(page: Any, name: str) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name=name, exact=True).click()


def sign_in(page: Any, url: str, key: str) -> None:
    page.goto(url + "/admin")  # not signed in: sent to the sign-in page
    assert page.url == url + "/admin/signin"
    page.get_by_label("Admin API key").fill(key)
    submit(page, "Sign in")


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("COATCHECK_DOC_IMAGES") == "1" and name in DOC_SHOTS:
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOC_IMAGES / path.name)
    return path


def find_user(page: Any, user: str) -> None:
    page.get_by_role("link", name="Users", exact=True).click()
    page.get_by_label("User id").fill(user)
    submit(page, "Find sessions")


def rows(page: Any) -> list[str]:
    return [row.inner_text() for row in page.locator("tbody tr").all()]


def test_a_wrong_key_is_refused_and_the_admin_key_signs_in(
    chromium: Any, dashboard: Dashboard
) -> None:
    context = chromium.new_context()
    page = context.new_page()
    sign_in(page, dashboard.url, "cc_" + "x" * 43)
    assert page.url == dashboard.url + "/admin/signin"
    assert "That is not an admin API key." in page.inner_text("body")
    shot(page, "admin-signin-refused")
    page.get_by_label("Admin API key").fill(dashboard.gateway_key)  # a real key, not admin
    submit(page, "Sign in")
    assert "That is not an admin API key." in page.inner_text("body")
    (anonymous,) = context.cookies()  # the sign-in form's session (its CSRF secret)

    page.get_by_label("Admin API key").fill(dashboard.admin_key)
    submit(page, "Sign in")
    assert page.url == dashboard.url + "/admin"
    assert page.get_by_role("heading", name="Overview").is_visible()
    (cookie,) = context.cookies()
    assert cookie["name"] == ADMIN_COOKIE
    assert cookie["value"] != anonymous["value"]  # a new token at sign-in
    assert (cookie["secure"], cookie["httpOnly"], cookie["sameSite"]) == (True, True, "Strict")
    assert dashboard.admin_key not in str(context.cookies())
    assert ADMIN_COOKIE not in page.evaluate("document.cookie")

    submit(page, "Sign out")
    assert page.url == dashboard.url + "/admin/signin"
    # The sign-in page gives the browser a new anonymous session for its form's token.
    assert [c["value"] for c in context.cookies()] != [cookie["value"]]
    page.goto(dashboard.url + "/admin/users?q=bob")
    assert page.url == dashboard.url + "/admin/signin"
    context.close()


def test_every_page_renders_with_the_seeded_data(chromium: Any, dashboard: Dashboard) -> None:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, dashboard.url, dashboard.admin_key)
    figures = dict(
        zip(
            page.locator("dl.figures dt").all_inner_texts(),
            page.locator("dl.figures dd").all_inner_texts(),
            strict=True,
        )
    )
    # 1 alice + 2 bob + 4 carol + this admin session, and the marker its sign-in (a login)
    # left under its pre-login token for rotation_grace (counted as stores count markers);
    # the API keys and JWT ring are not sessions
    assert figures["Live sessions in the store"] == "9"
    assert figures["Visits"] == "412" and figures["Bounce rate"] == "31%"
    assert figures["Median visit"] == "1m 35s" and figures["90th percentile visit"] == "10m 10s"
    captions = page.locator("figure figcaption").all_inner_texts()
    assert captions[:8] == [
        "Active sessions per hour",
        "Visits per day",
        "Visit duration",
        "Top pages (views)",
        "Transitions between pages",
        "Visits that log in",
        "How sessions end",
        "Devices",
    ]
    assert page.locator("figure svg[role=img]").count() == 10  # every chart had data
    assert "/products/{id} \u2192 /cart" in page.inner_text("body")
    (since, until, route) = dashboard.figures.asked[-1]
    assert (until - since, route) == (7 * DAY, None)  # the default range: a week
    shot(page, "admin-overview")

    page.get_by_label("Range").select_option("30")
    page.get_by_label("Route").fill("/cart")
    submit(page, "Show")
    (since, until, route) = dashboard.figures.asked[-1]
    assert (until - since, route) == (30 * DAY, "/cart")

    find_user(page, "bob")
    assert page.get_by_role("heading", name="Sessions of bob").is_visible()
    found = rows(page)
    assert len(found) == 2
    # The user agents and IPs as they are kept: reduced, and truncated to the /24.
    assert "Firefox 121 / Linux / desktop" in found[0] and "198.51.100.0" in found[0]
    assert "Mobile Safari 17 / iOS / mobile" in found[1]
    assert "198.51.100.20" not in found[0] and "rv:121.0" not in found[0]
    shot(page, "admin-user")

    page.get_by_role("link", name="Security", exact=True).click()
    page.wait_for_url("**/admin/security")
    events = rows(page)
    assert len(events) == 2
    assert "Client changed" in events[0] and "alice" in events[0]  # newest first
    assert "Session limit reached" in events[1] and "carol" in events[1]
    assert "active=4" in events[1]
    shot(page, "admin-security")

    page.get_by_role("link", name="Consent", exact=True).click()
    page.wait_for_url("**/admin/consent")
    body = page.inner_text("body")
    assert "Of 40 session(s) in this range." in body
    assert "Consent granted, by category" in body
    assert "Sessions sending Global Privacy Control" in body
    assert (
        "analytics: 60; marketing: 25; necessary: 100"
        in page.locator("svg desc").first.inner_html()
    )
    shot(page, "admin-consent")
    context.close()


def test_a_revoke_button_ends_that_session(chromium: Any, dashboard: Dashboard) -> None:
    shopper = chromium.new_context(user_agent=CHROME_WINDOWS)
    shop = shopper.new_page()
    shop.goto(dashboard.url + "/login")
    shop.get_by_label("Username").fill("alice")
    shop.get_by_label("Password").fill("alice")
    submit(shop, "Sign in")
    assert "Signed in as alice" in shop.inner_text("body")

    admin = chromium.new_context()
    page = admin.new_page()
    sign_in(page, dashboard.url, dashboard.admin_key)
    find_user(page, "alice")
    assert len(rows(page)) == 2  # the phone and the laptop
    (laptop,) = [
        h
        for h in dashboard.live_handles("alice")
        if h in " ".join(rows(page)) and LAPTOP in next(r for r in rows(page) if h in r)
    ]
    with page.expect_navigation():
        page.get_by_role("button", name=f"Revoke session {laptop} on {LAPTOP}").click()
    assert f"Session {laptop} revoked." in page.inner_text("body")
    assert [r for r in rows(page) if LAPTOP in r] == []

    with shop.expect_navigation():  # the shopper's next click finds no session
        shop.get_by_role("link", name="Shop", exact=True).click()
    assert "Signed in as" not in shop.inner_text("body")
    assert shopper.cookies() == []

    # The phone's token, through the API: live, then revoked by the button, then anonymous.
    api = httpx.Client(
        base_url=dashboard.url, headers={"authorization": f"Bearer {dashboard.admin_key}"}
    )
    assert (
        api.post(
            "/v1/sessions/introspect", json={"token": dashboard.phone_token, "touch": False}
        ).json()["active"]
        is True
    )
    (phone,) = dashboard.live_handles("alice")
    with page.expect_navigation():
        page.get_by_role("button", name=f"Revoke session {phone} on {PHONE}").click()
    assert api.post("/v1/sessions/introspect", json={"token": dashboard.phone_token}).json() == {
        "active": False
    }
    assert "No live session for this user id." in page.inner_text("body")
    api.close()
    shopper.close()
    admin.close()


def test_revoking_after_five_minutes_asks_for_the_key_again(
    chromium: Any, dashboard: Dashboard
) -> None:
    context = chromium.new_context()
    page = context.new_page()
    sign_in(page, dashboard.url, dashboard.admin_key)
    find_user(page, "bob")
    (before,) = context.cookies()
    dashboard.clock.offset = 5 * 60 + 30  # five and a half minutes on the server's clock

    submit(page, "Revoke every session of bob")
    assert page.get_by_role("heading", name="Enter your key again").is_visible()
    assert len(dashboard.live_handles("bob")) == 2  # nothing revoked yet
    page.get_by_label("Admin API key").fill(dashboard.gateway_key)  # another key
    submit(page, "Confirm and revoke")
    assert "That is not the key ops." in page.inner_text("body")
    assert len(dashboard.live_handles("bob")) == 2
    shot(page, "admin-key-again")

    page.get_by_label("Admin API key").fill(dashboard.admin_key)
    submit(page, "Confirm and revoke")
    assert "Revoked 2 session(s) of bob." in page.inner_text("body")
    assert dashboard.live_handles("bob") == []
    (after,) = context.cookies()
    assert after["value"] != before["value"]  # a fresh authentication, a new token
    context.close()


def test_a_form_post_without_the_token_is_refused(chromium: Any, dashboard: Dashboard) -> None:
    """The page's own form, its token field taken out (then replaced by a made-up one):
    the post is refused before the dashboard runs, and bob keeps his sessions. (The
    pages' Content-Security-Policy also forbids them any fetch: no script may post.)"""
    context = chromium.new_context()
    page = context.new_page()
    sign_in(page, dashboard.url, dashboard.admin_key)
    find_user(page, "bob")
    field = "form.actions input[name=csrf_token]"
    page.evaluate(f"document.querySelector('{field}').remove()")
    with page.expect_navigation():
        page.get_by_role("button", name="Revoke every session of bob").click()
    assert "CSRF check failed: missing token" in page.inner_text("body")
    assert len(dashboard.live_handles("bob")) == 2

    page.go_back()
    page.reload()
    page.evaluate(f"document.querySelector('{field}').value = 'A'.repeat(64)")
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Revoke every session of bob").click()
    assert navigation.value.status == 403
    assert "CSRF check failed" in page.inner_text("body")
    assert len(dashboard.live_handles("bob")) == 2
    context.close()


def test_every_control_and_button_has_an_accessible_name(
    chromium: Any, dashboard: Dashboard
) -> None:
    context = chromium.new_context()
    page = context.new_page()
    page.goto(dashboard.url + "/admin/signin")
    seen = {"sign-in": unnamed_controls(page)}
    sign_in(page, dashboard.url, dashboard.admin_key)
    seen["overview"] = unnamed_controls(page)
    find_user(page, "carol")
    seen["users"] = unnamed_controls(page)
    for name in ("security", "consent"):
        page.goto(f"{dashboard.url}/admin/{name}")
        seen[name] = unnamed_controls(page)
    dashboard.clock.offset = 6 * 60
    page.goto(dashboard.url + "/admin/users?q=carol")
    submit(page, "Revoke every session of carol")
    seen["key again"] = unnamed_controls(page)
    for name, (count, unnamed) in seen.items():
        assert count >= 1, name  # the tree was read: each page has the sign-out button or more
        assert unnamed == [], name
    context.close()


def test_a_shop_token_in_the_admin_cookie_opens_nothing(dashboard: Dashboard) -> None:
    """Same store, another manager: a shop session is never an admin session, even
    under the admin cookie's name (no engine metadata names an admin key)."""
    with Browser(dashboard.url, csrf_path=None) as client:
        client.cookies[ADMIN_COOKIE] = dashboard.phone_token
        response = client.get("/admin")
        assert (response.status_code, response.headers["location"]) == (303, "/admin/signin")


def test_revoking_the_key_ends_its_admin_sessions(dashboard: Dashboard) -> None:
    with Browser(dashboard.url, csrf_path="/admin/signin") as client:
        assert client.post("/admin/signin", data={"key": dashboard.admin_key}).status_code == 303
        for path in ("/admin", "/admin/users?q=bob", "/admin/security", "/admin/consent"):
            page = client.get(path)
            assert page.status_code == 200, path
            assert page.headers["cache-control"] == "no-store", path
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"], path
        run_sync(apikeys.revoke("ops", dashboard.clock()), dashboard.store)
        gone = client.get("/admin/security")
        assert (gone.status_code, gone.headers["location"]) == (303, "/admin/signin")
        assert ADMIN_COOKIE not in client.cookies  # the session ended with its key


def test_an_admin_session_ends_after_15_idle_minutes_or_8_hours(dashboard: Dashboard) -> None:
    minute = 60
    with Browser(dashboard.url, csrf_path="/admin/signin") as client:
        assert client.post("/admin/signin", data={"key": dashboard.admin_key}).status_code == 303
        dashboard.clock.offset = 16 * minute  # idle for 16 minutes
        assert client.get("/admin").status_code == 303
    dashboard.clock.offset = 0
    with Browser(dashboard.url, csrf_path="/admin/signin") as client:
        assert client.post("/admin/signin", data={"key": dashboard.admin_key}).status_code == 303
        for step in range(1, 35):  # a request every 14 minutes: never idle, 476 minutes in
            dashboard.clock.offset = step * 14 * minute
            assert client.get("/admin/security").status_code == 200, step
        dashboard.clock.offset = 481 * minute  # 5 minutes after the last: 8 h 1 min in all
        ended = client.get("/admin/security")
        assert (ended.status_code, ended.headers["location"]) == (303, "/admin/signin")


def test_a_failing_provider_or_a_strange_user_id_is_a_page_not_a_500(
    dashboard: Dashboard,
) -> None:
    with Browser(dashboard.url, csrf_path="/admin/signin") as client:
        assert client.post("/admin/signin", data={"key": dashboard.admin_key}).status_code == 303
        dashboard.figures.broken = True
        overview = client.get("/admin")
        assert overview.status_code == 200
        assert "Figures unavailable" in overview.text
        assert "Live sessions in the store" in overview.text
        assert "Figures unavailable" in client.get("/admin/consent").text
        assert "The events store did not answer." in client.get("/admin/security").text
        for query, said in (
            ("al\x00ice", "Not a user id: text must not contain NUL"),
            ("x" * 257, "A user id has at most 256 characters."),
        ):
            found = client.get("/admin/users", params={"q": query})
            assert (found.status_code, said in found.text) == (200, True), query
        page = client.get("/admin/nothing-here")
        assert page.status_code == 404 and "No page of the dashboard is here." in page.text
        assert client.get("/admin?days=oops").status_code == 200  # the default range
