"""``logout()`` then ``login()`` in one request ends the old record (issue 13).

A handler that signs a user out and straight back in (an "exit impersonation" button, a
switch of account, a re-login after a password change) must get what a logout promises:
the old record ends, and the login starts from an empty session under a new handle, with
none of the old data or engine metadata (an impersonation flag, an MFA level) carried
over. Before the fix a login of the same user after a logout renamed the old record, so
its data and handle came back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from coatcheck import SessionConfig, SessionManager
from coatcheck.core import events as ev
from coatcheck.core.events import MemorySink
from coatcheck.stores import SQLiteStore
from coatcheck.stores.memory import MemoryStore
from tests.support.browser import Browser
from tests.support.clock import FakeClock
from tests.support.server import serve

IMPERSONATING = "impersonating"


def _manager(store_kind: str, tmp_path: Path, clock: FakeClock, sink: MemorySink) -> SessionManager:
    store = SQLiteStore(tmp_path / "s.db") if store_kind == "sqlite" else MemoryStore()
    return SessionManager(store, SessionConfig(), clock=clock, events=[sink])


def _signed_in(manager: SessionManager) -> tuple[str, str]:
    """A session of alice holding a cart, an impersonation flag and MFA level 2: its
    token and handle."""
    session = manager.load_sync(None)
    session["cart"] = ["book"]
    session.login("alice", level=2)
    session.set_meta(IMPERSONATING, "admin")
    result = manager.commit_sync(session)
    assert result.token is not None and session.handle is not None
    return result.token, session.handle


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
@pytest.mark.parametrize("who", ["alice", "bob"])
def test_logout_then_login_starts_an_empty_session(
    store_kind: str, who: str, tmp_path: Path, clock: FakeClock
) -> None:
    sink = MemorySink()
    manager = _manager(store_kind, tmp_path, clock, sink)
    old_token, old_handle = _signed_in(manager)

    session = manager.load_sync(old_token)
    session.logout()
    session.login(who)
    result = manager.commit_sync(session)

    assert result.token is not None and result.token != old_token
    assert not result.clear
    fresh = manager.load_sync(result.token)
    assert fresh.user_id == who
    assert dict(fresh) == {}
    assert fresh.handle is not None and fresh.handle != old_handle
    assert IMPERSONATING not in fresh.meta
    assert fresh.auth_level == 1
    assert manager.load_sync(old_token).is_new  # the old record is gone
    assert not manager.is_active_sync(old_handle)
    logouts = [e for e in sink.events if e.name == ev.LOGOUT]
    assert [e.handle for e in logouts] == [old_handle]


def test_logout_then_login_of_an_anonymous_session(tmp_path: Path, clock: FakeClock) -> None:
    """An anonymous session's data goes too: the logout said so."""
    manager = _manager("memory", tmp_path, clock, MemorySink())
    session = manager.load_sync(None)
    session["seen"] = ["/secret"]
    token = manager.commit_sync(session).token

    session = manager.load_sync(token)
    session.logout()
    session.login("alice")
    session["after"] = 1  # what the handler writes after the login stays
    result = manager.commit_sync(session)
    fresh = manager.load_sync(result.token)
    assert (fresh.user_id, dict(fresh)) == ("alice", {"after": 1})


def _app(manager: SessionManager) -> object:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from coatcheck.integrations.asgi import SessionMiddleware

    async def sign_in(request: Request) -> Response:
        session = request.session
        session["cart"] = ["book"]
        session.login("alice", level=2)  # type: ignore[attr-defined]
        session.set_meta(IMPERSONATING, "admin")  # type: ignore[attr-defined]
        return JSONResponse({})

    async def relogin(request: Request) -> Response:
        session = request.session
        session.logout()  # type: ignore[attr-defined]
        session.login(request.query_params["user"])  # type: ignore[attr-defined]
        return JSONResponse({})

    async def read(request: Request) -> Response:
        session = request.session
        return JSONResponse(
            {
                "user": session.user_id,  # type: ignore[attr-defined]
                "data": dict(session),
                "handle": session.handle,  # type: ignore[attr-defined]
                "meta": session.meta,  # type: ignore[attr-defined]
            }
        )

    async def csrf(request: Request) -> Response:
        return PlainTextResponse(request.session.csrf_token())  # type: ignore[attr-defined]

    routes = [
        Route("/csrf", csrf),
        Route("/in", sign_in, methods=["POST"]),
        Route("/relogin", relogin, methods=["POST"]),
        Route("/read", read),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SessionMiddleware, manager=manager)])


@pytest.fixture
def asgi_url(tmp_path: Path, clock: FakeClock) -> Iterator[str]:
    manager = _manager("sqlite", tmp_path, clock, MemorySink())
    with serve(_app(manager)) as url:
        yield url


COOKIE = "__Host-session"


def test_logout_then_login_through_asgi(asgi_url: str) -> None:
    with Browser(asgi_url) as browser:
        browser.post("/in")
        before = browser.get("/read").json()
        assert before["user"] == "alice" and before["meta"][IMPERSONATING] == "admin"
        old_cookie = browser.cookies[COOKIE]

        response = browser.post("/relogin", params={"user": "alice"})
        assert response.status_code == 200
        assert browser.cookies[COOKIE] != old_cookie
        after = browser.get("/read").json()
        assert after["user"] == "alice"
        assert after["data"] == {}
        assert after["handle"] != before["handle"]
        assert IMPERSONATING not in after["meta"]

        browser.cookies[COOKIE] = old_cookie
        assert browser.get("/read").json()["user"] is None
