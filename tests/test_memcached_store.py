"""MemcachedStore beyond the shared contract: native expiry, eviction, bounded indexes,
what the cache holds after real HTTP traffic, concurrency, and outages that must become
503 and then recover by themselves.

Everything runs against real memcached processes started by the tests (see
tests/support/memcached_server.py); nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from pymemcache.client.base import Client  # type: ignore[import-untyped]

from coatcheck import SessionConfig, SessionManager, StoreUnavailable
from coatcheck.core import tokens
from coatcheck.core.record import Patch, SessionRecord
from coatcheck.errors import StoreURLError
from coatcheck.stores import from_url
from coatcheck.stores.memcached import MemcachedStore
from tests.support.browser import Browser, parse_set_cookie
from tests.support.clock import FakeClock
from tests.support.forking import assert_each_process_reads_its_own
from tests.support.memcached_server import MemcachedServer, fresh_prefix, shared_memcached
from tests.support.server import serve
from tests.support.shop import create_shop

NOW = 1_800_000_000.0
COOKIE = "__Host-session"


def record(
    *,
    user_id: str | None = None,
    expires_at: float = NOW + 1800,
    absolute_at: float = NOW + 43200,
) -> SessionRecord:
    return SessionRecord(
        key=tokens.storage_key(tokens.new_token()),
        handle=tokens.new_handle(),
        data={"n": 1},
        created_at=NOW,
        last_seen_at=NOW,
        expires_at=expires_at,
        absolute_at=absolute_at,
        user_id=user_id,
    )


def set_patch(**items: object) -> Patch:
    return Patch(set_json={k: json.dumps(v) for k, v in items.items()}, set_items=dict(items))


@pytest.fixture(scope="session")
def server() -> MemcachedServer:
    return shared_memcached()


@pytest.fixture
def store(server: MemcachedServer) -> Iterator[MemcachedStore]:
    s = from_url(f"{server.url}?prefix={fresh_prefix()}")
    assert isinstance(s, MemcachedStore)
    yield s
    s.close_sync()


def expiry_of(server: MemcachedServer, name: str) -> int:
    """The absolute expiry memcached holds for an item (from ``lru_crawler metadump``)."""
    for item in server.dump():
        if item["key"] == name:
            return int(item["exp"])
    raise AssertionError(f"{name} is not in memcached")


# -- configuration ------------------------------------------------------------------------
def test_url_options_reach_the_store(server: MemcachedServer) -> None:
    s = from_url(f"{server.url}?prefix=cc:&timeout=0.25&connect_timeout=0.5&pool_size=3")
    assert isinstance(s, MemcachedStore)
    assert (s.host, s.port, s.prefix) == ("127.0.0.1", server.port, "cc:")
    assert (s.timeout, s.connect_timeout, s.pool_size) == (0.25, 0.5, 3)
    s.close_sync()
    default = from_url("memcached://cache.internal")
    assert (default.host, default.port, default.prefix) == ("cache.internal", 11211, "coatcheck:")  # type: ignore[attr-defined]
    default.close_sync()
    with pytest.raises(StoreURLError, match="unknown memcached URL options: colour"):
        from_url("memcached://127.0.0.1?colour=red")
    with pytest.raises(StoreURLError, match="credentials"):
        from_url("memcached://user:pw@127.0.0.1")
    with pytest.raises(StoreURLError, match="prefix"):
        from_url("memcached://127.0.0.1?prefix=a%20b")
    with pytest.raises(StoreURLError, match="timeout"):
        from_url("memcached://127.0.0.1?timeout=soon")
    with pytest.raises(StoreURLError, match="pool_size"):
        from_url("memcached://127.0.0.1?pool_size=0")
    with pytest.raises(StoreURLError, match="Port"):
        from_url("memcached://127.0.0.1:eleven")


def test_names_that_are_no_key_or_handle_are_unknown_not_errors(store: MemcachedStore) -> None:
    """A handle comes from a form field: garbage, or a protocol injection, must find
    nothing, never reach memcached as a command, and never turn into a 503."""
    kept = record(user_id="alice")
    store.create_sync(kept)
    for name in ("x\r\nflush_all", "a b", "", "é", "k" * 300):
        assert store.get_by_handle_sync(name) is None
        assert store.delete_handle_sync(name) is None
        assert store.get_sync(name) is None
        assert store.apply_sync(name, set_patch(a=1)) is False
        assert store.rename_sync(name, kept.key, set_patch(a=1)) is False
        assert store.delete_sync(name) is False
    assert store.get_sync(kept.key) == kept


# -- native expiry ----------------------------------------------------------------------------
def test_each_item_expires_natively_at_its_deadline(
    server: MemcachedServer, store: MemcachedStore
) -> None:
    # ``lru_crawler metadump`` reports an expiry as memcached's start time plus its own
    # clock, which ticks once a second on the monotonic clock: read back as wall time it
    # is exact only to a second either way (seen: one second under floor(deadline)).
    wall = time.time()
    soon = record(user_id="alice", expires_at=wall + 600, absolute_at=wall + 7200)
    store.create_sync(soon)  # relative expiry (under 30 days)
    assert expiry_of(server, f"{store.prefix}s:{soon.key}") in range(
        math.floor(wall + 600) - 1, math.ceil(wall + 600) + 2
    )
    # Indexes live as long as the absolute deadline, which a touch never moves.
    assert expiry_of(server, f"{store.prefix}h:{soon.handle}") in range(
        math.floor(wall + 7200) - 1, math.ceil(wall + 7200) + 2
    )
    later = record(expires_at=NOW + 1800)  # NOW is in 2027: an absolute expiry
    store.create_sync(later)
    assert expiry_of(server, f"{store.prefix}s:{later.key}") == math.ceil(NOW + 1800)
    # A touch moves the item's expiry with the record's deadline.
    assert store.apply_sync(soon.key, Patch(fields={"expires_at": wall + 1200}))
    assert expiry_of(server, f"{store.prefix}s:{soon.key}") in range(
        math.floor(wall + 1200) - 1, math.ceil(wall + 1200) + 2
    )
    # A deadline already past (an injected clock behind the wall clock) still stores the
    # record for a second; the record's expires_at is what decides validity.
    past = record(expires_at=wall - 100)
    store.create_sync(past)
    assert expiry_of(server, f"{store.prefix}s:{past.key}") <= math.ceil(time.time()) + 2
    # A clock far ahead cannot pin an item for longer than max_ttl.
    far = record(expires_at=wall + 10 * 365 * 86400, absolute_at=wall + 10 * 365 * 86400)
    store.create_sync(far)
    assert expiry_of(server, f"{store.prefix}s:{far.key}") <= math.ceil(time.time() + store.max_ttl)


# -- eviction -----------------------------------------------------------------------------------
def test_an_evicted_session_comes_back_as_a_fresh_session_not_an_error() -> None:
    """What a cache cannot promise: under memory pressure a session may vanish. The user
    is then logged out (a fresh anonymous session), and nothing fails."""
    with MemcachedServer(memory_mb=2) as tiny:
        store = from_url(f"{tiny.url}?prefix=app:")
        clock = FakeClock()
        manager = SessionManager(store, clock=clock)
        try:
            session = manager.load_sync(None)
            session["cart"] = ["hat"]
            session.login("alice")
            token = manager.commit_sync(session).token
            assert token is not None
            assert manager.load_sync(token).user_id == "alice"
            name = f"app:s:{tokens.storage_key(token)}"
            size = len(tiny.value(name) or b"")
            assert size > 0
            # Other traffic of the same item size (key and value: the same slab class)
            # fills the cache (2 MB) many times over. Reading the session after every
            # batch would mark it active and protect it, so it is read after eight.
            filler = Client(("127.0.0.1", tiny.port), default_noreply=False)
            for attempt in range(3):
                for round_ in range(8):
                    batch = {
                        f"other:{attempt}:{round_}:{i}:".ljust(len(name), "x"): b"x" * size
                        for i in range(8_000)
                    }
                    filler.set_many(batch, noreply=True)
                filler.version()  # wait until memcached has taken every write
                if tiny.value(name) is None:
                    break
            filler.close()
            assert tiny.value(name) is None, "the session was never evicted"
            assert int(tiny.stats()["evictions"]) > 0
            fresh = manager.load_sync(token)
            assert fresh.is_new and fresh.user_id is None and dict(fresh) == {}
            assert manager.list_user_sessions_sync("alice") == []
        finally:
            store.close_sync()


async def test_an_evicted_session_is_also_fresh_on_the_async_path() -> None:
    with MemcachedServer(memory_mb=2) as tiny:
        store = from_url(f"{tiny.url}?prefix=app:")
        manager = SessionManager(store, clock=FakeClock())
        try:
            session = await manager.load(None)
            session["n"] = 1
            token = (await manager.commit(session)).token
            assert token is not None
            # Evict it the way memcached would, then load: unknown, not an error.
            assert tiny.command(
                f"delete app:s:{tokens.storage_key(token)}\r\n".encode()
            ).startswith(b"DELETED")
            fresh = await manager.load(token)
            assert fresh.is_new and dict(fresh) == {}
        finally:
            await store.close()


# -- indexes stay bounded -----------------------------------------------------------------------
def user_index(server: MemcachedServer, store: MemcachedStore, user_id: str) -> list[list[object]]:
    raw = server.value(store._names.user(user_id))
    return [] if raw is None else json.loads(raw)


def test_the_user_index_never_keeps_dead_sessions(
    server: MemcachedServer, store: MemcachedStore
) -> None:
    wall = time.time()
    sessions = [
        record(user_id="alice", expires_at=wall + 600, absolute_at=wall + 3600) for _ in range(12)
    ]
    for r in sessions:
        store.create_sync(r)
    assert len(user_index(server, store, "alice")) == 12
    for r in sessions[:4]:  # logged out
        assert store.delete_sync(r.key)
    assert len(user_index(server, store, "alice")) == 8
    for r in sessions[4:7]:  # evicted or expired by memcached itself: no notification
        server.command(f"delete {store.prefix}s:{r.key}\r\n".encode())
    assert len(user_index(server, store, "alice")) == 8
    listed = store.list_user_sync("alice", wall)
    assert [r.key for r in listed] == [r.key for r in sessions[7:]]
    assert {e[0] for e in user_index(server, store, "alice")} == {r.key for r in sessions[7:]}
    # Entries whose absolute deadline has passed go on the next write to the index.
    stale = record(user_id="bob", expires_at=wall - 7200, absolute_at=wall - 3600)
    store.create_sync(stale)
    assert user_index(server, store, "bob") == []
    live = record(user_id="bob", expires_at=wall + 600, absolute_at=wall + 3600)
    store.create_sync(live)
    assert [e[0] for e in user_index(server, store, "bob")] == [live.key]


def test_purge_prunes_the_registry_of_sessions_memcached_dropped(
    server: MemcachedServer, store: MemcachedStore
) -> None:
    kept = [record() for _ in range(5)]
    dropped = [record() for _ in range(5)]
    for r in (*kept, *dropped):
        store.create_sync(r)
    for r in dropped:  # memcached expired or evicted them
        server.command(f"delete {store.prefix}s:{r.key}\r\n".encode())
    assert store.count_sync(NOW) == 5
    assert store.purge_expired_sync(NOW, 2) == 0  # nothing was left for purge to delete
    buckets = {store._names.bucket(r.key) for r in (*kept, *dropped)}
    registered = [e[0] for name in buckets for e in json.loads(server.value(name) or b"[]")]
    assert sorted(registered) == sorted(r.key for r in kept)


# -- concurrency --------------------------------------------------------------------------------
def test_a_rename_racing_writes_loses_none_that_reported_success(store: MemcachedStore) -> None:
    """Writes to the old key either land in the renamed record or report False (the
    session moved): none is acknowledged and then lost."""
    for _ in range(10):
        r = record()
        store.create_sync(r)
        new_key = tokens.storage_key(tokens.new_token())
        barrier = threading.Barrier(9)
        acknowledged: list[str] = []

        def write(i: int, key: str = r.key, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            if store.apply_sync(key, set_patch(**{f"w{i}": i})):
                acknowledged.append(f"w{i}")

        def rename(
            old: str = r.key, new: str = new_key, barrier: threading.Barrier = barrier
        ) -> None:
            barrier.wait()
            assert store.rename_sync(old, new, set_patch(renamed=True))

        threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
        threads.append(threading.Thread(target=rename))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.get_sync(r.key) is None
        moved = store.get_sync(new_key)
        assert moved is not None and moved.handle == r.handle
        assert moved.data["renamed"] is True
        assert set(acknowledged) <= set(moved.data)
        by_handle = store.get_by_handle_sync(r.handle)
        assert by_handle is not None and by_handle.key == new_key


# -- through the real middleware ----------------------------------------------------------------
@dataclass
class Shop:
    url: str
    store: MemcachedStore
    server: MemcachedServer


def shop_for(server: MemcachedServer, clock: FakeClock, **options: str) -> Iterator[Shop]:
    query = "&".join(f"{k}={v}" for k, v in {"prefix": fresh_prefix(), **options}.items())
    s = from_url(f"{server.url}?{query}")
    assert isinstance(s, MemcachedStore)
    manager = SessionManager(s, SessionConfig(), clock=clock)
    with serve(create_shop(manager)) as url:
        yield Shop(url, s, server)
    s.close_sync()


@pytest.fixture
def shop(server: MemcachedServer, clock: FakeClock) -> Iterator[Shop]:
    yield from shop_for(server, clock)


@pytest.fixture
def private_shop(clock: FakeClock) -> Iterator[Shop]:
    """A shop on its own memcached, which the test may stop, restart or freeze."""
    with MemcachedServer() as own:
        yield from shop_for(own, clock, timeout="0.3", connect_timeout="0.3")


def tokens_in(response: httpx.Response) -> list[str]:
    return [parse_set_cookie(v)[1] for v in response.headers.get_list("set-cookie")]


def cache_text(shop: Shop) -> str:
    """Every item name and value under the shop's prefix, as text."""
    lines = []
    for name in shop.server.keys(shop.store.prefix):
        value = shop.server.value(name)
        lines.append(f"{name} {value.decode() if value is not None else ''}")
    return "\n".join(lines)


