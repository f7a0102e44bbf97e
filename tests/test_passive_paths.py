"""``SessionMiddleware(passive=...)``: a polling route sees its session, checked as on any
request, but never commits it, so polling alone cannot keep an abandoned session alive.
Real HTTP to uvicorn, a real SQLite store, and a clock the test moves."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from coatcheck import SessionConfig, SessionManager
from coatcheck.integrations.asgi import SessionMiddleware
from coatcheck.stores import SQLiteStore
from tests.support.clock import FakeClock
from tests.support.server import serve

COOKIE = "__Host-session"


async def login(request: Request) -> Response:
    request.session.login("ann")  # type: ignore[attr-defined]
    return PlainTextResponse("in")


async def who(request: Request) -> Response:
    return PlainTextResponse(str(request.session.user_id))  # type: ignore[attr-defined]


async def poll_write(request: Request) -> Response:
    request.session["seen"] = 1
    return PlainTextResponse("wrote")


@pytest.fixture
def site(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[str, Path]]:
    db = tmp_path / "s.db"
    manager = SessionManager(SQLiteStore(db), SessionConfig(csrf=False), clock=clock)
    app = Starlette(
        routes=[
            Route("/login", login, methods=["POST"]),
            Route("/page", who),
            Route("/poll", who),
            Route("/poll/write", poll_write),
            Route("/polling", who),
        ]
    )
    with serve(SessionMiddleware(app, manager=manager, passive=["/poll/"])) as url:
        yield url, db


def last_seen(db: Path) -> float:
    with sqlite3.connect(db) as conn:
        (value,) = conn.execute("SELECT last_seen_at FROM coatcheck_sessions").fetchone()
    return float(value)


def test_polling_neither_slides_nor_keeps_the_session(
    site: tuple[str, Path], clock: FakeClock
) -> None:
    url, db = site
    with httpx.Client(base_url=url) as client:
        token = client.post("/login").headers["set-cookie"].split(";")[0].split("=", 1)[1]
        cookie = {"cookie": f"{COOKIE}={token}"}
        start = last_seen(db)
        for _ in range(5):  # every five minutes for 25 minutes: only polls
            clock.advance(5 * 60)
            polled = client.get("/poll", headers=cookie)
            assert polled.text == "ann"  # checked like any request
            assert "set-cookie" not in polled.headers
            assert polled.headers["cache-control"] == "no-store"
            assert last_seen(db) == start  # never written
        # Half an hour after the last real request, the idle deadline (30 min) has passed.
        clock.advance(5 * 60)
        assert client.get("/page", headers=cookie).text == "None"


def test_an_active_route_beside_a_passive_one_still_slides(
    site: tuple[str, Path], clock: FakeClock
) -> None:
    url, db = site
    with httpx.Client(base_url=url) as client:
        token = client.post("/login").headers["set-cookie"].split(";")[0].split("=", 1)[1]
        cookie = {"cookie": f"{COOKIE}={token}"}
        start = last_seen(db)
        clock.advance(5 * 60)
        assert client.get("/polling", headers=cookie).text == "ann"  # not under /poll
        assert last_seen(db) == start + 5 * 60
        # A passive route that writes fails loudly (SessionCommittedError, a 500 with the
        # traceback in the log) instead of losing the write.
        assert client.get("/poll/write", headers=cookie).status_code == 500
        assert last_seen(db) == start + 5 * 60
