"""ASGI session middleware: what a session layer adds to a request in a Starlette app.

One Starlette app with two handlers, ``/read`` (reads ``session["n"]``) and ``/write``
(increments it), is measured bare and under each session middleware. The handlers are the
same code in every configuration; the bare app gets a fresh plain dict as its "session"
from a pass-through middleware, so it pays for one middleware layer and nothing else.

Every configuration is proven to keep state before it is timed (three writes, then a read
that answers 3, and a cookie-less client that still sees 0) and re-checked after timing, so
a broken wiring fails the run instead of reporting a fast number.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import tempfile
from pathlib import Path

from rich.console import Console
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from coatcheck import SessionManager
from coatcheck.integrations.asgi import SessionMiddleware as CoatcheckMiddleware
from coatcheck.stores import MemoryStore, SQLiteStore, Store

from .harness import Role, Scenario, Settings, StoreProbe, WorkloadResult
from .store_workloads import (
    COATCHECK_READS,
    COATCHECK_WRITES,
    Built,
    Config,
    Target,
    run_workloads,
)

COATCHECK_SQLITE = "coatcheck sqlite"
SQLITE_FLOOR = "sqlite3 floor"

TARGETS = [
    Target("read", COATCHECK_SQLITE, SQLITE_FLOOR, 1.15),
    Target("write", COATCHECK_SQLITE, SQLITE_FLOOR, 1.15),
]
"""Issue 18's SQLite target, as an overhead ratio (time added above the bare app)."""

FLOOR_NOTE = (
    f"{SQLITE_FLOOR}: the bare app whose handlers run raw sqlite3 statements on one fixed row "
    "of a table in a temporary file: one SELECT (read), SELECT + UPDATE (write), on one "
    "connection with SQLiteStore's settings (autocommit, WAL, synchronous=NORMAL, "
    "busy_timeout), in the event loop as the store's calls are"
)

# -- the app -------------------------------------------------------------------------------


async def read(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(request.session.get("n", 0)))


async def write(request: Request) -> PlainTextResponse:
    n = request.session.get("n", 0) + 1
    request.session["n"] = n
    return PlainTextResponse(str(n))


ROUTES = [Route("/read", read), Route("/write", write)]


class PlainDictSession:
    """The bare configuration's stand-in: a fresh dict per request, nothing kept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["session"] = {}
        await self.app(scope, receive, send)


# -- configurations ------------------------------------------------------------------------


async def _bare(stack: contextlib.AsyncExitStack, slug: str) -> Built:
    return Built(Starlette(routes=ROUTES, middleware=[Middleware(PlainDictSession)]), "none")


def _coatcheck(store: Store) -> Built:
    app = Starlette(
        routes=ROUTES,
        middleware=[Middleware(CoatcheckMiddleware, manager=SessionManager(store))],
    )
    probe = StoreProbe(store, reads=COATCHECK_READS, writes=COATCHECK_WRITES)
    return Built(app, "session", "__Host-session", probe, expect_read_writes=0)


async def _coatcheck_memory(stack: contextlib.AsyncExitStack, slug: str) -> Built:
    return _coatcheck(MemoryStore())


async def _coatcheck_sqlite(stack: contextlib.AsyncExitStack, slug: str) -> Built:
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="coatcheck-bench-")))
    store = SQLiteStore(directory / "sessions.db")
    stack.callback(store.close_sync)
    return _coatcheck(store)


async def _sqlite_floor(stack: contextlib.AsyncExitStack, slug: str) -> Built:
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="coatcheck-bench-")))
    conn = sqlite3.connect(
        directory / "floor.db", timeout=5.0, isolation_level=None, check_same_thread=False
    )
    stack.callback(conn.close)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE floor (key TEXT PRIMARY KEY, data TEXT NOT NULL)")
    conn.execute("INSERT INTO floor VALUES ('floor', '{}')")
    select = "SELECT data FROM floor WHERE key = ?"
    update = "UPDATE floor SET data = ? WHERE key = ?"

    def load() -> int:
        row = conn.execute(select, ("floor",)).fetchone()
        return int(json.loads(row[0]).get("n", 0))

    async def floor_read(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(load()))

    async def floor_write(request: Request) -> PlainTextResponse:
        n = load() + 1
        conn.execute(update, (json.dumps({"n": n}), "floor"))
        return PlainTextResponse(str(n))

    app = Starlette(
        routes=[Route("/read", floor_read), Route("/write", floor_write)],
        middleware=[Middleware(PlainDictSession)],
    )

    async def stored() -> list[int]:
        return [load()]

    return Built(app, "global", stored=stored)


async def _starlette_cookie(stack: contextlib.AsyncExitStack, slug: str) -> Built:
    from starlette.middleware.sessions import SessionMiddleware

    app = Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(
                SessionMiddleware, secret_key="bench-secret-not-for-production", https_only=True
            )
        ],
    )
    return Built(app, "session", "session")


async def _starsessions_memory(stack: contextlib.AsyncExitStack, slug: str) -> Built:
    # starsessions loads lazily: without SessionAutoloadMiddleware (or an explicit
    # ``await load_session(request)`` in the handler) request.session raises. The autoload
    # middleware is its documented way to keep handler code unchanged.
    from starsessions import InMemoryStore, SessionAutoloadMiddleware, SessionMiddleware

    store = InMemoryStore()
    app = Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(SessionMiddleware, store=store, cookie_https_only=True),
            Middleware(SessionAutoloadMiddleware),
        ],
    )
    probe = StoreProbe(store, reads=("read",), writes=("write", "remove"))
    return Built(app, "session", "session", probe)


CONFIGS = [
    Config("bare (no sessions)", Role.BASELINE, _bare),
    Config("coatcheck memory", Role.COATCHECK, _coatcheck_memory),
    Config(COATCHECK_SQLITE, Role.COATCHECK, _coatcheck_sqlite, note="WAL, temp file"),
    Config(SQLITE_FLOOR, Role.PEER, _sqlite_floor, note="raw SELECT / SELECT + UPDATE"),
    Config("starlette signed cookie", Role.PEER, _starlette_cookie, note="itsdangerous"),
    Config("starsessions memory", Role.PEER, _starsessions_memory, note="InMemoryStore"),
]


async def run(settings: Settings, console: Console) -> list[WorkloadResult]:
    # Proving state is kept, the cases and their checks: the same as the server stores'
    # (``store_workloads``), without fitting a time budget (in-process calls are fast).
    return await run_workloads(
        "asgi",
        "ASGI",
        CONFIGS,
        settings,
        console,
        wire=None,
        notes=[FLOOR_NOTE],
        targets=TARGETS,
        fit_budget=False,
    )


SCENARIO = Scenario(
    name="asgi",
    description="Starlette app, in-process ASGI calls: coatcheck vs Starlette and starsessions",
    packages=("coatcheck", "starlette", "starsessions", "itsdangerous"),
    run=run,
)
