"""Redis: coatcheck's RedisStore next to the raw redis.asyncio floor and starsessions' Redis
store, on read-only and writing requests, with round trips per request.

Issue 6 sets the bar: one round trip for a read-only request and two for a writing one
(load, then commit); within 1.15x of the raw client floor for the same round trips; at most
0.55x starsessions' Redis store on read-only requests (starsessions does a GET and a SET on
every request that loaded a non-empty session).

The floor is measured in the same run: the bare app whose handlers call redis.asyncio
directly on one fixed key, ``GET`` for a read, ``GET`` + ``SET EX`` for a write, with the
client settings coatcheck's store uses (RESP2, decoded replies). It is what the round trips
cost by themselves through redis-py; whatever coatcheck adds above it is its own work
(cookie, token hash, policy, encoding, the Lua commit).

Round trips are counted on the client: every ``send_packed_command`` of a redis.asyncio
connection is one request put on the wire (a command, or a whole pipeline or MULTI block)
followed by reading its replies; ``pack_command`` calls count commands, and so do the
calls of hiredis's packer by coatcheck's kept connections (``clients.packed``, which skip
``pack_command``). Both are counted in
the harness's untimed audit pass only, and coatcheck's promise (1 and 2) is asserted there.

Needs a Redis (>= 7) or Valkey server at ``BENCH_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``); the scenario fails rather than skip without one. Keys go under
a random per-run prefix and are deleted at the end, whatever happens.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
from collections.abc import Iterator
from typing import Any

import redis.asyncio
from redis.asyncio.connection import AbstractConnection
from rich.console import Console
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from coatcheck import SessionConfig, SessionManager
from coatcheck.integrations.asgi import SessionMiddleware as CoatcheckMiddleware
from coatcheck.stores.redis import RedisOptions, RedisStore

from .asgi_middleware import ROUTES, PlainDictSession
from .harness import BenchError, Role, Scenario, Settings, StoreProbe, WorkloadResult
from .store_workloads import (
    COATCHECK_READS,
    COATCHECK_WRITES,
    Built,
    Config,
    Target,
    counting_calls,
    run_workloads,
)

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

COATCHECK = "coatcheck redis"
FLOOR = "redis.asyncio floor"
STARSESSIONS = "starsessions redis"

TARGETS = [
    Target("read", COATCHECK, FLOOR, 1.15),
    Target("write", COATCHECK, FLOOR, 1.15),
    Target("read", COATCHECK, STARSESSIONS, 0.55),
]
"""Issue 6's Redis targets, as overhead ratios (time added above the bare app)."""


@contextlib.contextmanager
def round_trips() -> Iterator[dict[str, int]]:
    """Round trips and commands of every redis.asyncio connection in this process."""
    from coatcheck.stores.redis import clients

    targets: list[tuple[Any, str, str]] = [
        (AbstractConnection, "send_packed_command", "round trips"),
        (AbstractConnection, "pack_command", "commands"),
    ]
    if clients._hiredis_pack is not None:  # the kept connections' own packer
        targets.append((clients, "_hiredis_pack", "commands"))
    with counting_calls(targets) as counts:
        yield counts


