"""Promises every edge keeps alike (ASGI, FastAPI, WSGI, Flask, Django), over real HTTP.

Each test runs the same small app (tests/support/edges.py) on every edge with a real
SQLite store, so an edge that answers differently from the others fails by name.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from coatcheck import SessionConfig, SessionManager
from coatcheck.stores import SQLiteStore
from tests.support.browser import Browser
from tests.support.clock import FakeClock
from tests.support.edges import CSRF_EDGES, EDGES, serve_edge

COOKIE = "__Host-session"


@dataclass
class Site:
    edge: str
    url: str
    manager: SessionManager
    store: SQLiteStore
    clock: FakeClock
    db: Path

    def browser(self) -> Browser:
        # Django keeps its own CSRF: no token page to render there.
        return Browser(self.url, csrf_path=None if self.edge == "django" else "/csrf")

    def rows(self) -> list[tuple[str, str]]:
        """Every stored record, as (handle, data JSON)."""
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            query = "SELECT handle, data FROM coatcheck_sessions ORDER BY handle"
            return [(str(h), str(d)) for h, d in conn.execute(query)]


@contextlib.contextmanager
def site_for(
    edge: str, tmp_path: Path, clock: FakeClock, config: SessionConfig | None = None
) -> Iterator[Site]:
    db = tmp_path / f"{edge}.db"
    store = SQLiteStore(db)
    manager = SessionManager(store, config or SessionConfig(), clock=clock)
    try:
        with serve_edge(edge, manager) as url:
            yield Site(edge, url, manager, store, clock, db)
    finally:
        store.close_sync()


@pytest.fixture(params=EDGES)
def site(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[Site]:
    with site_for(request.param, tmp_path, clock) as s:
        yield s


def _logged(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    """What the server and the framework logged so far: an ASGI server logs the app's
    exception after the 500 is out, so the log is awaited briefly (at most 5 s)."""
    text = ""
    deadline = time.monotonic() + 5
    while "Traceback" not in text and time.monotonic() < deadline:
        time.sleep(0.02)
        text += capsys.readouterr().err
    return caplog.text + text


# -- 1. a value that is not JSON is the application's error -----------------------------------
def test_a_value_that_is_not_json_is_a_500_naming_the_key(
    site: Site, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """Never the 503 "store unavailable" (the store is fine: the app stored a datetime),
    nothing written, and the log (the server's or the framework's) names the key."""
    with site.browser() as browser:
        assert browser.post("/set", data={"value": "kept"}).status_code == 200
        before = site.rows()
        with caplog.at_level(logging.ERROR):
            response = browser.post("/bad")
        assert response.status_code == 500, response.text
        assert "unavailable" not in response.text.lower()
        assert "set-cookie" not in response.headers
        assert "session['when'] cannot be stored" in _logged(caplog, capsys)
        assert site.rows() == before
        assert browser.get("/read").json()["data"] == {"value": "kept"}


# -- 3. an empty X-CSRF-Token header leaves the form field to decide ---------------------------
@pytest.mark.parametrize("edge", CSRF_EDGES)
def test_an_empty_csrf_header_does_not_disable_the_form_field(
    edge: str, tmp_path: Path, clock: FakeClock
) -> None:
    """A front end that always sends the header, empty when it has no token, still posts
    forms that carry the token as the ``csrf_token`` field; and an empty header never
    counts as a token."""
    with site_for(edge, tmp_path, clock) as site, site.browser() as browser:
        token = browser.csrf_token()
        empty = {"X-CSRF-Token": ""}
        form = {"csrf_token": token, "value": "by form"}
        response = browser.post("/set", headers=empty, data=form)
        assert response.status_code == 200, response.text
        assert response.json()["data"] == {"value": "by form"}
        refused = browser.post("/set", headers=empty, data={"value": "no token"})
        assert refused.status_code == 403
        assert "missing token" in refused.text
        forged = browser.post("/set", headers=empty, data={"csrf_token": "x" * 86, "value": "?"})
        assert forged.status_code == 403
        assert "invalid token" in forged.text
        assert browser.get("/read").json()["data"] == {"value": "by form"}
