"""PostgreSQL: coatcheck's PostgresStore next to the raw psycopg floor, on read-only and
writing requests, with statements and round trips per request.

The store promises one statement per store call in autocommit (no BEGIN/COMMIT around
it): a read-only request between touches is one ``SELECT``; a writing request is the
``SELECT`` that loads it and one ``UPDATE`` of the changed keys. The floor is measured in the
same run: the bare app whose handlers use psycopg directly on one fixed row of a ``jsonb``
table, one ``SELECT`` for a read and ``SELECT`` + ``UPDATE`` for a write, on the same pool
type with the same settings (psycopg_pool's AsyncConnectionPool, autocommit, prepared after
5 runs). starsessions has no PostgreSQL store, so there is no peer row.

Counting, in the harness's untimed audit pass only: ``statements`` are psycopg
``AsyncCursor.execute`` calls; ``round trips`` are ``AsyncConnection.wait`` calls that had
to wait for the socket, each one a request sent and its results read (so an implicit
``BEGIN``, a ``COMMIT`` or a pool's reset query would show up as extra round trips, while
the no-op commit of an autocommit connection returned to its pool does not). The one
exchange this undercounts is psycopg preparing a statement (a Parse, then the execution, in
one wait), which happens once per connection and statement, during warm-up. coatcheck's
promise (1 and 2, for both) is asserted there.

Needs a server at ``BENCH_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``); the scenario fails rather than skip without
one. Each configuration gets its own table named after a random per-run id, dropped at the
end (with its row in coatcheck's schema-version table) whatever happens.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
from collections.abc import Generator, Iterator
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from rich.console import Console
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from coatcheck import SessionManager
from coatcheck.integrations.asgi import SessionMiddleware as CoatcheckMiddleware
from coatcheck.stores.postgres import VERSION_TABLE, PostgresStore

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

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

COATCHECK = "coatcheck postgres"
FLOOR = "psycopg floor"

TARGETS = [Target("read", COATCHECK, FLOOR, 1.15), Target("write", COATCHECK, FLOOR, 1.15)]
"""Issue 6 sets the 1.15x-of-the-floor bar for Redis; the same bar is shown here."""

MIN_SIZE, MAX_SIZE = 1, 10
"""PostgresStore's default pool size, used by the floor as well."""


@contextlib.contextmanager
def statements() -> Iterator[dict[str, int]]:
    """Statements and round trips of every psycopg async connection in this process.

    psycopg runs each exchange with the server as a generator driven by
    ``AsyncConnection.wait``; the generator yields whenever it must wait for the socket. A
    wait whose generator never yields did no I/O (the no-op commit of an autocommit
    connection returned to the pool), so only generators that yield count as round trips.
    """
    wait = psycopg.AsyncConnection.__dict__["wait"]

    with counting_calls([(psycopg.AsyncCursor, "execute", "statements")]) as counts:
        counts["round trips"] = 0

        @functools.wraps(wait)
        async def counted_wait(self: Any, gen: Any, *args: Any, **kwargs: Any) -> Any:
            return await wait(self, _observed(gen, counts), *args, **kwargs)

        psycopg.AsyncConnection.wait = counted_wait  # type: ignore[method-assign]
        try:
            yield counts
        finally:
            psycopg.AsyncConnection.wait = wait  # type: ignore[method-assign]


def _observed(gen: Generator[Any, Any, Any], counts: dict[str, int]) -> Generator[Any, Any, Any]:
    """Pass ``gen`` through, counting one round trip if it ever waits for the socket."""
    try:
        state = next(gen)
    except StopIteration as stop:
        return stop.value
    counts["round trips"] += 1
    while True:
        try:
            ready = yield state
        except GeneratorExit:
            gen.close()
            raise
        except BaseException as exc:
            try:
                state = gen.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            state = gen.send(ready)
        except StopIteration as stop:
            return stop.value