def test_no_raw_token_in_keys_or_values_after_a_login_logout_cycle(
    shop: Shop, clock: FakeClock
) -> None:
    seen: list[str] = []
    snapshots: list[str] = []
    with Browser(shop.url) as b:
        seen += tokens_in(b.render())  # a page with a form: its CSRF secret starts the session
        seen += tokens_in(b.post("/cart/add?item=hat"))
        snapshots.append(cache_text(shop))
        seen += tokens_in(b.post("/login?user=alice"))
        seen += tokens_in(b.post("/set", json={"theme": "dark"}))
        clock.advance(60)
        seen += tokens_in(b.post("/regenerate"))
        snapshots.append(cache_text(shop))
        live = b.cookies[COOKIE]
        assert b.get("/read").json()["data"] == {"cart": ["hat"], "theme": "dark"}
        assert len(b.get("/sessions").json()) == 1
        seen += tokens_in(b.post("/logout?flash=bye"))
        snapshots.append(cache_text(shop))
    tokens_seen = [t for t in seen if t]
    assert len(set(tokens_seen)) >= 4  # anonymous, login, regenerate, after logout
    assert f"s:{tokens.storage_key(live)}" in snapshots[1]  # records are found by the hash...
    for text in snapshots:
        for token in tokens_seen:
            assert token not in text  # ...and never by the token itself
    # Only the post-logout flash session remains, with nothing of alice in it, beside the
    # markers the login and regenerate() left for rotation_grace under keys derived from
    # the old ones (tests/conformance/test_login_races.py): no data, no user.
    records = [n for n in shop.server.keys(f"{shop.store.prefix}s:")]
    docs = {n: json.loads(shop.server.value(n) or b"{}") for n in records}
    markers = [n for n in records if "superseded_at" in docs[n]["meta"]]
    assert len(markers) == 2
    assert all((docs[n]["user_id"], docs[n]["data"]) == (None, {}) for n in markers)
    (only,) = [n for n in records if n not in markers]
    doc = json.loads(shop.server.value(only) or b"{}")
    assert (doc["user_id"], doc["data"]) == (None, {"flash": "bye"})


