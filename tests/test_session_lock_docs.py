"""README, "Same-key concurrency: the per-session lock": each sentence names the tests that
keep it (``PROOFS``), and the promises no other test states are tested here: the cost in
round trips, the wait's backoff, the names in the table, the defaults, how each store
files its locks."""

from __future__ import annotations

import ast
import inspect
import re
import threading
from pathlib import Path
from typing import Any

import httpx
import psycopg

from coatcheck import SessionConfig, SessionManager
from coatcheck.engine.locking import SessionLocks, Wait, session_locks
from coatcheck.stores import MemoryStore
from coatcheck.stores.memcached import from_url as memcached_from_url
from coatcheck.stores.postgres import from_url as postgres_from_url
from coatcheck.stores.redis import RedisStore
from tests.support.memcached_server import fresh_prefix, shared_memcached
from tests.support.postgres_server import SHARED_URL, scratch_table, store_url
from tests.support.readme import section
from tests.support.redis_servers import delete_prefix, shared_redis_url, unique_prefix

ROOT = Path(__file__).resolve().parent.parent
HEADING = "Same-key concurrency: the per-session lock"
EDGES = "tests/test_session_lock_edges.py"
ENGINE = "tests/test_session_lock.py"
CONFORMANCE = "tests/conformance/test_locking.py"
HERE = "tests/test_session_lock_docs.py"

PROOFS: dict[str, list[str]] = {
    "Deltas keep the work of concurrent requests that change different keys": [
        "tests/conformance/test_store_contract.py::test_fifty_concurrent_patches_lose_nothing",
    ],
    "each writes what it read plus its own item, and one of the items is lost": [
        f"{HERE}::test_without_the_lock_a_read_modify_write_loses_an_item",
    ],
    "the lock runs the requests of one session one at a time": [
        f"{EDGES}::test_concurrent_additions_to_one_cart_keep_every_item",
        f"{ENGINE}::test_fifty_concurrent_cart_additions_keep_all_fifty_async",
        f"{ENGINE}::test_fifty_concurrent_cart_additions_keep_all_fifty_sync",
    ],
    "It is off by default": [f"{HERE}::test_the_defaults_are_the_readmes"],
    "takes its session's lock before the session is loaded and frees it after the commit": [
        f"{ENGINE}::test_the_second_request_sees_the_first_ones_write",
        f"{EDGES}::test_concurrent_additions_to_one_cart_keep_every_item",
    ],
    "also when the handler raised or the client went away": [
        f"{EDGES}::test_a_handler_that_raised_leaves_the_lock_free",
        f"{EDGES}::test_asgi_frees_the_lock_when_the_client_left",
        f"{EDGES}::test_wsgi_frees_the_lock_when_the_body_is_closed_before_the_commit",
    ],
    "A request without a token (a new session) takes no lock": [
        f"{EDGES}::test_a_new_session_takes_no_lock",
        f"{ENGINE}::test_no_token_or_a_malformed_one_takes_no_lock",
    ],
    "sessions never wait for each other": [
        f"{CONFORMANCE}::test_locks_of_different_sessions_are_independent",
    ],
    "is answered `409 Conflict` with `Retry-After: 1`, and its handler does not run": [
        f"{EDGES}::test_a_lock_held_elsewhere_is_a_409_and_the_handler_does_not_run",
        f"{ENGINE}::test_a_lock_held_past_lock_timeout_is_session_locked",
    ],
    "a store that fails while the lock is asked for is a 503": [
        f"{EDGES}::test_a_store_that_is_down_is_a_503",
    ],
    "The lock is a lease": [
        f"{ENGINE}::test_a_crashed_holders_lock_ends_with_its_lease",
        f"{CONFORMANCE}::test_a_lease_that_ended_frees_the_lock_of_a_crashed_holder",
    ],
    "Make the lease longer than the slowest locked request": [
        f"{CONFORMANCE}::test_a_lease_that_ended_frees_the_lock_of_a_crashed_holder",
    ],
    "The lock is filed under the session's storage key": [
        f"{ENGINE}::test_the_lock_is_filed_under_the_storage_key_never_the_token",
        f"{HERE}::test_each_store_files_its_locks_as_the_readme_says",
    ],
    "Every server-side store can lock": [
        f"{ENGINE}::test_every_server_side_store_but_the_core_only_one_is_lockable",
        f"{HERE}::test_each_store_files_its_locks_as_the_readme_says",
        f"{HERE}::test_postgres_holds_no_pooled_connection_while_locked",
    ],
    "The encrypted cookie store cannot": [
        f"{ENGINE}::test_a_store_without_locks_is_refused_when_the_app_starts",
        f"{EDGES}::test_a_store_that_cannot_lock_is_refused_when_the_app_starts",
    ],
    "`lock_sessions` or `locked=` paths over it fail when the app starts": [
        f"{ENGINE}::test_a_store_without_locks_is_refused_when_the_app_starts",
        f"{EDGES}::test_a_store_that_cannot_lock_is_refused_when_the_app_starts",
    ],
    "Its costs: two more store round trips per locked request": [
        f"{HERE}::test_a_locked_request_costs_two_more_round_trips",
        f"{HERE}::test_the_wait_backs_off_from_5_ms_to_100_ms",
    ],
    "A slow route holds up every other locked request of the same session": [
        f"{ENGINE}::test_the_second_request_sees_the_first_ones_write",
    ],
    "On the async edges the wait is `asyncio.sleep`": [
        f"{ENGINE}::test_the_second_request_sees_the_first_ones_write",
        f"{HERE}::test_a_sync_wait_holds_its_thread",
    ],
}
"""A fragment of each sentence of the section, and the tests that keep it."""

