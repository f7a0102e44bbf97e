"""Global Privacy Control on every edge (ASGI, FastAPI, WSGI, Flask, Django) over real
HTTP with a real SQLite store and the consent ledger beside it: ``Sec-GPC: 1`` refuses
analytics and marketing, is recorded with method ``gpc``, a banner's "accept all" does not
undo it, an explicit grant does; each framework's helper serves ``/.well-known/gpc.json``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from coatcheck import SessionManager
from coatcheck.privacy.ledger import ConsentLedger
from coatcheck.stores import SQLiteStore
from tests.support.browser import Browser
from tests.support.edges import EDGES, serve_edge

GPC = {"Sec-GPC": "1"}


@pytest.fixture(params=EDGES)
def edge(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, str, ConsentLedger]]:
    store = SQLiteStore(tmp_path / "edge.db")
    ledger = ConsentLedger.beside(store, environ={})
    manager = ledger.attach(SessionManager(store))
    try:
        with serve_edge(request.param, manager) as url:
            yield request.param, url, ledger
    finally:
        store.close_sync()


def browser_for(name: str, url: str, headers: dict[str, str]) -> Browser:
    return Browser(url, csrf_path=None if name == "django" else "/csrf", headers=headers)


def test_gpc_is_a_refusal_that_a_banner_click_does_not_undo(
    edge: tuple[str, str, ConsentLedger],
) -> None:
    name, url, ledger = edge
    browser = browser_for(name, url, GPC)
    try:
        first = browser.get("/consent").json()
        assert (first["analytics"], first["marketing"], first["method"]) == (False, False, "gpc")
        assert browser.cookies.get("__Host-session") is None  # the signal starts no session
        assert ledger.rows() == []

        clicked = browser.post("/consent?do=accept_all").json()
        assert clicked["functional"] is True
        assert (clicked["analytics"], clicked["marketing"]) == (False, False)
        granted = browser.post("/consent?do=grant:analytics").json()
        assert (granted["analytics"], granted["marketing"]) == (True, False)
        again = browser.get("/consent").json()  # still GPC, still the explicit grant
        assert (again["analytics"], again["gpc"]) == (True, True)
    finally:
        browser.close()
    rows = ledger.rows()
    assert [(r["method"], r["granted"], r["denied"]) for r in rows] == [
        ("gpc", [], ["analytics", "marketing"]),
        ("accept_all", ["functional"], []),
        ("custom", ["analytics"], []),
    ]
    assert len({r["handle"] for r in rows}) == 1


def test_without_the_signal_nothing_is_refused(edge: tuple[str, str, ConsentLedger]) -> None:
    name, url, ledger = edge
    for value in ("0", ""):
        browser = browser_for(name, url, {"Sec-GPC": value})
        try:
            assert browser.get("/consent").json()["method"] is None
            accepted = browser.post("/consent?do=accept_all").json()
            assert accepted["analytics"] is True and accepted["gpc"] is False
        finally:
            browser.close()
    assert [r["method"] for r in ledger.rows()] == ["accept_all", "accept_all"]


def test_gpc_json_is_served(edge: tuple[str, str, ConsentLedger]) -> None:
    _, url, _ = edge
    response = httpx.get(f"{url}/.well-known/gpc.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"gpc": True, "lastUpdate": "2026-12-07"}


def test_the_helpers_have_public_import_paths() -> None:
    import coatcheck.django
    import coatcheck.flask
    import coatcheck.starlette
    import coatcheck.wsgi

    names = [
        (coatcheck.starlette, "gpc_route"),
        (coatcheck.flask, "gpc_blueprint"),
        (coatcheck.django, "gpc_urls"),
        (coatcheck.wsgi, "gpc_app"),
    ]
    assert [callable(getattr(module, name, None)) for module, name in names] == [True] * 4


def test_a_last_update_that_is_no_date_is_refused_at_start_up() -> None:
    from coatcheck.errors import ConfigError
    from coatcheck.integrations.starlette import gpc_route

    assert gpc_route(last_update="2027-01-31").path == "/.well-known/gpc.json"
    for bad in ("2027-1-31", "yesterday", "2027-02-30"):
        with pytest.raises(ConfigError, match="YYYY-MM-DD"):
            gpc_route(last_update=bad)
