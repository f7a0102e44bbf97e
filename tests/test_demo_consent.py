"""The demo shop's consent banner and privacy page over real HTTP (uvicorn), with the
deployment ``coatcheck serve`` builds: a SQLite store, its consent ledger and its privacy
registry. What each choice leaves is read from the ledger's rows and the registry's
export, never from the pages alone."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coatcheck.cli.serve import service_manager
from coatcheck.demo import create_app
from coatcheck.integrations.asgi import SessionMiddleware
from coatcheck.privacy.ledger import ConsentLedger
from coatcheck.privacy.registry import PrivacyRegistry
from coatcheck.service.metrics import Metrics
from tests.support.browser import Browser
from tests.support.server import serve

GPC_NOTE = (
    "Your browser's Global Privacy Control signal is respected: analytics and marketing stay off."
)
COOKIE = "__Host-session"


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("COATCHECK_TOMBSTONE_SECRET", "s" * 32)
    manager, registry = service_manager(f"sqlite:///{tmp_path / 'shop.db'}", Metrics())
    app = SessionMiddleware(create_app(manager, privacy=registry), manager=manager)
    with serve(app) as url:
        yield url, manager, registry
    manager.store.close_sync()  # type: ignore[union-attr]


@pytest.fixture
def url(deployment: Any) -> str:
    return str(deployment[0])


@pytest.fixture
def registry(deployment: Any) -> PrivacyRegistry:
    found = deployment[2]
    assert isinstance(found, PrivacyRegistry)
    return found


def ledger_of(registry: PrivacyRegistry) -> ConsentLedger:
    (ledger,) = [h for h in registry.holders if isinstance(h, ConsentLedger)]
    return ledger


@pytest.fixture
def opened(url: str) -> Iterator[list[Browser]]:
    browsers: list[Browser] = []
    yield browsers
    for browser in browsers:
        browser.close()


def visitor(url: str, opened: list[Browser], **headers: str) -> Browser:
    browser = Browser(url, csrf_path="/", headers=headers)
    opened.append(browser)
    return browser


def started(url: str, opened: list[Browser], **headers: str) -> Browser:
    browser = visitor(url, opened, **headers)
    assert browser.get("/start").status_code == 303
    return browser


def consent_attr(html: str) -> list[str]:
    """The categories the page tells coatcheck.js, sorted."""
    found = re.search(r'data-coatcheck-consent="([^"]*)"', html)
    assert found is not None
    return sorted(found.group(1).split())


def handle_of(html: str) -> str:
    found = re.search(r"public handle is <code>([^<]+)</code>", html)
    assert found is not None
    return found.group(1)


def test_a_first_visit_shows_the_banner_and_stores_nothing(url: str, opened: list[Browser]) -> None:
    browser = visitor(url, opened)
    page = browser.get("/")
    assert page.status_code == 200
    assert "Cookies and privacy" in page.text
    assert '<a href="/consent">Make your choice</a>' in page.text
    assert GPC_NOTE not in page.text
    assert "set-cookie" not in page.headers
    assert consent_attr(page.text) == []
    # The footer's "Privacy choices" opens the choices page, which starts the session its
    # forms need (the visitor asked), with all three answers.
    assert '<a href="/consent">Privacy choices</a>' in page.text
    choices = browser.get("/consent")
    assert choices.status_code == 200 and COOKIE in browser.cookies
    for label in ("Accept all", "Reject all", "Save my choices"):
        assert f"{label}</button>" in choices.text
    assert "<input type=checkbox checked disabled> Necessary" in choices.text
    for path in ("/", "/login", "/privacy"):  # every page asks until the visitor answers
        assert "Accept all</button>" in browser.get(path).text, path
    browser.post("/consent", data={"choice": "reject_all"})
    for path in ("/", "/login", "/privacy", "/consent"):
        assert "<aside id=consent" not in browser.get(path).text, path
    assert "Cookies and privacy" in browser.get("/consent").text  # the choices stay open


@pytest.mark.parametrize(
    ("form", "method", "allowed", "refused"),
    [
        ({"choice": "accept_all"}, "accept_all", ["analytics", "functional", "marketing"], []),
        ({"choice": "reject_all"}, "reject_all", [], ["analytics", "functional", "marketing"]),
        (
            {"choice": "custom", "functional": "1", "marketing": "1"},
            "custom",
            ["functional", "marketing"],
            ["analytics"],
        ),
    ],
)
def test_each_answer_is_recorded_in_the_ledger_and_the_banner_goes(
    url: str,
    opened: list[Browser],
    registry: PrivacyRegistry,
    form: dict[str, str],
    method: str,
    allowed: list[str],
    refused: list[str],
) -> None:
    browser = started(url, opened)
    shop = browser.get("/")
    assert "Accept all</button>" in shop.text and "Save my choices</button>" in shop.text
    handle = handle_of(shop.text)
    answer = browser.post("/consent", data=form, headers={"Referer": url + "/privacy"})
    assert answer.status_code == 303 and answer.headers["location"] == "/privacy"
    (row,) = ledger_of(registry).rows(handle=handle)
    assert (row["method"], row["allowed"], row["refused"]) == (method, allowed, refused)
    after = browser.get("/")
    assert "Cookies and privacy" not in after.text
    assert consent_attr(after.text) == allowed


def test_gpc_is_said_and_accept_all_keeps_analytics_and_marketing_off(
    url: str, opened: list[Browser], registry: PrivacyRegistry
) -> None:
    browser = visitor(url, opened, **{"Sec-GPC": "1"})
    first = browser.get("/")
    assert GPC_NOTE in html.unescape(first.text) and "set-cookie" not in first.headers
    browser.get("/start")
    shop = browser.get("/")
    assert GPC_NOTE in html.unescape(shop.text) and "Accept all</button>" in shop.text
    handle = handle_of(shop.text)
    browser.post("/consent", data={"choice": "accept_all"})
    rows = ledger_of(registry).rows(handle=handle)
    assert [r["method"] for r in rows] == ["gpc", "accept_all"]
    assert rows[-1]["allowed"] == ["functional"]
    assert rows[-1]["refused"] == ["analytics", "marketing"]
    after = browser.get("/")
    assert "Cookies and privacy" not in after.text and consent_attr(after.text) == ["functional"]
    # Only ticking the box is a grant.
    browser.post("/consent", data={"choice": "custom", "functional": "1", "analytics": "1"})
    assert consent_attr(browser.get("/").text) == ["analytics", "functional"]


def test_the_banner_refuses_a_post_without_csrf_and_an_unknown_choice(
    url: str, opened: list[Browser], registry: PrivacyRegistry
) -> None:
    browser = started(url, opened)
    forged = browser.post("/consent", data={"choice": "accept_all", "csrf_token": "x" * 10})
    assert forged.status_code == 403
    odd = browser.post("/consent", data={"choice": "everything"})
    assert odd.status_code == 400 and "Unknown choice" in odd.text
    elsewhere = browser.post(
        "/consent", data={"choice": "reject_all"}, headers={"Referer": "https://evil.example/"}
    )
    assert elsewhere.headers["location"] == "/"
    assert [r["method"] for r in ledger_of(registry).rows()] == ["reject_all"]


def sign_in(browser: Browser, user: str) -> None:
    answer = browser.post("/login", data={"username": user, "password": user})
    assert answer.status_code == 303, answer.text


def test_the_privacy_page_for_a_visitor_keeps_nothing(url: str, opened: list[Browser]) -> None:
    browser = visitor(url, opened)
    page = browser.get("/privacy")
    assert page.status_code == 200 and "set-cookie" not in page.headers
    assert "What this shop keeps" in page.text and "none but necessary" in page.text
    assert "Download my data" not in page.text and "Erase my account" not in page.text
    assert browser.get("/privacy/export").headers["location"] == "/login"


def test_download_holds_that_user_only(
    url: str, opened: list[Browser], registry: PrivacyRegistry
) -> None:
    alice, bob = started(url, opened), started(url, opened)
    sign_in(alice, "alice")
    sign_in(bob, "bob")
    alice_handle, bob_handle = (handle_of(b.get("/").text) for b in (alice, bob))
    page = alice.get("/privacy")
    assert "Download my data</button>" in page.text and "Erase my account" in page.text
    for method in ("GET", "POST"):
        download = alice.request(method, "/privacy/export")
        assert download.status_code == 200
        assert download.headers["content-type"] == "application/json"
        assert download.headers["content-disposition"] == (
            'attachment; filename="coatcheck-data-alice.json"'
        )
        document = json.loads(download.text)
        assert document["user_id"] == "alice" and document["erased"] is None
        sessions = document["holders"]["sessions"]["sessions"]
        assert [s["handle"] for s in sessions] == [alice_handle]
        assert bob_handle not in download.text and "bob" not in download.text


def test_erase_needs_the_password_then_ends_everything(
    url: str, opened: list[Browser], registry: PrivacyRegistry
) -> None:
    alice, phone = started(url, opened), started(url, opened)
    sign_in(alice, "alice")
    sign_in(phone, "alice")
    alice.post("/consent", data={"choice": "accept_all"})
    wrong = alice.post("/privacy/erase", data={"password": "bob"})
    assert wrong.status_code == 401 and "your account is not erased" in wrong.text
    assert alice.get("/account").status_code == 200
    done = alice.post("/privacy/erase", data={"password": "alice"})
    assert done.status_code == 303 and done.headers["location"] == "/privacy/erased"
    assert COOKIE not in alice.cookies
    assert done.headers["clear-site-data"] == '"cache", "cookies", "storage"'
    assert "Your account is erased" in alice.get("/privacy/erased").text
    for browser in (alice, phone):  # both devices are anonymous at their next request
        assert browser.get("/account").headers["location"] == "/login"
    # The demo refuses the erased user's sign-in (until a restart).
    retry = started(url, opened)
    assert retry.post("/login", data={"username": "alice", "password": "alice"}).status_code == 401
    document = json.loads(_export(registry, "alice"))
    assert document["erased"] is not None
    assert all(not any(section.values()) for section in document["holders"].values()), json.dumps(
        document["holders"]
    )


def _export(registry: PrivacyRegistry, user: str) -> str:
    import asyncio

    return json.dumps(asyncio.run(registry.export(user)))


def test_without_a_registry_the_two_rights_answer_503(tmp_path: Path) -> None:
    from coatcheck.engine.manager import SessionManager
    from coatcheck.stores import SQLiteStore

    store = SQLiteStore(tmp_path / "plain.db")
    manager = SessionManager(store)
    app = SessionMiddleware(create_app(manager), manager=manager)
    with serve(app) as url, Browser(url, csrf_path="/") as browser:
        browser.get("/start")
        sign_in(browser, "bob")
        assert browser.get("/privacy/export").status_code == 503
        erase = browser.post("/privacy/erase", data={"password": "bob"})
        assert erase.status_code == 503 and "Not available here" in erase.text
        assert browser.get("/account").status_code == 200  # nothing was erased
    store.close_sync()


def test_erase_without_a_tombstone_secret_is_refused_and_erases_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COATCHECK_TOMBSTONE_SECRET", raising=False)
    manager, registry = service_manager(f"sqlite:///{tmp_path / 'shop.db'}", Metrics())
    app = SessionMiddleware(create_app(manager, privacy=registry), manager=manager)
    with serve(app) as url, Browser(url, csrf_path="/") as browser:
        browser.get("/start")
        sign_in(browser, "alice")
        erase = browser.post("/privacy/erase", data={"password": "alice"})
        assert erase.status_code == 503 and "Erasure is not set up" in erase.text
        assert browser.get("/account").status_code == 200
        assert json.loads(browser.get("/privacy/export").text)["holders"]["sessions"]["sessions"]
    manager.store.close_sync()  # type: ignore[union-attr]


def test_coatcheck_serve_gives_the_shop_its_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from coatcheck.cli.serve import build_app
    from coatcheck.service.settings import ServiceSettings

    monkeypatch.setenv("COATCHECK_TOMBSTONE_SECRET", "u" * 32)
    settings = ServiceSettings.from_env({}, store_url=f"sqlite:///{tmp_path / 'serve.db'}")
    with serve(build_app(settings)) as url, Browser(url, csrf_path="/") as browser:
        browser.get("/start")
        sign_in(browser, "alice")
        download = browser.get("/privacy/export")
        assert download.status_code == 200 and json.loads(download.text)["user_id"] == "alice"
        browser.post("/consent", data={"choice": "reject_all"})
        exported = json.loads(browser.get("/privacy/export").text)
        assert [r["method"] for r in exported["holders"]["consent"]["rows"]] == ["reject_all"]