TEST_ID = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def prose() -> str:
    """The section without its table, in one line."""
    lines = [ln for ln in section(HEADING).splitlines() if not ln.startswith("|")]
    return " ".join(" ".join(lines).split())


def sentences() -> list[str]:
    text = re.sub(r"^- |\s- ", " ", prose())
    return [s.strip() for s in re.split(r"(?<=[.:;])\s+(?=[A-Z`])", text) if s.strip()]


def test_every_sentence_names_its_proof() -> None:
    text = prose()
    for fragment in PROOFS:
        assert fragment in text, f"the README no longer says {fragment!r}"
    unproved = [s for s in sentences() if not any(f in s for f in PROOFS)]
    assert unproved == []


def test_every_listed_proof_exists() -> None:
    missing = []
    for file, name in {(f, n) for ids in PROOFS.values() for f, n in map(_split, ids)}:
        tree = ast.parse((ROOT / file).read_text())
        names = {
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        if name not in names:
            missing.append(f"{file}::{name}")
    assert missing == []


def _split(test_id: str) -> tuple[str, str]:
    match = TEST_ID.fullmatch(test_id)
    assert match is not None, test_id
    return match.group(1), match.group(2)


def test_the_table_names_what_each_edge_exports() -> None:
    from coatcheck import asgi, django, fastapi, flask, starlette, wsgi

    table = section(HEADING)
    for module, name in (
        (starlette, "locked_session"),
        (fastapi, "LockedSession"),
        (flask, "locked_session"),
        (django, "locked_session"),
    ):
        assert name in module.__all__ and f"{name}`" in table
    for module in (asgi, wsgi):
        assert "locked" in inspect.signature(module.SessionMiddleware).parameters
    assert table.count('locked=["/cart"]') == 2


def test_the_defaults_are_the_readmes() -> None:
    config = SessionConfig()
    assert (config.lock_sessions, config.lock_timeout, config.lock_lease) == (False, 10, 30)
    text = prose()
    assert "`lock_timeout` (10 s)" in text and "`lock_lease` (30 s)" in text
    readme = (ROOT / "README.md").read_text()
    assert "| `lock_sessions` | `False` |" in readme
    assert "| `lock_timeout` / `lock_lease` | `10` / `30` |" in readme


def test_without_the_lock_a_read_modify_write_loses_an_item() -> None:
    """Two requests of one session load the cart before either commits: deltas cannot
    save the item of the first, which the second's write of the whole list replaces."""
    manager = SessionManager(MemoryStore())
    session = manager.load_sync(None)
    session["cart"] = []
    token = manager.commit_sync(session).token
    first, second = manager.load_sync(token), manager.load_sync(token)
    first["cart"] = first.get("cart", []) + ["hat"]  # noqa: RUF005 (as apps write it)
    second["cart"] = second.get("cart", []) + ["scarf"]  # noqa: RUF005
    manager.commit_sync(first)
    manager.commit_sync(second)
    assert manager.load_sync(token)["cart"] == ["scarf"]


class CountingStore(MemoryStore):
    """The memory store, counting the calls a request makes of it (each call is one round
    trip on a networked store)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def get_sync(self, key: str) -> Any:
        self.calls.append("get")
        return super().get_sync(key)

    def apply_sync(self, key: str, patch: Any) -> bool:
        self.calls.append("apply")
        return super().apply_sync(key, patch)

    def acquire_lock_sync(self, key: str, owner: str, now: float, lease: float) -> bool:
        self.calls.append("acquire_lock")
        return super().acquire_lock_sync(key, owner, now, lease)

    def release_lock_sync(self, key: str, owner: str) -> bool:
        self.calls.append("release_lock")
        return super().release_lock_sync(key, owner)


async def test_a_locked_request_costs_two_more_round_trips() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    from coatcheck.asgi import SessionMiddleware

    async def add(request: Request) -> Response:
        request.session["n"] = request.session.get("n", 0) + 1
        return PlainTextResponse("ok")

    store = CountingStore()
    manager = SessionManager(store, SessionConfig(csrf=False))
    session = manager.load_sync(None)
    session["n"] = 0
    token = manager.commit_sync(session).token
    app = Starlette(routes=[Route("/free", add), Route("/locked", add)])
    app.add_middleware(SessionMiddleware, manager=manager, locked=["/locked"])
    cookies = {"cookie": f"__Host-session={token}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
        store.calls.clear()
        assert (await client.get("/free", headers=cookies)).status_code == 200
        free = list(store.calls)
        store.calls.clear()
        assert (await client.get("/locked", headers=cookies)).status_code == 200
        locked = list(store.calls)
    assert free == ["get", "apply"]
    assert locked == ["acquire_lock", "get", "apply", "release_lock"]


def test_the_wait_backs_off_from_5_ms_to_100_ms() -> None:
    """The waits between attempts, read off the procedure: at most 5 ms first, each at
    most twice the one before, none over 100 ms (a random part of each, at least half,
    keeps waiters from trying in step)."""
    manager = SessionManager(MemoryStore(), SessionConfig(lock_timeout=3600))
    locks = SessionLocks(manager)
    session = manager.load_sync(None)
    session["n"] = 0
    token = manager.commit_sync(session).token
    steps = locks._acquire(token)
    waits: list[float] = []
    step = next(steps)
    for _ in range(12):
        step = steps.send(False)  # the lock is held: the attempt failed
        assert isinstance(step, Wait)
        waits.append(step.seconds)
        step = steps.send(None)  # waited; the next attempt
    bounds = [min(0.005 * 2**i, 0.1) for i in range(12)]
    assert all(b / 2 <= w <= b for w, b in zip(waits, bounds, strict=True))
    assert bounds[:6] == [0.005, 0.01, 0.02, 0.04, 0.08, 0.1]


def test_a_sync_wait_holds_its_thread() -> None:
    manager = SessionManager(MemoryStore(), SessionConfig(lock_timeout=30))
    session = manager.load_sync(None)
    session["n"] = 0
    token = manager.commit_sync(session).token
    locks = session_locks(manager)
    held = locks.acquire_sync(token)
    taken: list[object] = []
    waiter = threading.Thread(target=lambda: taken.append(locks.acquire_sync(token)))
    waiter.start()
    waiter.join(0.05)
    assert waiter.is_alive() and taken == []  # still waiting in its own thread
    locks.release_sync(held)
    waiter.join()
    assert taken and taken[0] is not None


def test_each_store_files_its_locks_as_the_readme_says() -> None:
    """Redis: a string with the lease as its TTL, inside the prefix; memcached: an item
    inside the prefix; both gone once released. Neither names the token."""
    from coatcheck.core import tokens

    token = tokens.new_token()
    key = tokens.storage_key(token)
    prefix = unique_prefix()
    url = shared_redis_url()
    redis = RedisStore.from_url(f"{url}?prefix={prefix}")
    try:
        assert redis.acquire_lock_sync(key, "me", 0.0, 30.0)
        name = f"{prefix}l:{key}"
        ttl = redis._sync.run(_cmd("PTTL", name))  # type: ignore[arg-type]
        assert 0 < int(ttl) <= 30_000
        assert redis._sync.run(_cmd("GET", name)) == "me"  # type: ignore[arg-type]
        assert redis.release_lock_sync(key, "me")
        assert redis._sync.run(_cmd("EXISTS", name)) == 0  # type: ignore[arg-type]
    finally:
        redis.close_sync()
        delete_prefix(url, prefix)
    server = shared_memcached()
    mc_prefix = fresh_prefix()
    memcached = memcached_from_url(f"{server.url}?prefix={mc_prefix}")
    try:
        assert memcached.acquire_lock_sync(key, "me", 0.0, 30.0)
        item = f"{mc_prefix}l:{key}"
        assert memcached._items.call("get", item) is not None
        assert memcached.release_lock_sync(key, "me")
        assert memcached._items.call("get", item) is None
    finally:
        memcached.close_sync()


def _cmd(*args: Any) -> Any:
    from coatcheck.stores.redis.operations import Cmd

    return Cmd(args)


def test_postgres_holds_no_pooled_connection_while_locked() -> None:
    """A pool of one connection: while the lock is held, the same store still reads
    (nothing pins the connection), and the locks table is unlogged, beside the table."""
    from coatcheck.core import tokens

    with scratch_table() as table:
        store = postgres_from_url(store_url(table, pool_min=1, pool_max=1))
        try:
            key = tokens.storage_key(tokens.new_token())
            assert store.acquire_lock_sync(key, "me", 1000.0, 30.0)
            assert store.get_sync(key) is None  # the one connection is free
            assert not store.acquire_lock_sync(key, "other", 1000.0, 30.0)
            with psycopg.connect(SHARED_URL, autocommit=True) as admin:
                row = admin.execute(
                    "SELECT relpersistence FROM pg_class WHERE relname = %s", (f"{table}_locks",)
                ).fetchone()
            assert row == ("u",)
            assert store.release_lock_sync(key, "me")
        finally:
            store.close_sync()
