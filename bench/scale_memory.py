"""Redis memory per small session: coatcheck, starsessions and Flask-Session.

Each library is driven through its own middleware or extension, one request per session
(a user id and a 3-item cart), on a fresh private ``redis-server``: nothing here
reproduces a peer's serialization, so a peer's real format and key layout are measured.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from coatcheck import SessionManager

from .harness import BenchError
from .scale_sessions import CART, CONFIG
from .scale_stores import RedisServer, settle


@dataclass(slots=True)
class MemoryResult:
    library: str
    how: str
    sessions: int
    used_memory_per_session: float
    memory_usage_per_session: float
    keys_per_session: float
    value_bytes: int
    """Bytes of one session as the library serialized it (values and field names)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "library": self.library,
            "how": self.how,
            "sessions": self.sessions,
            "used_memory_bytes_per_session": round(self.used_memory_per_session, 1),
            "memory_usage_bytes_per_session": round(self.memory_usage_per_session, 1),
            "keys_per_session": self.keys_per_session,
            "serialized_bytes": self.value_bytes,
        }


# -- Redis memory per session --------------------------------------------------------------


async def _coatcheck_sessions(server: RedisServer, count: int, start: int) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from coatcheck.integrations.asgi import SessionMiddleware
    from coatcheck.stores.redis import RedisStore

    async def login(request: Request) -> PlainTextResponse:
        request.session.login(f"user-{request.path_params['n']}")
        request.session["cart"] = CART
        return PlainTextResponse("ok")

    store = RedisStore.from_url(f"redis://127.0.0.1:{server.port}/0")
    app: Any = SessionMiddleware(
        Starlette(routes=[Route("/login/{n:int}", login)]), manager=SessionManager(store, CONFIG)
    )
    try:
        await _log_in_each(app, start, count, "coatcheck")
    finally:
        await store.close()


async def _log_in_each(app: Any, start: int, count: int, library: str) -> None:
    """One new browser per session, each logging in once (``GET /login/<n>``)."""
    from .asgi_client import AsgiClient

    for n in range(start, start + count):
        response = await AsgiClient(app).get(f"/login/{n}")
        if response.status != 200 or not response.header(b"set-cookie"):
            raise BenchError(f"{library} login answered {response.status}")


async def _starsessions_sessions(server: RedisServer, count: int, start: int) -> None:
    import redis.asyncio
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starsessions import SessionAutoloadMiddleware, SessionMiddleware
    from starsessions.stores.redis import RedisStore

    async def login(request: Request) -> PlainTextResponse:
        request.session["user_id"] = f"user-{request.path_params['n']}"
        request.session["cart"] = CART
        return PlainTextResponse("ok")

    connection = redis.asyncio.Redis(port=server.port)
    app = Starlette(
        routes=[Route("/login/{n:int}", login)],
        middleware=[
            Middleware(SessionMiddleware, store=RedisStore(connection=connection)),
            Middleware(SessionAutoloadMiddleware),
        ],
    )
    try:
        await _log_in_each(app, start, count, "starsessions")
    finally:
        await connection.aclose()


async def _flask_session_sessions(server: RedisServer, count: int, start: int) -> None:
    import redis
    from flask import Flask, session
    from flask_session import Session

    app = Flask(__name__)
    connection = redis.Redis(port=server.port)
    app.config.update(SESSION_TYPE="redis", SESSION_REDIS=connection)
    Session(app)

    @app.route("/login/<int:n>")
    def login(n: int) -> str:
        session["user_id"] = f"user-{n}"
        session["cart"] = CART
        return "ok"

    client = app.test_client(use_cookies=False)
    try:
        for n in range(start, start + count):
            response = client.get(f"/login/{n}")
            if response.status_code != 200 or "Set-Cookie" not in response.headers:
                raise BenchError(f"Flask-Session login answered {response.status_code}")
    finally:
        connection.close()


MEMORY_LIBRARIES: Sequence[
    tuple[str, str, Callable[[RedisServer, int, int], Awaitable[None]], str, str]
] = (
    (
        "coatcheck RedisStore",
        "coatcheck.asgi middleware",
        _coatcheck_sessions,
        "redis",
        "coatcheck:s:*",
    ),
    (
        "starsessions RedisStore",
        "starsessions middleware",
        _starsessions_sessions,
        "starsessions",
        "starsessions.*",
    ),
    (
        "Flask-Session redis",
        "Flask-Session extension",
        _flask_session_sessions,
        "flask_session",
        "session:*",
    ),
)
"""(library, driven by, driver, module it needs, pattern of its session keys)."""


def _serialized(server: RedisServer, pattern: str) -> int:
    """Bytes of one session as the library stored it: the value of a string, or the field
    names and values of a hash."""
    import redis

    client = redis.Redis(port=server.port)
    try:
        key = next(client.scan_iter(match=pattern, count=1000), None)
        if key is None:
            raise BenchError(f"memory: no key matches {pattern!r}")
        if client.type(key) == b"hash":
            return sum(len(k) + len(v) for k, v in client.hgetall(key).items())
        return len(client.get(key) or b"")
    finally:
        client.close()


async def measure_memory(
    directory: Path, n: int, console: Console
) -> tuple[list[MemoryResult], list[str]]:
    """Each library on a fresh private server: 100 sessions first (connections, client
    buffers), then ``n`` more, measured. Returns the results and the libraries skipped."""
    import importlib.util

    results: list[MemoryResult] = []
    skipped: list[str] = []
    for library, how, drive, module, pattern in MEMORY_LIBRARIES:
        if importlib.util.find_spec(module) is None:
            skipped.append(f"memory: {library} ({module} is not installed)")
            console.print(f"  [yellow]skipped {library}: {module} is not installed[/]")
            continue
        server = RedisServer(directory, f"memory-{module}").start()
        client = server.client()
        try:
            with console.status(f"[bold]memory[/]: {n:,} sessions through {how}"):
                await drive(server, 100, 0)
                keys0, memory0 = int(client.dbsize()), settle(client)
                await drive(server, n, 100)
                keys1, memory1 = int(client.dbsize()), settle(client)
                usage = 0
                for chunk in _batched(client.scan_iter(count=1000), 1000):
                    pipe = client.pipeline(transaction=False)
                    for key in chunk:
                        pipe.memory_usage(key, samples=0)
                    usage += sum(pipe.execute())
            result = MemoryResult(
                library,
                how,
                n,
                (memory1 - memory0) / n,
                usage / (n + 100),
                (keys1 - keys0) / n,
                _serialized(server, pattern),
            )
            results.append(result)
            console.print(
                f"  memory: {library}: {result.used_memory_per_session:,.0f} B/session "
                f"(used_memory), {result.memory_usage_per_session:,.0f} B (MEMORY USAGE), "
                f"{result.keys_per_session:g} keys, {result.value_bytes:,} B serialized"
            )
        finally:
            client.close()
            server.stop()
    return results, skipped


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