async def test_fifty_concurrent_requests_on_one_session_lose_no_key(shop: Shop) -> None:
    with Browser(shop.url) as b:
        b.post("/set", json={"base": 0})
        token = b.cookies[COOKIE]
        headers = {"Cookie": f"{COOKIE}={token}", "X-CSRF-Token": b.csrf_token()}
    limits = httpx.Limits(max_connections=60)
    async with httpx.AsyncClient(base_url=shop.url, limits=limits, timeout=30) as client:
        responses = await asyncio.gather(
            *(client.post(f"/together?key=k{i}", headers=headers) for i in range(50))
        )
    assert [r.status_code for r in responses] == [200] * 50
    stored = shop.store.get_sync(tokens.storage_key(token))
    assert stored is not None
    assert stored.data == {"base": 0, **{f"k{i}": f"k{i}" for i in range(50)}}


# -- outages ------------------------------------------------------------------------------------
async def test_a_stopped_memcached_is_a_503_and_a_restarted_one_serves_again(
    private_shop: Shop,
) -> None:
    shop = private_shop
    with Browser(shop.url) as b:
        assert b.post("/login?user=alice").status_code == 200
        token = b.cookies[COOKIE]
        csrf = {"X-CSRF-Token": b.csrf_token()}  # the form was open before the outage
        shop.server.stop()
        started = time.monotonic()
        down = b.get("/read")
        assert down.status_code == 503
        assert down.headers["retry-after"] == "5"
        assert b.post("/set", json={"a": 1}, headers=csrf).status_code == 503
        assert time.monotonic() - started < 3  # refused at once, never a hang
        with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{shop.server.port}"):
            shop.store.get_sync(tokens.storage_key(token))
        with pytest.raises(StoreUnavailable):
            await shop.store.apply(tokens.storage_key(token), set_patch(a=1))

        shop.server.start()  # same port, empty: memcached keeps nothing across a restart
        back = b.get("/read")
        assert back.status_code == 200  # the first request after the restart is served
        assert back.json()["user_id"] is None  # ...but the session did not survive
        assert b.post("/login?user=alice").status_code == 200
        assert b.post("/set", json={"a": 1}).json()["data"] == {"a": 1}


