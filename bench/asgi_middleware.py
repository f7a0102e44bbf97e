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
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from coatcheck import SessionManager
from coatcheck.asgi import SessionMiddleware as CoatcheckMiddleware
from coatcheck.stores import MemoryStore, SQLiteStore

from .asgi_client import AsgiClient
from .harness import (
    BenchError,
    Case,
    Role,
    Scenario,
    Settings,
    StoreProbe,
    WorkloadResult,
    blame,
    measure,
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


@dataclass(slots=True)
class Built:
    app: ASGIApp
    cookie_name: str | None
    """The session cookie the first write must set; None for the bare app."""
    probe: StoreProbe | None = None
    expect_read_writes: float | None = None
    """Store writes a read-only request may make (coatcheck promises 0 between touches)."""


@dataclass(frozen=True, slots=True)
class Config:
    name: str
    role: Role
    build: Callable[[contextlib.ExitStack], Built]
    note: str = ""


COATCHECK_WRITES = ("create", "apply", "rename", "delete")


def _bare(stack: contextlib.ExitStack) -> Built:
    return Built(Starlette(routes=ROUTES, middleware=[Middleware(PlainDictSession)]), None)


def _coatcheck_memory(stack: contextlib.ExitStack) -> Built:
    store = MemoryStore()
    app = Starlette(
        routes=ROUTES,
        middleware=[Middleware(CoatcheckMiddleware, manager=SessionManager(store))],
    )
    probe = StoreProbe(store, reads=("get",), writes=COATCHECK_WRITES)
    return Built(app, "__Host-session", probe, expect_read_writes=0)


def _coatcheck_sqlite(stack: contextlib.ExitStack) -> Built:
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="coatcheck-bench-")))
    store = SQLiteStore(directory / "sessions.db")
    stack.callback(store.close_sync)
    app = Starlette(
        routes=ROUTES,
        middleware=[Middleware(CoatcheckMiddleware, manager=SessionManager(store))],
    )
    probe = StoreProbe(store, reads=("get",), writes=COATCHECK_WRITES)
    return Built(app, "__Host-session", probe, expect_read_writes=0)


def _starlette_cookie(stack: contextlib.ExitStack) -> Built:
    from starlette.middleware.sessions import SessionMiddleware

    app = Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(
                SessionMiddleware, secret_key="bench-secret-not-for-production", https_only=True
            )
        ],
    )
    return Built(app, "session")


def _starsessions_memory(stack: contextlib.ExitStack) -> Built:
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
    return Built(app, "session", StoreProbe(store, reads=("read",), writes=("write", "remove")))


CONFIGS = [
    Config("bare (no sessions)", Role.BASELINE, _bare),
    Config("coatcheck memory", Role.COATCHECK, _coatcheck_memory),
    Config("coatcheck sqlite", Role.COATCHECK, _coatcheck_sqlite, note="WAL, temp file"),
    Config("starlette signed cookie", Role.PEER, _starlette_cookie, note="itsdangerous"),
    Config("starsessions memory", Role.PEER, _starsessions_memory, note="InMemoryStore"),
]


# -- proving state is kept -----------------------------------------------------------------


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise BenchError(what)


async def _establish(built: Built) -> AsgiClient:
    """Return a client whose session holds n == 3, after proving the config keeps state."""
    client = AsgiClient(built.app)
    first = await client.get("/write")
    _require(first.status == 200, f"first /write answered {first.status}")
    _require(first.body == b"1", f"first /write answered {first.body!r}, not b'1'")
    if built.cookie_name is None:
        again = await client.get("/read")
        _require(again.body == b"0", "the bare app kept state it should not keep")
        return client
    _require(
        built.cookie_name in client.cookies,
        f"first /write set no {built.cookie_name} cookie (got {first.header(b'set-cookie')})",
    )
    for expected in (b"2", b"3"):
        response = await client.get("/write")
        _require(response.body == expected, f"/write answered {response.body!r}")
    response = await client.get("/read")
    _require(response.body == b"3", f"after 3 writes /read answered {response.body!r}")
    stranger = await AsgiClient(built.app).get("/read")
    _require(stranger.body == b"0", f"a client without the cookie read {stranger.body!r}")
    return client


async def _read_case(config: Config, stack: contextlib.ExitStack) -> Case:
    built = config.build(stack)
    client = await _establish(built)
    client.expect_body = b"0" if built.cookie_name is None else b"3"
    return Case(
        config.name,
        config.role,
        client.runner("/read"),
        probe=built.probe,
        expect_writes=built.expect_read_writes,
        note=config.note,
    )


async def _write_case(config: Config, stack: contextlib.ExitStack) -> Case:
    built = config.build(stack)
    client = await _establish(built)
    if built.cookie_name is None:
        client.expect_body = b"1"
        return Case(config.name, config.role, client.runner("/write"), note=config.note)

    inner = client.runner("/write")
    sent = 0

    async def run(n: int) -> None:
        nonlocal sent
        await inner(n)
        sent += n

    async def check() -> None:
        # Every write of warm-up and timing must have landed, in order, in one session.
        response = await client.get("/read")
        expected = str(3 + sent).encode()
        _require(
            response.body == expected,
            f"after {3 + sent} writes /read answered {response.body!r}, not {expected!r}",
        )

    return Case(config.name, config.role, run, check, built.probe, note=config.note)


async def run(settings: Settings, console: Console) -> list[WorkloadResult]:
    results = []
    for key, title, make in (
        ("asgi.read", "ASGI read-only request (GET /read)", _read_case),
        ("asgi.write", "ASGI writing request (GET /write)", _write_case),
    ):
        with contextlib.ExitStack() as stack:
            cases = []
            for config in CONFIGS:
                with blame(key, f"setting up {config.name}"):
                    cases.append(await make(config, stack))
            result = await measure(key, title, cases, settings, console)
        results.append(result)
    return results


SCENARIO = Scenario(
    name="asgi",
    description="Starlette app, in-process ASGI calls: coatcheck vs Starlette and starsessions",
    packages=("coatcheck", "starlette", "starsessions", "itsdangerous"),
    run=run,
)