class RedisRun:
    """One run's namespace on the server: a random key prefix, removed at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = f"coatcheck-bench-{secrets.token_hex(4)}:"
        self.admin: Any = redis.asyncio.Redis.from_url(
            url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5
        )

    async def server(self) -> str:
        try:
            info = await self.admin.info("server")
        except (redis.RedisError, OSError) as exc:
            raise BenchError(
                f"scenario redis needs a Redis server at {self.url} (set BENCH_REDIS_URL): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        name, version = "Redis", info.get("redis_version", "?")
        if "valkey_version" in info:
            name, version = "Valkey", info["valkey_version"]
        return (
            f"server: {name} {version} ({info.get('redis_mode', '?')}) at "
            f"{self.admin.connection_pool.connection_kwargs.get('host')}:"
            f"{self.admin.connection_pool.connection_kwargs.get('port')}"
        )

    async def values(self, match: str, read: Any) -> list[int]:
        """Every session counter stored under ``match``, read from the server."""
        out = []
        async for key in self.admin.scan_iter(match=match, count=1000):
            value = await read(key)
            if value is not None:
                out.append(value)
        return out

    async def cleanup(self) -> None:
        keys = [k async for k in self.admin.scan_iter(match=self.prefix + "*", count=1000)]
        for start in range(0, len(keys), 500):
            await self.admin.unlink(*keys[start : start + 500])
        await self.admin.aclose()


def configs(run: RedisRun) -> list[Config]:
    async def bare(stack: contextlib.AsyncExitStack, slug: str) -> Built:
        app = Starlette(routes=ROUTES, middleware=[Middleware(PlainDictSession)])
        zero: dict[str, float] = {"round trips": 0}
        return Built(app, "none", expect_read_wire=zero, expect_write_wire=zero)

    async def coatcheck(stack: contextlib.AsyncExitStack, slug: str) -> Built:
        prefix = f"{run.prefix}{slug}:"
        store = RedisStore(dataclasses.replace(RedisOptions.from_url(run.url), prefix=prefix))
        stack.push_async_callback(store.close)
        app = Starlette(
            routes=ROUTES,
            middleware=[Middleware(CoatcheckMiddleware, manager=SessionManager(store))],
        )

        async def read_n(key: str) -> int | None:
            raw = await run.admin.hget(key, "d:n")  # a session value is a "d:<name>" field
            return None if raw is None else int(json.loads(raw))

        async def stored() -> list[int]:
            return await run.values(f"{prefix}s:*", read_n)

        return Built(
            app,
            "session",
            "__Host-session",
            StoreProbe(store, reads=COATCHECK_READS, writes=COATCHECK_WRITES),
            expect_read_writes=0,
            stored=stored,
            expect_read_wire={"round trips": 1},
            expect_write_wire={"round trips": 2},
        )

    async def floor(stack: contextlib.AsyncExitStack, slug: str) -> Built:
        key = f"{run.prefix}{slug}"
        # The connection settings of coatcheck's own client (RESP2, decoded replies).
        client: Any = redis.asyncio.Redis.from_url(run.url, decode_responses=True, protocol=2)
        stack.push_async_callback(client.aclose)
        ttl = int(SessionConfig().idle_timeout)

        async def read(request: Request) -> PlainTextResponse:
            return PlainTextResponse(await client.get(key) or "0")

        async def write(request: Request) -> PlainTextResponse:
            n = int(await client.get(key) or 0) + 1
            await client.set(key, n, ex=ttl)
            return PlainTextResponse(str(n))

        app = Starlette(
            routes=[Route("/read", read), Route("/write", write)],
            middleware=[Middleware(PlainDictSession)],
        )

        async def stored() -> list[int]:
            return [int(await run.admin.get(key) or 0)]

        return Built(
            app,
            "global",
            stored=stored,
            expect_read_wire={"round trips": 1},
            expect_write_wire={"round trips": 2},
        )

    async def starsessions(stack: contextlib.AsyncExitStack, slug: str) -> Built:
        # Lazy loading needs SessionAutoloadMiddleware for unchanged handler code (as in
        # the asgi scenario). Its documented client: a redis.asyncio.Redis with defaults.
        from starsessions import SessionAutoloadMiddleware, SessionMiddleware
        from starsessions.stores.redis import RedisStore as StarsessionsRedisStore

        prefix = f"{run.prefix}{slug}:"
        connection: Any = redis.asyncio.Redis.from_url(run.url)
        stack.push_async_callback(connection.aclose)
        store = StarsessionsRedisStore(connection=connection, prefix=prefix)
        app = Starlette(
            routes=ROUTES,
            middleware=[
                Middleware(SessionMiddleware, store=store, cookie_https_only=True),
                Middleware(SessionAutoloadMiddleware),
            ],
        )

        async def read_n(key: str) -> int | None:
            raw = await run.admin.get(key)
            return None if raw is None else json.loads(raw).get("n")

        async def stored() -> list[int]:
            return await run.values(f"{prefix}*", read_n)

        return Built(
            app,
            "session",
            "session",
            StoreProbe(store, reads=("read",), writes=("write", "remove")),
            stored=stored,
        )

    return [
        Config("bare (no sessions)", Role.BASELINE, bare, slug="bare"),
        Config(COATCHECK, Role.COATCHECK, coatcheck, slug="cc"),
        Config(FLOOR, Role.PEER, floor, slug="floor"),
        Config(STARSESSIONS, Role.PEER, starsessions, slug="ss"),
    ]


async def run(settings: Settings, console: Console) -> list[WorkloadResult]:
    session = RedisRun(REDIS_URL)
    try:
        server = await session.server()
    except BenchError:
        await session.admin.aclose()
        raise
    try:
        notes = [
            server,
            "round trips = redis.asyncio send_packed_command calls (one per command, or per "
            "pipeline/MULTI block), commands = pack_command calls; both counted in an untimed "
            "pass",
            f"{FLOOR}: the bare app + redis.asyncio GET (read) or GET + SET EX (write) on one "
            "fixed key, with coatcheck's client settings (RESP2, decoded); "
            f"{STARSESSIONS}: starsessions' own store on a default redis.asyncio client",
        ]
        return await run_workloads(
            "redis",
            "Redis",
            configs(session),
            settings,
            console,
            wire=round_trips,
            notes=notes,
            targets=TARGETS,
        )
    finally:
        await session.cleanup()


SCENARIO = Scenario(
    name="redis",
    description="Starlette app, in-process ASGI calls, Redis: coatcheck RedisStore vs the raw "
    "redis.asyncio floor and starsessions' Redis store, with round trips per request",
    packages=("coatcheck", "starlette", "starsessions", "redis", "hiredis"),
    run=run,
)
