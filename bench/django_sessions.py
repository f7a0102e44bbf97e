"""Django sessions: what a session engine adds to a request in a Django app (WSGI,
in-process).

One Django project (this module is its URLconf) with two views, ``/read`` (reads
``request.session["n"]``) and ``/write`` (increments it), is measured bare and under each
session engine. Django's settings can be configured once per process, so they are
configured once here, and each configuration is its own ``WSGIHandler`` built while
``override_settings`` names its middleware and ``SESSION_ENGINE`` (Django's
SessionMiddleware picks its engine when the handler is built). The bare handler's only
middleware puts a fresh plain dict in ``request.session``.

Configurations: coatcheck (``SESSION_ENGINE = "coatcheck.django"``) on SQLite and on Redis,
behind its two middlewares as its documentation recommends; Django's ``db`` engine on
SQLite (a temporary file in WAL mode with ``synchronous=NORMAL``, as coatcheck's SQLite
store runs, and a persistent connection: ``CONN_MAX_AGE=None``), its ``cache``
engine on Redis (Django's built-in ``RedisCache``) and ``signed_cookies``. The Redis rows
need a server at ``BENCH_REDIS_URL`` and are skipped with a printed note without one.

coatcheck's Django engine keeps one SessionManager per process (``coatcheck.django
.configure``); each coatcheck configuration installs its own before each batch of requests,
outside the per-request loop. The harness runs inside an event loop, where Django refuses
ORM calls unless ``DJANGO_ALLOW_ASYNC_UNSAFE`` is set: this scenario sets it, since nothing
here is concurrent.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from coatcheck import SessionManager
from coatcheck.stores import SQLiteStore

from .flask_sessions import REDIS_URL, delete_prefix, floor_client, redis_client
from .harness import BenchError, Role, Scenario, Settings, StoreProbe, WorkloadResult
from .store_workloads import Target
from .wsgi_client import Built, Config, run_workloads, skip

COOKIE = "__Host-session"
COATCHECK_WRITES = ("create_sync", "apply_sync", "rename_sync", "delete_sync")
COATCHECK_MIDDLEWARE = [
    "coatcheck.django.StoreUnavailableMiddleware",
    "coatcheck.django.SessionMiddleware",
]
DJANGO_MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"]
BARE_MIDDLEWARE = ["bench.django_sessions.PlainDictSession"]
FLOOR_MIDDLEWARE = ["bench.django_sessions.RedisFloor"]
CACHE_PREFIX = f"django-bench-{secrets.token_hex(4)}"

COATCHECK_REDIS = "coatcheck redis"
FLOOR = "redis floor"
DJANGO_CACHE = "django cache redis"

TARGETS = [
    Target("read", COATCHECK_REDIS, FLOOR, 1.15),
    Target("write", COATCHECK_REDIS, FLOOR, 1.15),
    Target("read", COATCHECK_REDIS, DJANGO_CACHE, 0.4),
    Target("write", COATCHECK_REDIS, DJANGO_CACHE, 0.4),
]
"""Issue 18's Django targets, as overhead ratios (time added above the bare app)."""

FLOOR_NOTE = (
    f"{FLOOR}: the bare project whose views call sync redis-py directly on one fixed key, "
    "GET (read) or GET + SET EX (write), with coatcheck's client settings (RESP2, decoded "
    "replies, its timeouts)"
)


# -- the project ---------------------------------------------------------------------------