class PostgresRun:
    """One run's tables on the server, dropped at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.id = secrets.token_hex(4)
        self.tables: list[str] = []
        self.admin: psycopg.AsyncConnection[Any] | None = None

    async def connect(self) -> str:
        try:
            self.admin = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=3
            )
            cur = await self.admin.execute("SHOW server_version")
            row = await cur.fetchone()
        except psycopg.Error as exc:
            raise BenchError(
                f"scenario postgres needs a PostgreSQL server at {self.url} "
                f"(set BENCH_POSTGRES_URL): {type(exc).__name__}: {exc}"
            ) from exc
        info = self.admin.info
        version = row[0] if row else "?"
        return f"server: PostgreSQL {version} at {info.host}:{info.port}/{info.dbname}"

    def table(self, slug: str) -> str:
        name = f"coatcheck_bench_{self.id}_{slug}"
        self.tables.append(name)
        return name

    async def query(self, query: sql.SQL | sql.Composed, params: tuple[Any, ...] = ()) -> list[Any]:
        assert self.admin is not None
        cur = await self.admin.execute(query, params)
        return await cur.fetchall() if cur.description else []

    async def cleanup(self) -> None:
        if self.admin is None:
            return
        try:
            for name in self.tables:
                await self.query(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
                # coatcheck records each table's schema version in a shared table.
                exists = await self.query(sql.SQL("SELECT to_regclass(%s)"), (VERSION_TABLE,))
                if exists and exists[0][0] is not None:
                    await self.query(
                        sql.SQL("DELETE FROM {} WHERE name = %s").format(
                            sql.Identifier(VERSION_TABLE)
                        ),
                        (name,),
                    )
        finally:
            await self.admin.close()


def configs(run: PostgresRun) -> list[Config]:
    async def bare(stack: contextlib.AsyncExitStack, slug: str) -> Built:
        app = Starlette(routes=ROUTES, middleware=[Middleware(PlainDictSession)])
        zero: dict[str, float] = {"statements": 0, "round trips": 0}
        return Built(app, "none", expect_read_wire=zero, expect_write_wire=zero)

    async def coatcheck(stack: contextlib.AsyncExitStack, slug: str) -> Built:
        table = run.table(slug)
        store = PostgresStore(run.url, table=table, min_size=MIN_SIZE, max_size=MAX_SIZE)
        stack.push_async_callback(store.close)
        app = Starlette(
            routes=ROUTES,
            middleware=[Middleware(CoatcheckMiddleware, manager=SessionManager(store))],
        )

        async def stored() -> list[int]:
            rows = await run.query(
                sql.SQL("SELECT (data->>'n')::int FROM {} WHERE data ? 'n'").format(
                    sql.Identifier(table)
                )
            )
            return [row[0] for row in rows]

        return Built(
            app,
            "session",
            "__Host-session",
            StoreProbe(store, reads=COATCHECK_READS, writes=COATCHECK_WRITES),
            expect_read_writes=0,
            stored=stored,
            expect_read_wire={"statements": 1, "round trips": 1},
            expect_write_wire={"statements": 2, "round trips": 2},
        )

    async def floor(stack: contextlib.AsyncExitStack, slug: str) -> Built:
        table = sql.Identifier(run.table(slug))
        await run.query(
            sql.SQL("CREATE TABLE {} (key text PRIMARY KEY, data jsonb NOT NULL)").format(table)
        )
        await run.query(sql.SQL("INSERT INTO {} VALUES ('floor', '{{}}')").format(table))
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            run.url,
            kwargs={"autocommit": True, "prepare_threshold": 5},
            min_size=MIN_SIZE,
            max_size=MAX_SIZE,
            open=False,
        )
        await pool.open(wait=True, timeout=10)
        stack.push_async_callback(pool.close)
        select = sql.SQL("SELECT data FROM {} WHERE key = %s").format(table).as_bytes(None)
        update = sql.SQL("UPDATE {} SET data = %s::jsonb WHERE key = %s").format(table)
        update_bytes = update.as_bytes(None)

        async def load(conn: psycopg.AsyncConnection[Any]) -> int:
            cur = await conn.execute(select, ("floor",))
            row = await cur.fetchone()
            return int(row[0].get("n", 0)) if row else 0

        async def read(request: Request) -> PlainTextResponse:
            async with pool.connection() as conn:
                return PlainTextResponse(str(await load(conn)))

        async def write(request: Request) -> PlainTextResponse:
            async with pool.connection() as conn:
                n = await load(conn) + 1
                await conn.execute(update_bytes, (json.dumps({"n": n}), "floor"))
            return PlainTextResponse(str(n))

        app = Starlette(
            routes=[Route("/read", read), Route("/write", write)],
            middleware=[Middleware(PlainDictSession)],
        )

        async def stored() -> list[int]:
            rows = await run.query(
                sql.SQL("SELECT (data->>'n')::int FROM {} WHERE data ? 'n'").format(table)
            )
            return [row[0] for row in rows]

        return Built(
            app,
            "global",
            stored=stored,
            expect_read_wire={"statements": 1, "round trips": 1},
            expect_write_wire={"statements": 2, "round trips": 2},
        )

    return [
        Config("bare (no sessions)", Role.BASELINE, bare, slug="bare"),
        Config(COATCHECK, Role.COATCHECK, coatcheck, slug="cc"),
        Config(FLOOR, Role.PEER, floor, slug="floor"),
    ]


async def run(settings: Settings, console: Console) -> list[WorkloadResult]:
    session = PostgresRun(POSTGRES_URL)
    try:
        server = await session.connect()
        notes = [
            server,
            "statements = psycopg AsyncCursor.execute calls, round trips = "
            "AsyncConnection.wait calls that waited on the socket (a request sent, its results "
            "read); both counted in an untimed pass",
            f"{FLOOR}: the bare app + psycopg on one fixed row of a jsonb table, through an "
            "AsyncConnectionPool with PostgresStore's settings (autocommit, "
            "prepare_threshold=5, 1-10 connections)",
        ]
        return await run_workloads(
            "postgres",
            "PostgreSQL",
            configs(session),
            settings,
            console,
            wire=statements,
            notes=notes,
            targets=TARGETS,
        )
    finally:
        await session.cleanup()


SCENARIO = Scenario(
    name="postgres",
    description="Starlette app, in-process ASGI calls, PostgreSQL: coatcheck PostgresStore vs "
    "the raw psycopg floor, with statements and round trips per request",
    packages=("coatcheck", "starlette", "psycopg", "psycopg-binary", "psycopg-pool"),
    run=run,
)