def test_a_restart_between_requests_costs_no_503(private_shop: Shop) -> None:
    """Pooled connections die with the server; the next call replaces them and retries
    once, so no request fails once memcached is back."""
    shop = private_shop
    with Browser(shop.url) as b:
        for i in range(5):
            assert b.post("/set", json={"n": i}).status_code == 200
        shop.server.restart()
        assert b.get("/read").status_code == 200
        assert b.post("/set", json={"n": 9}).status_code == 200
        assert b.get("/read").json()["data"] == {"n": 9}


def test_a_frozen_memcached_is_a_503_within_the_timeout(private_shop: Shop) -> None:
    """SIGSTOP: connections are accepted but nothing answers. The operation timeout
    (0.3 s here) bounds the request: a 503, never a hang."""
    shop = private_shop
    process = shop.server.process
    assert process is not None
    with Browser(shop.url) as b:
        assert b.post("/set", json={"a": 1}).status_code == 200
        csrf = {"X-CSRF-Token": b.csrf_token()}  # the form was open before the freeze
        os.kill(process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            assert b.get("/read").status_code == 503
            assert b.post("/set", json={"a": 2}, headers=csrf).status_code == 503
            elapsed = time.monotonic() - started
            assert 0.3 <= elapsed < 3
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="timed out"):
                shop.store.get_sync(tokens.storage_key(b.cookies[COOKIE]))
            assert time.monotonic() - started < 1.5
        finally:
            os.kill(process.pid, signal.SIGCONT)
        assert b.get("/read").json()["data"] == {"a": 1}  # nothing was lost meanwhile