def read(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse(str(request.session.get("n", 0)), content_type="text/plain")


def write(request: Any) -> Any:
    from django.http import HttpResponse

    n = request.session.get("n", 0) + 1
    request.session["n"] = n
    return HttpResponse(str(n), content_type="text/plain")


urlpatterns: list[Any] = []


class PlainDictSession:
    """The bare configuration's middleware: a fresh dict per request, nothing kept."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        request.session = {}
        return self.get_response(request)


def floor_read(request: Any) -> Any:
    from django.http import HttpResponse

    client, key, _ = request.floor
    return HttpResponse(str(client.get(key) or "0"), content_type="text/plain")


def floor_write(request: Any) -> Any:
    from django.http import HttpResponse

    client, key, ttl = request.floor
    n = int(client.get(key) or 0) + 1
    client.set(key, n, ex=ttl)
    return HttpResponse(str(n), content_type="text/plain")


class FloorUrls:
    """The floor's URLconf (``request.urlconf``): the same paths, raw-client views."""

    urlpatterns: list[Any] = []


_floor: tuple[Any, str, int] | None = None
"""The client, key and TTL the next ``RedisFloor`` middleware built takes."""


class RedisFloor:
    """The floor configuration's only middleware: the bare one (a fresh plain dict) that
    also routes to the raw-client views and hands them their client."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        if _floor is None:
            raise BenchError("RedisFloor built without a client")
        self.get_response = get_response
        self.floor = _floor

    def __call__(self, request: Any) -> Any:
        request.session = {}
        request.floor = self.floor
        request.urlconf = FloorUrls
        return self.get_response(request)


_configured_db: Path | None = None


def setup(stack: contextlib.ExitStack) -> None:
    """Configure Django once for this process (a second run reuses the configuration)."""
    global _configured_db
    import django
    from django.conf import settings

    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if settings.configured:
        if __name__ != settings.ROOT_URLCONF:
            raise BenchError("Django was already configured by something else")
        return
    directory = Path(tempfile.mkdtemp(prefix="coatcheck-bench-django-"))
    _configured_db = directory / "django.db"
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-secret-not-for-production",
        ALLOWED_HOSTS=["shop.example"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.sessions"],
        MIDDLEWARE=[],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(_configured_db),
                "CONN_MAX_AGE": None,
                # The durability coatcheck's SQLiteStore uses, so the engines are compared
                # rather than SQLite's journal modes (Django's default would fsync each save).
                "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"},
            }
        },
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "sessions": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": REDIS_URL,
                "KEY_PREFIX": CACHE_PREFIX,
            },
        },
        SESSION_CACHE_ALIAS="sessions",
        SESSION_COOKIE_NAME=COOKIE,
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        USE_TZ=True,
    )
    django.setup()
    from django.core.management import call_command
    from django.urls import path

    urlpatterns[:] = [path("read", read), path("write", write)]
    FloorUrls.urlpatterns[:] = [path("read", floor_read), path("write", floor_write)]
    call_command("migrate", verbosity=0, interactive=False)

    def remove() -> None:
        from django.db import connections

        connections.close_all()
        for file in directory.iterdir():
            file.unlink()
        directory.rmdir()

    stack.callback(remove)


def handler(middleware: list[str], engine: str = "django.contrib.sessions.backends.db") -> Any:
    """A WSGIHandler whose middleware chain (and session engine) is fixed at build time."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.utils import override_settings

    with override_settings(MIDDLEWARE=middleware, SESSION_ENGINE=engine):
        return WSGIHandler()


class QueryProbe:
    """Counts SQL statements on Django's default connection (the ``db`` engine's store
    calls): SELECTs are reads; INSERT, UPDATE and DELETE are writes."""

    @contextlib.contextmanager
    def counting(self) -> Any:
        from django.db import connection

        counts = {"reads": 0, "writes": 0}

        def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            verb = sql.lstrip().split(None, 1)[0].upper()
            if verb == "SELECT":
                counts["reads"] += 1
            elif verb in ("INSERT", "UPDATE", "DELETE"):
                counts["writes"] += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            yield counts


# -- configurations ------------------------------------------------------------------------


def _bare(stack: contextlib.ExitStack) -> Built:
    setup(stack)
    return Built(handler(BARE_MIDDLEWARE), None)


def _coatcheck(store: Any) -> Built:
    from coatcheck.integrations.django import configure

    manager = SessionManager(store)
    app = handler(COATCHECK_MIDDLEWARE, "coatcheck.django")
    probe = StoreProbe(store, reads=("get_sync",), writes=COATCHECK_WRITES)
    return Built(
        app,
        COOKIE,
        probe,
        expect_read_writes=0,
        activate=functools.partial(configure, manager),
        cleanup=[configure],
    )


def _coatcheck_sqlite(stack: contextlib.ExitStack) -> Built:
    setup(stack)
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="coatcheck-bench-")))
    store = SQLiteStore(directory / "sessions.db")
    stack.callback(store.close_sync)
    return _coatcheck(store)


