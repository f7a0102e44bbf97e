"""Flask sessions: what a session layer adds to a request in a Flask app (WSGI, in-process).

One Flask app with two views, ``/read`` (reads ``session["n"]``) and ``/write``
(increments it), is measured bare and under each session implementation. The views are the
same code in every configuration; the bare app's session interface hands out a fresh plain
dict per request and saves nothing, so it pays for Flask's session hooks and nothing else.

Configurations: coatcheck (``coatcheck.flask.init_app``) on SQLite and on Redis, Flask's
default signed-cookie session (itsdangerous), and Flask-Session on Redis. The Redis rows need
a server at ``BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``); without one they are
skipped with a printed note, as is the coatcheck Redis row when ``coatcheck.stores.redis``
is missing. Keys are written under a random prefix and deleted afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from flask import Flask, session
from flask.sessions import SessionInterface, SessionMixin
from rich.console import Console

from coatcheck import SessionManager
from coatcheck.stores import SQLiteStore

from .harness import Role, Scenario, Settings, StoreProbe, WorkloadResult
from .store_workloads import Target
from .wsgi_client import Built, Config, run_workloads, skip

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
COATCHECK_WRITES = ("create_sync", "apply_sync", "rename_sync", "delete_sync")
COOKIE = "__Host-session"

COATCHECK_REDIS = "coatcheck redis"
FLOOR = "redis floor"
FLASK_SESSION = "Flask-Session redis"

TARGETS = [
    Target("read", COATCHECK_REDIS, FLOOR, 1.15),
    Target("write", COATCHECK_REDIS, FLOOR, 1.15),
    Target("read", COATCHECK_REDIS, FLASK_SESSION, 0.5),
    Target("write", COATCHECK_REDIS, FLASK_SESSION, 1.0),
]
"""Issue 18's Flask targets, as overhead ratios (time added above the bare app)."""

FLOOR_NOTE = (
    f"{FLOOR}: the bare app whose views call sync redis-py directly on one fixed key, GET "
    "(read) or GET + SET EX (write), with coatcheck's client settings (RESP2, decoded "
    "replies, its timeouts)"
)


# -- the app -------------------------------------------------------------------------------


def read() -> str:
    return str(session.get("n", 0))


def write() -> str:
    n = session.get("n", 0) + 1
    session["n"] = n
    return str(n)


def make_app() -> Flask:
    app = Flask(__name__)
    app.add_url_rule("/read", view_func=read)
    app.add_url_rule("/write", view_func=write)
    return app


class PlainSession(dict[str, Any], SessionMixin):
    """The bare configuration's session: a fresh dict per request, nothing kept."""


class PlainSessionInterface(SessionInterface):
    def open_session(self, app: Flask, request: Any) -> PlainSession:
        return PlainSession()

    def save_session(self, app: Flask, session: SessionMixin, response: Any) -> None:
        return None


# -- Redis housekeeping --------------------------------------------------------------------


def redis_client() -> Any | None:
    """A client for REDIS_URL if a server answers there, else None."""
    try:
        import redis
    except ImportError:
        return None
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        client.close()
        return None
    return client


def delete_prefix(client: Any, prefix: str) -> None:
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)


def floor_client(stack: contextlib.ExitStack) -> tuple[Any, str, int] | None:
    """For a raw-client floor: a sync redis-py client built as coatcheck's RedisStore builds
    its own (RESP2, decoded replies, the store's default timeouts), a fresh key removed at
    the end, and the TTL a session gets (the default idle timeout); None without a server."""
    import redis

    from coatcheck import SessionConfig
    from coatcheck.stores.redis import RedisOptions

    probe = redis_client()
    if probe is None:
        return None
    probe.close()
    options = RedisOptions.from_url(REDIS_URL)
    client = redis.Redis.from_url(
        REDIS_URL,
        decode_responses=True,
        protocol=2,
        socket_timeout=options.timeout,
        socket_connect_timeout=options.connect_timeout,
    )
    key = f"coatcheck-bench-floor-{secrets.token_hex(4)}"
    stack.callback(client.close)
    stack.callback(client.delete, key)
    return client, key, int(SessionConfig().idle_timeout)


# -- configurations ------------------------------------------------------------------------


def _bare(stack: contextlib.ExitStack) -> Built:
    app = make_app()
    app.session_interface = PlainSessionInterface()
    return Built(app, None)


def _coatcheck(store: Any, probe_store: Any) -> Built:
    from coatcheck.integrations.flask import init_app

    app = make_app()
    init_app(app, SessionManager(store))
    probe = StoreProbe(probe_store, reads=("get_sync",), writes=COATCHECK_WRITES)
    return Built(app, COOKIE, probe, expect_read_writes=0)