def test_a_forked_worker_never_talks_on_its_parents_connections(server: MemcachedServer) -> None:
    """A pre-forking server (gunicorn --preload) forks after the app has used the store:
    parent and child each read their own replies, so each gets its own session."""
    store = from_url(f"{server.url}?prefix={fresh_prefix()}&pool_size=1")
    assert isinstance(store, MemcachedStore)
    alice, bob = record(user_id="alice"), record(user_id="bob")
    store.create_sync(alice)
    store.create_sync(bob)
    assert_each_process_reads_its_own(store, alice, bob)
    store.close_sync()


async def test_a_forked_worker_serves_the_async_path_with_threads_of_its_own(
    server: MemcachedServer,
) -> None:
    """The async path runs on a thread pool; a child inherits the pool but not its threads."""
    store = from_url(f"{server.url}?prefix={fresh_prefix()}&pool_size=2")
    assert isinstance(store, MemcachedStore)
    alice = record(user_id="alice")
    await store.create(alice)
    assert (await store.get(alice.key)) == alice  # the parent's pool threads now exist
    child = os.fork()
    if child == 0:  # pragma: no cover (runs in the child, which reports by exit code)
        code = 1
        try:
            found = asyncio.run(asyncio.wait_for(store.get(alice.key), 5))
            code = 0 if found == alice else 2
        finally:
            os._exit(code)
    status = 0
    for _ in range(100):  # the child answers within its own 5 s, or this fails
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid:
            break
        await asyncio.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        pytest.fail("the forked child's async load hung")
    assert os.waitstatus_to_exitcode(status) == 0
    store.close_sync()