def _coatcheck_redis(console: Console, name: str, stack: contextlib.ExitStack) -> Built | None:
    setup(stack)
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
    return _coatcheck(store)


def _redis_floor(console: Console, name: str, stack: contextlib.ExitStack) -> Built | None:
    global _floor
    setup(stack)
    made = floor_client(stack)
    if made is None:
        skip(console, name, f"no Redis server answers at {REDIS_URL}")
        return None
    _floor = made
    try:
        return Built(handler(FLOOR_MIDDLEWARE), None, shared=True)
    finally:
        _floor = None


def _django_db(stack: contextlib.ExitStack) -> Built:
    setup(stack)
    app = handler(DJANGO_MIDDLEWARE, "django.contrib.sessions.backends.db")
    return Built(app, COOKIE, QueryProbe())


def _django_cache_redis(console: Console, name: str, stack: contextlib.ExitStack) -> Built | None:
    setup(stack)
    client = redis_client()
    if client is None:
        skip(console, name, f"no Redis server answers at {REDIS_URL}")
        return None
    stack.callback(client.close)
    stack.callback(delete_prefix, client, f"{CACHE_PREFIX}:")
    from django.core.cache import caches

    app = handler(DJANGO_MIDDLEWARE, "django.contrib.sessions.backends.cache")
    # The engine asks caches["sessions"] for its cache on every request; in this one
    # thread and context that is always the same object, so counting wrappers on it see
    # every call.
    probe = StoreProbe(
        caches["sessions"], reads=("get", "has_key"), writes=("set", "add", "delete", "touch")
    )
    return Built(app, COOKIE, probe)


def _django_signed_cookies(stack: contextlib.ExitStack) -> Built:
    setup(stack)
    return Built(
        handler(DJANGO_MIDDLEWARE, "django.contrib.sessions.backends.signed_cookies"), COOKIE
    )


def configs(console: Console) -> list[Config]:
    redis_note = "127.0.0.1:6379" if REDIS_URL.startswith("redis://127.0.0.1:6379") else "Redis"
    return [
        Config("bare (no sessions)", Role.BASELINE, _bare),
        Config("coatcheck sqlite", Role.COATCHECK, _coatcheck_sqlite, "WAL, temp file"),
        Config(
            COATCHECK_REDIS,
            Role.COATCHECK,
            functools.partial(_coatcheck_redis, console, COATCHECK_REDIS),
            redis_note,
        ),
        Config(
            FLOOR,
            Role.PEER,
            functools.partial(_redis_floor, console, FLOOR),
            "raw redis-py GET / GET + SET EX",
        ),
        Config("django db sqlite", Role.PEER, _django_db, "WAL, temp file, persistent conn"),
        Config(
            DJANGO_CACHE,
            Role.PEER,
            functools.partial(_django_cache_redis, console, DJANGO_CACHE),
            f"RedisCache, {redis_note}",
        ),
        Config("django signed_cookies", Role.PEER, _django_signed_cookies),
    ]


async def run(settings: Settings, console: Console) -> list[WorkloadResult]:
    with contextlib.ExitStack() as stack:
        setup(stack)
        return await run_workloads(
            "django",
            "Django",
            configs(console),
            settings,
            console,
            targets=TARGETS,
            notes=[FLOOR_NOTE],
        )


SCENARIO = Scenario(
    name="django",
    description="Django project, in-process WSGI calls: coatcheck (SQLite, Redis) vs Django's "
    "db, cache (Redis) and signed_cookies engines",
    packages=("coatcheck", "django", "redis"),
    run=run,
)
