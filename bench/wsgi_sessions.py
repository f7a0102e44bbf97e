"""Plain WSGI: what coatcheck's WSGI middleware adds to a request, next to the raw-client
floors (in-process, no framework).

One WSGI callable with two paths, ``/read`` (answers ``session["n"]``) and ``/write``
(increments it), is measured bare (a fresh plain dict in the environ, nothing kept), under
``coatcheck.wsgi.SessionMiddleware`` on SQLite and on Redis, and as the floors: the same
callable whose paths talk to the store's server directly with the raw client, on one fixed
key or row, making the round trips an ideal session layer needs and nothing else (sync
redis-py ``GET``; ``GET`` + ``SET EX``, with coatcheck's client settings; raw ``sqlite3``
``SELECT``; ``SELECT`` + ``UPDATE``, with SQLiteStore's settings). Issue 18's target: each
coatcheck row adds at most 1.15x its floor's overhead.

The Redis rows need a server at ``BENCH_REDIS_URL`` and are skipped with a printed note
without one.
"""

from __future__ import annotations

import contextlib
import functools
import json
import secrets
import sqlite3
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rich.console import Console

from coatcheck import SessionManager
from coatcheck.integrations.wsgi import ENVIRON_KEY, SessionMiddleware
from coatcheck.stores import SQLiteStore

from .flask_sessions import REDIS_URL, delete_prefix, floor_client, redis_client
from .harness import Role, Scenario, Settings, StoreProbe, WorkloadResult
from .store_workloads import Target
from .wsgi_client import Built, Config, run_workloads, skip

COOKIE = "__Host-session"
COATCHECK_WRITES = ("create_sync", "apply_sync", "rename_sync", "delete_sync")

COATCHECK_SQLITE = "coatcheck sqlite"
SQLITE_FLOOR = "sqlite3 floor"
COATCHECK_REDIS = "coatcheck redis"
REDIS_FLOOR = "redis floor"

TARGETS = [
    Target(workload, ours, floor, 1.15)
    for workload in ("read", "write")
    for ours, floor in ((COATCHECK_SQLITE, SQLITE_FLOOR), (COATCHECK_REDIS, REDIS_FLOOR))
]
"""Issue 18's WSGI targets, as overhead ratios (time added above the bare app)."""

NOTES = [
    f"{REDIS_FLOOR}: the bare callable + sync redis-py GET (read) or GET + SET EX (write) on "
    "one fixed key, with coatcheck's client settings (RESP2, decoded replies, its timeouts); "
    f"{SQLITE_FLOOR}: the bare callable + raw sqlite3 SELECT or SELECT + UPDATE on one fixed "
    "row, one connection with SQLiteStore's settings (autocommit, WAL, synchronous=NORMAL)"
]

StartResponse = Callable[..., Any]


def _answer(start_response: StartResponse, body: str) -> Iterable[bytes]:
    data = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The measured callable: the session is whatever sits at ``environ[ENVIRON_KEY]``."""
    session = environ[ENVIRON_KEY]
    if environ["PATH_INFO"] == "/write":
        n = session.get("n", 0) + 1
        session["n"] = n
        return _answer(start_response, str(n))
    return _answer(start_response, str(session.get("n", 0)))


def bare_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The baseline: a fresh plain dict as the session, nothing kept."""
    environ[ENVIRON_KEY] = {}
    return app(environ, start_response)


def floor_app(load: Callable[[], int], save: Callable[[int], None]) -> Any:
    """The bare callable whose paths make the raw client's round trips themselves."""

    def floor(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        environ[ENVIRON_KEY] = {}
        if environ["PATH_INFO"] == "/write":
            n = load() + 1
            save(n)
            return _answer(start_response, str(n))
        return _answer(start_response, str(load()))

    return floor


# -- configurations ------------------------------------------------------------------------


def _bare(stack: contextlib.ExitStack) -> Built:
    return Built(bare_app, None)


def _coatcheck(store: Any) -> Built:
    wrapped = SessionMiddleware(app, manager=SessionManager(store))
    probe = StoreProbe(store, reads=("get_sync",), writes=COATCHECK_WRITES)
    return Built(wrapped, COOKIE, probe, expect_read_writes=0)


def _coatcheck_sqlite(stack: contextlib.ExitStack) -> Built:
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="coatcheck-bench-")))
    store = SQLiteStore(directory / "sessions.db")
    stack.callback(store.close_sync)
    return _coatcheck(store)


def _sqlite_floor(stack: contextlib.ExitStack) -> Built:
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

    def load() -> int:
        row = conn.execute("SELECT data FROM floor WHERE key = ?", ("floor",)).fetchone()
        return int(json.loads(row[0]).get("n", 0))

    def save(n: int) -> None:
        conn.execute("UPDATE floor SET data = ? WHERE key = ?", (json.dumps({"n": n}), "floor"))

    return Built(floor_app(load, save), None, shared=True)


def _coatcheck_redis(console: Console, name: str, stack: contextlib.ExitStack) -> Built | None:
    from coatcheck.stores.redis import RedisStore

    client = redis_client()
    if client is None:
        skip(console, name, f"no Redis server answers at {REDIS_URL}")
        return None
    prefix = f"coatcheck-bench-{secrets.token_hex(4)}:"
    store = RedisStore.from_url(f"{REDIS_URL}?prefix={prefix}")
    stack.callback(client.close)
    stack.callback(delete_prefix, client, prefix)
    stack.callback(store.close_sync)
    return _coatcheck(store)


def _redis_floor(console: Console, name: str, stack: contextlib.ExitStack) -> Built | None:
    made = floor_client(stack)
    if made is None:
        skip(console, name, f"no Redis server answers at {REDIS_URL}")
        return None
    client, key, ttl = made

    def load() -> int:
        return int(client.get(key) or 0)

    def save(n: int) -> None:
        client.set(key, n, ex=ttl)

    return Built(floor_app(load, save), None, shared=True)


def configs(console: Console) -> list[Config]:
    redis_note = "127.0.0.1:6379" if REDIS_URL.startswith("redis://127.0.0.1:6379") else "Redis"
    return [
        Config("bare (no sessions)", Role.BASELINE, _bare),
        Config(COATCHECK_SQLITE, Role.COATCHECK, _coatcheck_sqlite, "WAL, temp file"),
        Config(SQLITE_FLOOR, Role.PEER, _sqlite_floor, "raw SELECT / SELECT + UPDATE"),
        Config(
            COATCHECK_REDIS,
            Role.COATCHECK,
            functools.partial(_coatcheck_redis, console, COATCHECK_REDIS),
            redis_note,
        ),
        Config(
            REDIS_FLOOR,
            Role.PEER,
            functools.partial(_redis_floor, console, REDIS_FLOOR),
            "raw redis-py GET / GET + SET EX",
        ),
    ]


async def run(settings: Settings, console: Console) -> list[WorkloadResult]:
    return await run_workloads(
        "wsgi", "WSGI", configs(console), settings, console, targets=TARGETS, notes=NOTES
    )


SCENARIO = Scenario(
    name="wsgi",
    description="Plain WSGI callable, in-process: coatcheck's WSGI middleware (SQLite, Redis) "
    "vs the raw sqlite3 and redis-py floors",
    packages=("coatcheck", "redis"),
    run=run,
)