def _coatcheck_sqlite(stack: contextlib.ExitStack) -> Built:
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="coatcheck-bench-")))
    store = SQLiteStore(directory / "sessions.db")
    stack.callback(store.close_sync)
    return _coatcheck(store, store)


def _coatcheck_redis(console: Console, name: str, stack: contextlib.ExitStack) -> Built | None:
    try:
        from coatcheck.stores.redis import RedisStore
    except ImportError as exc:
        skip(console, name, f"coatcheck.stores.redis is not available ({exc})")
        return None
    client = redis_client()
    if client is None:
        skip(console, name, f"no Redis server answers at {REDIS_URL}")
        return None
    prefix = f"coatcheck-bench-{secrets.token_hex(4)}:"
    store = RedisStore.from_url(f"{REDIS_URL}?prefix={prefix}")
    stack.callback(client.close)
    stack.callback(delete_prefix, client, prefix)
    stack.callback(store.close_sync)
    return _coatcheck(store, store)


def _redis_floor(console: Console, name: str, stack: contextlib.ExitStack) -> Built | None:
    """The bare Flask app (same session interface as ``_bare``) whose views make the round
    trips an ideal session layer needs with the raw client, on one fixed key."""
    made = floor_client(stack)
    if made is None:
        skip(console, name, f"no Redis server answers at {REDIS_URL}")
        return None
    client, key, ttl = made

    def floor_read() -> str:
        return str(client.get(key) or "0")

    def floor_write() -> str:
        n = int(client.get(key) or 0) + 1
        client.set(key, n, ex=ttl)
        return str(n)

    app = Flask(__name__)
    app.add_url_rule("/read", view_func=floor_read)
    app.add_url_rule("/write", view_func=floor_write)
    app.session_interface = PlainSessionInterface()
    return Built(app, None, shared=True)


def _flask_cookie(stack: contextlib.ExitStack) -> Built:
    app = make_app()
    app.secret_key = "bench-secret-not-for-production"
    app.config.update(SESSION_COOKIE_SECURE=True, SESSION_COOKIE_SAMESITE="Lax")
    return Built(app, "session")


def _flask_session_redis(console: Console, name: str, stack: contextlib.ExitStack) -> Built | None:
    try:
        from flask_session import Session
    except ImportError as exc:
        skip(console, name, f"Flask-Session is not installed ({exc})")
        return None
    client = redis_client()
    if client is None:
        skip(console, name, f"no Redis server answers at {REDIS_URL}")
        return None
    prefix = f"flask-session-bench-{secrets.token_hex(4)}:"
    stack.callback(client.close)
    stack.callback(delete_prefix, client, prefix)
    app = make_app()
    app.config.update(
        SESSION_TYPE="redis",
        SESSION_REDIS=client,
        SESSION_KEY_PREFIX=prefix,
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    Session(app)
    interface = app.session_interface
    probe = StoreProbe(
        interface,
        reads=("_retrieve_session_data",),
        writes=("_upsert_session", "_delete_session"),
    )
    return Built(app, "session", probe)


def configs(console: Console) -> list[Config]:
    redis_note = "127.0.0.1:6379" if REDIS_URL.startswith("redis://127.0.0.1:6379") else "Redis"
    rows = [
        ("bare (no sessions)", Role.BASELINE, _bare, ""),
        ("coatcheck sqlite", Role.COATCHECK, _coatcheck_sqlite, "WAL, temp file"),
        (COATCHECK_REDIS, Role.COATCHECK, _coatcheck_redis, redis_note),
        (FLOOR, Role.PEER, _redis_floor, "raw redis-py GET / GET + SET EX"),
        ("flask signed cookie", Role.PEER, _flask_cookie, "default, itsdangerous"),
        (FLASK_SESSION, Role.PEER, _flask_session_redis, f"{redis_note}, defaults"),
    ]
    out = []
    for name, role, build, note in rows:
        if build in (_coatcheck_redis, _flask_session_redis, _redis_floor):
            build = functools.partial(build, console, name)
        out.append(Config(name, role, build, note))
    return out


async def run(settings: Settings, console: Console) -> list[WorkloadResult]:
    return await run_workloads(
        "flask", "Flask", configs(console), settings, console, targets=TARGETS, notes=[FLOOR_NOTE]
    )


SCENARIO = Scenario(
    name="flask",
    description="Flask app, in-process WSGI calls: coatcheck (SQLite, Redis) vs Flask's "
    "signed cookie and Flask-Session (Redis)",
    packages=("coatcheck", "flask", "werkzeug", "itsdangerous", "flask-session", "redis"),
    run=run,
)