@pytest.mark.parametrize("value", [b"not json", b"[1, 2]", b'{"v": 1}', b'{"handle": 1}'])
def test_an_item_damaged_in_memcached_is_a_fresh_session_not_an_error(
    server: MemcachedServer, store: MemcachedStore, value: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """Bad data under a record's name (another program, an operator) is no record, as an
    unknown token is: a fresh session, not a 503 for as long as the item lives; and no
    log line names the item (its name holds the token's SHA-256)."""
    manager = SessionManager(store)
    session = manager.load_sync(None)
    session["cart"] = ["hat"]
    token = manager.commit_sync(session).token
    assert token is not None
    key = tokens.storage_key(token)
    host, port = server.url.removeprefix("memcached://").split(":")
    raw_client = Client((host, int(port)), default_noreply=False)
    raw_client.set(f"{store.prefix}s:{key}", value)
    again = manager.load_sync(token)
    assert again.is_new and dict(again) == {}
    assert store.apply_sync(key, set_patch(n=1)) is False  # no record: nothing to patch
    assert raw_client.get(f"{store.prefix}s:{key}") == value
    assert key not in caplog.text
    raw_client.close()


# -- races and outages of revoke_user and the async path -------------------------------------
def test_revoke_user_ends_a_session_renamed_at_that_instant(server: MemcachedServer) -> None:
    """ "Log out everywhere" while another process renames one of the user's sessions (a
    login on that device, or regenerate()). The revocation read the user's index before
    the rename added the new key, and the records after the rename had deleted the old one:
    it must read the index again and end the session under its new key."""
    prefix = fresh_prefix()
    revoker = MemcachedStore("127.0.0.1", server.port, prefix=prefix)
    renamer = MemcachedStore("127.0.0.1", server.port, prefix=prefix)
    session = record(user_id="alice")
    renamer.create_sync(session)
    moved = tokens.storage_key(tokens.new_token())
    index = revoker._names.user("alice")
    call = revoker._items.call
    renamed: list[bool] = []

    def interleaved(method: str, *args: object, **kwargs: object) -> object:
        result = call(method, *args, **kwargs)
        if method == "get" and args == (index,) and not renamed:
            # The revocation has read the index; the rename runs from start to end now.
            patch = Patch(fields={"last_seen_at": NOW + 1})
            renamed.append(renamer.rename_sync(session.key, moved, patch))
        return result

    revoker._items.call = interleaved  # type: ignore[method-assign]
    try:
        ended = revoker.delete_user_sync("alice")
    finally:
        revoker._items.call = call  # type: ignore[method-assign]

    assert renamed == [True]
    assert ended == 1
    assert renamer.get_sync(moved) is None and renamer.get_sync(session.key) is None
    assert renamer.get_by_handle_sync(session.handle) is None
    assert renamer.list_user_sync("alice", NOW) == []
    revoker.close_sync()
    renamer.close_sync()


async def test_the_async_path_queues_boundedly_while_memcached_hangs() -> None:
    """A frozen memcached holds each worker thread for the whole timeout. The async calls
    beyond ``max_queued`` waiting for a thread fail at once with StoreUnavailable instead
    of queueing without end, and the ones that waited past the bounded wait fail without
    paying another timeout; afterwards the store serves again."""
    with MemcachedServer() as own:
        store = MemcachedStore(
            "127.0.0.1",
            own.port,
            prefix=fresh_prefix(),
            timeout=0.3,
            connect_timeout=0.3,
            pool_size=2,
            max_queued=4,
        )
        kept = record()
        store.create_sync(kept)
        assert (await store.get(kept.key)) is not None  # the threads are up
        process = own.process
        assert process is not None
        os.kill(process.pid, signal.SIGSTOP)
        try:
            results = await asyncio.gather(
                *(store.get(kept.key) for _ in range(50)), return_exceptions=True
            )
        finally:
            os.kill(process.pid, signal.SIGCONT)
        assert all(isinstance(r, StoreUnavailable) for r in results), results
        refused = [r for r in results if "calls already wait" in str(r)]
        assert len(refused) >= 50 - (2 + 4)  # at most 2 running and 4 waiting were let in
        found = await store.get(kept.key)
        assert found is not None and found.data == {"n": 1}
        store.close_sync()
