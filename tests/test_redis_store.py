"""RedisStore against real servers: what it costs on the wire, what it leaves in the
keyspace, and how it fails.

The contract itself is proven by tests/conformance on standalone, Cluster and Sentinel;
these tests prove what is particular to Redis: round trips per request, TTLs equal to the
deadlines, an index that empties itself, no raw token anywhere, 503 (never a hang) when the
server is gone or frozen, and recovery without restarting the app.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio.connection
import redis.connection

import coatcheck.stores
from coatcheck import SessionConfig, SessionManager
from coatcheck.core import tokens
from coatcheck.core.record import Patch, SessionRecord
from coatcheck.core.session import Session
from coatcheck.core.steps import drive_async, drive_sync
from coatcheck.engine.manager import CommitResult
from coatcheck.errors import ConfigError, StoreUnavailable, StoreURLError
from coatcheck.stores import from_url
from coatcheck.stores.redis import RedisOptions, RedisStore
from coatcheck.stores.redis.operations import Batch, Cmd, Eval, Pause, ScanPage
from coatcheck.stores.redis.scripts import (
    APPLY,
    APPLY_IF_HANDLE,
    DELETE,
    DROP_EXPIRED,
    DROP_IF,
    LUA_HELPERS,
    RENAME,
    TAKE,
    UNLINK,
)
from tests.support.browser import Browser, parse_set_cookie
from tests.support.clock import FakeClock
from tests.support.forking import assert_each_process_reads_its_own
from tests.support.redis_servers import (
    SHARED,
    RedisServer,
    delete_prefix,
    free_port,
    shared_redis_url,
    unique_prefix,
)
from tests.support.server import serve
from tests.support.shop import create_shop
from tests.support.stats import check_stats

COOKIE = "__Host-session"
SCRIPTS = (APPLY, TAKE, RENAME, DELETE)
NOW = 1_800_000_000.0


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture
def shared_url() -> Iterator[str]:
    """The machine's Redis under a fresh key prefix, removed afterwards."""
    url = shared_redis_url()
    prefix = unique_prefix()
    yield f"{url}?prefix={prefix}&timeout=2"
    delete_prefix(url, prefix)


@pytest.fixture
def cluster_url() -> Iterator[str]:
    url = SHARED.cluster()
    prefix = unique_prefix()
    yield f"{url}?prefix={prefix}"
    delete_prefix(url, prefix)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server this test may inspect whole, kill or freeze."""
    with RedisServer(tmp_path / "redis").start() as private:
        yield private


class RoundTrips:
    """Counts requests written to a Redis socket: a command, a pipeline or a MULTI block
    is one write followed by reading its replies, i.e. one round trip per node."""

    def __init__(self) -> None:
        self.count = 0

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    counter = RoundTrips()
    sync_send = redis.connection.AbstractConnection.send_packed_command
    async_send = redis.asyncio.connection.AbstractConnection.send_packed_command

    def counts(command: Any) -> bool:
        """Not a connection's handshake (AUTH, HELLO, CLIENT SETINFO, SELECT), which each new
        connection pays once: not a request's cost."""
        packed = command if isinstance(command, bytes) else b"".join(command)
        name = packed.split(b"\r\n", 3)[2:3]
        return name not in ([b"AUTH"], [b"HELLO"], [b"CLIENT"], [b"SELECT"])

    def counting_sync(self: Any, command: Any, check_health: bool = True) -> None:
        counter.count += counts(command)
        sync_send(self, command, check_health)

    async def counting_async(self: Any, command: Any, check_health: bool = True) -> None:
        counter.count += counts(command)
        await async_send(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting_sync)
    monkeypatch.setattr(
        redis.asyncio.connection.AbstractConnection, "send_packed_command", counting_async
    )
    return counter


class Paths:
    """The manager's async or sync API behind one async face."""

    def __init__(self, manager: SessionManager, mode: str) -> None:
        self.manager = manager
        self.mode = mode

    async def load(self, token: str | None) -> Session:
        if self.mode == "async":
            return await self.manager.load(token)
        return self.manager.load_sync(token)

    async def commit(self, session: Session) -> CommitResult:
        if self.mode == "async":
            return await self.manager.commit(session)
        return self.manager.commit_sync(session)

    async def get(self, key: str) -> SessionRecord | None:
        store = self.manager.store
        return await store.get(key) if self.mode == "async" else store.get_sync(key)

    async def store_purge(self, now: float, batch_size: int) -> int:
        store = self.manager.store
        if self.mode == "async":
            return await store.purge_expired(now, batch_size)
        return store.purge_expired_sync(now, batch_size)


def new_record(
    data: dict[str, Any],
    *,
    user_id: str | None = None,
    expires_in: float = 600,
    absolute_in: float = 9000,
) -> SessionRecord:
    """A fresh record created at NOW, for tests that write records directly."""
    return SessionRecord(
        key=tokens.storage_key(tokens.new_token()),
        handle=tokens.new_handle(),
        data=data,
        created_at=NOW,
        last_seen_at=NOW,
        expires_at=NOW + expires_in,
        absolute_at=NOW + absolute_in,
        user_id=user_id,
    )


def raw(url: str) -> redis.Redis:
    return redis.Redis.from_url(url.split("?")[0], decode_responses=True)


def keyspace(client: redis.Redis) -> dict[str, Any]:
    """Every key of a server with its whole value."""
    dump: dict[str, Any] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == "hash":
            dump[key] = client.hgetall(key)
        elif kind == "string":
            dump[key] = client.get(key)
        elif kind == "zset":
            dump[key] = client.zrange(key, 0, -1, withscores=True)
        else:
            dump[key] = f"<{kind}>"
    return dump


def pexpiretime(client: Any, key: str) -> int:
    return int(client.execute_command("PEXPIRETIME", key))


# -- round trips ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["async", "sync"])
async def test_round_trips_per_request_on_a_single_node(
    shared_url: str, round_trips: RoundTrips, clock: FakeClock, mode: str
) -> None:
    store = RedisStore.from_url(shared_url)
    config = SessionConfig()
    paths = Paths(SessionManager(store, config, clock=clock), mode)
    # Open the connections (their handshakes are not a request's cost): single commands
    # and pipelines each have theirs.
    await paths.get("0" * 64)
    warm = await paths.load(None)
    warm["warm"] = True
    await paths.commit(warm)
    with raw(shared_url) as client:  # a server's first EVALSHA of a script costs one more
        for script in (APPLY, DELETE, RENAME, TAKE):
            client.script_load(script.text)
    round_trips.take()
    costs: dict[str, int] = {}

    session = await paths.load(None)
    session["cart"] = ["hat"]
    token = (await paths.commit(session)).token
    assert token is not None
    costs["new session (load + create)"] = round_trips.take()

    session = await paths.load(token)
    costs["load"] = round_trips.take()
    assert session["cart"] == ["hat"]
    await paths.commit(session)
    costs["read-only commit"] = round_trips.take()

    session = await paths.load(token)
    round_trips.take()
    session["cart"].append("scarf")
    await paths.commit(session)
    costs["commit of a change"] = round_trips.take()

    clock.advance(config.effective_touch_interval + 1)
    session = await paths.load(token)
    round_trips.take()
    await paths.commit(session)
    costs["touch"] = round_trips.take()

    session = await paths.load(token)
    round_trips.take()
    session.login("alice")
    token = (await paths.commit(session)).token
    assert token is not None
    costs["login (rename)"] = round_trips.take()

    session = await paths.load(token)
    round_trips.take()
    session.logout()
    await paths.commit(session)
    costs["logout (delete)"] = round_trips.take()

    assert costs == {
        "new session (load + create)": 1,
        "load": 1,
        "read-only commit": 0,
        "commit of a change": 1,
        "touch": 1,
        "login (rename)": 2,  # the superseded marker, then the one rename script
        "logout (delete)": 1,
    }
    if mode == "async":
        await store.close()
    store.close_sync()


@pytest.mark.parametrize("mode", ["async", "sync"])
async def test_round_trips_on_a_cluster(
    cluster_url: str, round_trips: RoundTrips, clock: FakeClock, mode: str
) -> None:
    """The hot path is one key in one slot: one round trip, as on a single node."""
    store = RedisStore.from_url(cluster_url)
    paths = Paths(SessionManager(store, SessionConfig(), clock=clock), mode)
    host, port = store.options.hosts[0]
    cluster = redis.RedisCluster(host=host, port=port, decode_responses=True)
    for script in SCRIPTS:  # as after any earlier use: every node has every script
        cluster.script_load(script.text)
    # Open this client's connection to every node (a handshake is not a request's cost).
    probes: dict[str, str] = {}
    while len(probes) < len(cluster.get_primaries()):
        key = tokens.storage_key(tokens.new_token())
        probes.setdefault(cluster.get_node_from_key(store.record_key(key)).name, key)
    for key in probes.values():
        assert await paths.get(key) is None
    session = await paths.load(None)
    session["cart"] = ["hat"]
    token = (await paths.commit(session)).token
    assert token is not None
    round_trips.take()

    session = await paths.load(token)
    assert round_trips.take() == 1
    await paths.commit(session)
    assert round_trips.take() == 0
    session = await paths.load(token)
    round_trips.take()
    session["size"] = "M"
    await paths.commit(session)
    assert round_trips.take() == 1
    session = await paths.load(token)
    assert session["size"] == "M"
    round_trips.take()
    session.login("alice")
    old_key = tokens.storage_key(token)
    handle = session.handle
    token = (await paths.commit(session)).token
    assert token is not None and handle is not None
    # Two steps: take (old slot), then one pipeline writing the record, its handle pointer
    # and the user index, which live in up to three slots: one write per node involved,
    # all sent before any reply is read (one round trip of latency).
    nodes = {
        cluster.get_node_from_key(k).name
        for k in (
            store.record_key(tokens.storage_key(token)),
            store.pointer_key(handle),
            store.user_key("alice"),
        )
    }
    # Before them, the login's superseded marker (tests/conformance/test_login_races.py):
    # one pipeline writing it and its handle pointer, one write per node involved.
    marker = await paths.get(tokens.superseded_key(old_key))
    assert marker is not None and marker.data == {} and marker.user_id is None
    marked = {
        cluster.get_node_from_key(k).name
        for k in (
            store.record_key(tokens.superseded_key(old_key)),
            store.pointer_key(marker.handle),
        )
    }
    assert round_trips.take() == len(marked) + 1 + len(nodes) + 1  # (+1: the get above)
    assert cluster.get_node_from_key(store.record_key(old_key)) is not None
    session = await paths.load(token)
    assert (session.user_id, session["cart"], session["size"]) == ("alice", ["hat"], "M")
    cluster.close()
    if mode == "async":
        await store.close()
    store.close_sync()


@pytest.mark.parametrize("mode", ["async", "sync"])
async def test_a_cluster_resends_the_scripts_its_nodes_forgot(cluster_url: str, mode: str) -> None:
    """After a restart or a failover a node's script cache is empty: a script sent alone
    (a commit) and scripts in a pipeline (a purge page) are answered NOSCRIPT, sent again
    by EVAL, which caches them again, and do their work."""
    store = RedisStore.from_url(cluster_url)
    host, port = store.options.hosts[0]
    cluster = redis.RedisCluster(host=host, port=port, decode_responses=True)
    nodes = [redis.Redis(host=n.host, port=n.port) for n in cluster.get_primaries()]

    def forget() -> None:
        for node in nodes:
            node.script_flush()

    async def call(name: str, *args: Any) -> Any:
        if mode == "async":
            return await getattr(store, name)(*args)
        return getattr(store, f"{name}_sync")(*args)

    kept = new_record({"a": 1}, user_id="erin")
    ending = [new_record({"i": i}, expires_in=60) for i in range(6)]
    for record in (kept, *ending):
        await call("create", record)
    forget()
    assert await call("apply", kept.key, Patch(set_json={"b": "2"}, set_items={"b": 2}))
    home = cluster.get_node_from_key(store.record_key(kept.key))
    assert redis.Redis(host=home.host, port=home.port).script_exists(APPLY.sha) == [True]
    loaded = await call("get", kept.key)
    assert loaded is not None and loaded.data == {"a": 1, "b": 2}
    forget()
    assert await call("purge_expired", NOW + 61, 1000) == len(ending)
    for record in ending:
        assert await call("get", record.key) is None
    assert await call("get", kept.key) == loaded
    for node in nodes:
        node.close()
    cluster.close()
    if mode == "async":
        await store.close()
    store.close_sync()


# -- deadlines -----------------------------------------------------------------------------
def test_ttl_equals_the_deadline_and_follows_touches(shared_url: str, clock: FakeClock) -> None:
    store = RedisStore.from_url(shared_url)
    config = SessionConfig(idle_timeout=3600, absolute_timeout=5400)
    manager = SessionManager(store, config, clock=clock)
    client = raw(shared_url)

    session = manager.load_sync(None)
    session.login("alice")
    token = manager.commit_sync(session).token
    assert token is not None
    key = tokens.storage_key(token)
    record = store.get_sync(key)
    assert record is not None
    assert (record.expires_at, record.absolute_at) == (NOW + 3600, NOW + 5400)
    assert pexpiretime(client, store.record_key(key)) == round(record.expires_at * 1000)
    assert pexpiretime(client, store.pointer_key(record.handle)) == round(record.absolute_at * 1000)
    assert pexpiretime(client, store.user_key("alice")) == round(record.absolute_at * 1000)

    clock.advance(config.effective_touch_interval + 1)
    manager.commit_sync(manager.load_sync(token))  # a touch
    touched = store.get_sync(key)
    assert touched is not None and touched.expires_at == clock.now + 3600
    assert pexpiretime(client, store.record_key(key)) == round(touched.expires_at * 1000)

    # The idle deadline never outruns the absolute one: near the end, the TTL is capped.
    clock.now = NOW + 3000
    session = manager.load_sync(token)
    session["late"] = True
    manager.commit_sync(session)
    capped = store.get_sync(key)
    assert capped is not None and capped.expires_at == record.absolute_at
    assert pexpiretime(client, store.record_key(key)) == round(record.absolute_at * 1000)

    # Remember-me: no idle limit, the TTL is the absolute deadline.
    session = manager.load_sync(None)
    session.login("bob", remember=True)
    token = manager.commit_sync(session).token
    assert token is not None
    remembered = store.get_sync(tokens.storage_key(token))
    assert remembered is not None and remembered.remember
    ttl = pexpiretime(client, store.record_key(remembered.key))
    assert ttl == round((clock.now + config.remember_timeout) * 1000)
    client.close()
    store.close_sync()


def test_user_index_entries_vanish_without_notifications(
    server: RedisServer, clock: FakeClock
) -> None:
    """Spring Session's leak, tried here: sessions end by TTL (an expiry nobody is told
    about: CONFIG is disabled on this server, so notifications cannot even be switched on),
    by logout, and by the absolute deadline; the index forgets every one of them."""
    client = server.client()
    with pytest.raises(redis.ResponseError):
        client.execute_command("CONFIG", "GET", "notify-keyspace-events")
    store = RedisStore.from_url(server.url)
    manager = SessionManager(store, SessionConfig(), clock=clock)
    handles: list[str] = []
    issued: list[str] = []
    for _ in range(3):
        session = manager.load_sync(None)
        session.login("alice")
        token = manager.commit_sync(session).token
        assert token is not None
        issued.append(token)
        handles.append(manager.load_sync(token).handle or "")
    keys = [tokens.storage_key(t) for t in issued]
    index = store.user_key("alice")
    assert sorted(client.zrange(index, 0, -1)) == sorted(handles)

    # 1. Redis expires the first record by its TTL (deadline moved into the past).
    client.execute_command("PEXPIREAT", store.record_key(keys[0]), 1)
    assert client.exists(store.record_key(keys[0])) == 0
    # 2. The second is logged out.
    session = manager.load_sync(issued[1])
    session.logout()
    manager.commit_sync(session)
    assert client.zcard(index) == 2  # the logout removed its entry at once

    listed = manager.list_user_sessions_sync("alice")
    assert [info.handle for info in listed] == [handles[2]]
    assert client.zrange(index, 0, -1) == [handles[2]]  # the expired entry went on access
    assert client.get(store.pointer_key(handles[0])) is None

    # 3. Past the absolute deadline the last entry goes too, and the index with it.
    assert pexpiretime(client, index) == round((NOW + SessionConfig().absolute_timeout) * 1000)
    clock.advance(SessionConfig().absolute_timeout + 1)
    assert manager.list_user_sessions_sync("alice") == []
    assert client.exists(index) == 0
    client.close()
    store.close_sync()


# -- what the keyspace holds ---------------------------------------------------------------
def test_no_raw_token_anywhere_after_a_login_logout_cycle(
    server: RedisServer, clock: FakeClock
) -> None:
    store = RedisStore.from_url(server.url)
    manager = SessionManager(store, SessionConfig(), clock=clock)
    issued: list[str] = []

    class Recording(Browser):
        """A browser that notes every token it is given (pages it renders included)."""

        def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
            response = super().request(method, path, **kwargs)
            for raw_cookie in response.headers.get_list("set-cookie"):
                name, value, _ = parse_set_cookie(raw_cookie)
                if name == COOKIE and tokens.is_well_formed(value):
                    issued.append(value)
            return response

    def ok(response: httpx.Response) -> httpx.Response:
        assert response.status_code == 200, response.text
        return response

    with serve(create_shop(manager)) as url, Recording(url) as alice, Recording(url) as other:
        ok(alice.post("/cart/add", params={"item": "hat"}))
        ok(alice.post("/login", params={"user": "alice"}))
        ok(alice.post("/cart/add", params={"item": "scarf"}))
        ok(other.post("/login", params={"user": "alice", "remember": "1"}))
        assert len(ok(alice.get("/sessions")).json()) == 2
        ok(alice.post("/regenerate"))
        ok(alice.post("/logout", params={"flash": "bye"}))
        dump_mid = keyspace(server.client())
        ok(alice.post("/logout"))
        others_token = other.cookies[COOKIE]
    # first visit, login, the other device, regenerate, the flash after logout (at least)
    assert len(set(issued)) >= 5

    client = server.client()
    dump = keyspace(client)
    for snapshot in (dump_mid, dump):
        text = json.dumps(snapshot)
        for token in issued:
            assert token not in text
    # Only three shapes of key exist, named by a SHA-256, a public handle or a user id.
    shape = re.compile(r"coatcheck:(s:[0-9a-f]{64}|h:[A-Za-z0-9_-]{16}|u:alice)")
    assert dump and all(shape.fullmatch(k) for k in dump), sorted(dump)
    # The one session left is the other device's, filed under its token's hash.
    # Beside it, the markers the login and regenerate() left for rotation_grace under keys
    # derived from the old ones (tests/conformance/test_login_races.py): no data, no user.
    records = [k for k in dump if k.startswith("coatcheck:s:")]
    markers = [k for k in records if "superseded_at" in dump[k]["m"]]
    assert len(markers) >= 2  # (at least alice's login and her regenerate())
    for key in markers:
        assert "u" not in json.loads(dump[key]["m"])
        assert not any(name.startswith("d:") for name in dump[key])
    (record_key,) = [k for k in records if k not in markers]
    assert record_key == store.record_key(hashlib.sha256(others_token.encode()).hexdigest())
    packed = json.loads(dump[record_key]["m"])  # the metadata, packed in one field
    assert packed["u"] == "alice" and set(packed) >= {"h", "c"}
    assert float(dump[record_key]["e"]) <= float(dump[record_key]["a"])  # the deadlines
    # "s": the size the byte limit is checked against (the data's JSON, kept per write).
    assert all(name.startswith("d:") for name in set(dump[record_key]) - {"m", "l", "e", "a", "s"})
    client.close()
    store.close_sync()


def test_user_data_cannot_collide_with_metadata(shared_url: str) -> None:
    store = RedisStore.from_url(shared_url)
    record = SessionRecord(
        key=tokens.storage_key(tokens.new_token()),
        handle=tokens.new_handle(),
        data={"m": {"u": "mallory"}, "e": "never", "handle": 1, "u": "x"},
        created_at=NOW,
        last_seen_at=NOW,
        expires_at=NOW + 60,
        absolute_at=NOW + 600,
    )
    store.create_sync(record)
    store.apply_sync(
        record.key,
        Patch(set_json={"m": '"x"', "a": '"y"', "l": "0"}, set_items={"m": "x", "a": "y", "l": 0}),
    )
    loaded = store.get_sync(record.key)
    assert loaded is not None
    assert loaded.user_id is None and loaded.absolute_at == NOW + 600
    assert loaded.data == {**record.data, "m": "x", "a": "y", "l": 0}
    assert loaded.last_seen_at == NOW
    store.close_sync()


def test_the_size_field_follows_every_write_and_a_record_without_one_is_measured(
    shared_url: str,
) -> None:
    """The byte limit is checked against the field "s" (never by reading the whole hash):
    it must equal the data's compact JSON size less one, write after write, and a record
    stored before the field existed is measured once, at its first limited write."""
    store = RedisStore.from_url(shared_url)
    client = redis.Redis.from_url(shared_url.split("?")[0], decode_responses=True)
    record = SessionRecord(
        tokens.storage_key(tokens.new_token()),
        tokens.new_handle(),
        {"n": 1},
        NOW,
        NOW,
        NOW + 60,
        NOW + 600,
    )
    store.create_sync(record)
    name = store.record_key(record.key)
    assert client.hget(name, "s") == "6"  # "n" (3) + 1 (1) + 2: {"n":1} is 7 bytes
    ops = (("incr", "n", 1, "1"), ("append", "c", "z", '"z"'))
    grow = Patch({"a": '"xxx"'}, {"a": "xxx"}, ops=ops, max_bytes=1000)
    assert store.apply_sync(record.key, grow)
    # {"n":2,"a":"xxx","c":["z"]} is 27 bytes: 6 + ("a" 3 + "xxx" 5 + 2) + ("c" 3 + 5 + 2).
    assert client.hget(name, "s") == "26"
    assert store.apply_sync(record.key, Patch(removed=frozenset({"a", "never"})))
    assert client.hget(name, "s") == "16"  # no limit on a removal, the size kept all the same
    client.hdel(name, "s")  # as a record written before the field existed
    assert store.apply_sync(record.key, Patch({"é": '"ü"'}, {"é": "ü"}, max_bytes=1000))
    # "é" is 4 bytes as JSON text in UTF-8, "ü" too: 16 + 4 + 4 + 2.
    assert client.hget(name, "s") == "26"
    loaded = store.get_sync(record.key)
    assert loaded is not None and loaded.data == {"n": 2, "c": ["z"], "é": "ü"}
    assert len(json.dumps(loaded.data, separators=(",", ":"), ensure_ascii=False).encode()) == 27
    client.close()
    store.close_sync()


# -- the paths that do not use the per-process hints -----------------------------------------
def test_rename_and_delete_from_another_process_keep_every_index_right(
    shared_url: str, round_trips: RoundTrips
) -> None:
    """A store that never loaded the record (another process), or whose memory of it is
    stale, still renames and deletes correctly: a rename reads the record's handle and
    user, then runs the one atomic script (which refuses a stale hint); a delete takes the
    two-step path. Every index stays right."""
    first = RedisStore.from_url(shared_url)
    second = RedisStore.from_url(shared_url)
    client = raw(shared_url)
    record = SessionRecord(
        key=tokens.storage_key(tokens.new_token()),
        handle=tokens.new_handle(),
        data={"cart": ["hat"]},
        created_at=NOW,
        last_seen_at=NOW,
        expires_at=NOW + 60,
        absolute_at=NOW + 600,
        user_id="alice",
    )
    first.create_sync(record)
    second.get_sync("0" * 64)
    round_trips.take()

    moved = tokens.storage_key(tokens.new_token())
    assert second.rename_sync(record.key, moved, Patch(fields={"user_id": "bob"}))
    assert round_trips.take() == 2
    assert client.zrange(first.user_key("alice"), 0, -1) == []
    assert client.zrange(first.user_key("bob"), 0, -1) == [record.handle]
    assert client.get(first.pointer_key(record.handle)) == moved

    assert first.get_sync(moved) is not None  # first now remembers (handle, bob)
    assert second.apply_sync(moved, Patch(fields={"user_id": "carol"}))  # ... stale
    again = tokens.storage_key(tokens.new_token())
    round_trips.take()
    assert first.rename_sync(moved, again, Patch(fields={"last_seen_at": NOW + 1}))
    assert round_trips.take() == 3  # refused hint, a fresh read of it, the script
    assert client.zrange(first.user_key("carol"), 0, -1) == [record.handle]
    assert client.zrange(first.user_key("bob"), 0, -1) == []
    found = first.get_by_handle_sync(record.handle)
    assert found is not None and found.key == again and found.data == {"cart": ["hat"]}

    assert second.apply_sync(again, Patch(fields={"user_id": "dave"}))  # first's hint stale
    assert first.delete_sync(again) is True
    assert client.exists(first.record_key(again), first.pointer_key(record.handle)) == 0
    assert client.zrange(first.user_key("dave"), 0, -1) == []
    assert first.delete_sync(again) is False
    client.close()
    first.close_sync()
    second.close_sync()


class Interleaved(RedisStore):
    """A RedisStore that runs ``between`` after each of its wire operations: what another
    process does while a procedure of this one is half-way."""

    between: Any = None

    def _drive_sync(self, steps: Any) -> Any:
        def run(op: Any) -> Any:
            result = self._sync.run(op)
            hook, self.between = self.between, None
            if hook is not None:
                hook()
            return result

        return drive_sync(steps, run)


def test_a_rename_without_a_hint_is_one_atomic_script(shared_url: str) -> None:
    """On a single node a rename the store has no hint for (another process loaded the
    record, or the 8,192 hints moved on) is still one atomic script: a revocation run by
    another process between its steps is never missed. (The two-step path it took before
    left the record under neither key for a round trip: ``revoke_user`` found nothing to
    end, and the rename then wrote the session back, alive.)"""
    revoker = RedisStore.from_url(shared_url)
    renamer = Interleaved(RedisOptions.from_url(shared_url))
    record = new_record({"cart": ["hat"]}, user_id="alice")
    revoker.create_sync(record)
    revoked: list[int] = []
    renamer.between = lambda: revoked.append(revoker.delete_user_sync("alice"))

    moved = tokens.storage_key(tokens.new_token())
    renamed = renamer.rename_sync(record.key, moved, Patch(fields={"last_seen_at": NOW + 1}))

    assert revoked == [1]  # the revocation found the session and ended it
    assert renamed is False  # and the rename did not bring it back
    assert revoker.get_sync(moved) is None and revoker.get_sync(record.key) is None
    assert revoker.get_by_handle_sync(record.handle) is None
    assert revoker.list_user_sync("alice", NOW) == []
    revoker.close_sync()
    renamer.close_sync()


async def test_scripts_reload_after_the_server_forgets_them(server: RedisServer) -> None:
    store = RedisStore.from_url(server.url)
    record = SessionRecord(
        key=tokens.storage_key(tokens.new_token()),
        handle=tokens.new_handle(),
        data={},
        created_at=NOW,
        last_seen_at=NOW,
        expires_at=NOW + 60,
        absolute_at=NOW + 600,
    )
    await store.create(record)
    server.client().script_flush()
    assert await store.apply(record.key, Patch(set_json={"a": "1"}, set_items={"a": 1}))
    server.client().script_flush()
    assert store.apply_sync(record.key, Patch(set_json={"b": "2"}, set_items={"b": 2}))
    loaded = await store.get(record.key)
    assert loaded is not None and loaded.data == {"a": 1, "b": 2}
    await store.close()
    store.close_sync()


# -- failures ------------------------------------------------------------------------------
def test_store_unavailable_and_503_while_redis_is_down_then_recovery(
    server: RedisServer, clock: FakeClock
) -> None:
    store = RedisStore.from_url(f"{server.url}?timeout=0.5&connect_timeout=0.5")
    manager = SessionManager(store, SessionConfig(), clock=clock)
    with serve(create_shop(manager)) as url, Browser(url) as browser:
        assert browser.post("/cart/add", params={"item": "hat"}).status_code == 200
        server.kill(signal.SIGKILL)

        started = time.monotonic()
        response = browser.get("/read")
        assert response.status_code == 503
        assert response.headers["retry-after"]
        response = browser.post("/cart/add", params={"item": "scarf"})
        assert response.status_code == 503
        assert "set-cookie" not in response.headers
        assert time.monotonic() - started < 3
        with pytest.raises(StoreUnavailable):
            store.get_sync("0" * 64)
        with pytest.raises(StoreUnavailable):
            asyncio.run(store.get("0" * 64))
        with pytest.raises(StoreUnavailable):
            store.list_user_sync("alice", NOW)

        server.start()  # same port; no persistence, so the old session is gone
        response = browser.post("/cart/add", params={"item": "scarf"})
        assert response.status_code == 200
        assert response.json()["data"] == {"cart": ["scarf"]}
        assert browser.get("/read").json()["data"] == {"cart": ["scarf"]}
    store.close_sync()


def test_a_frozen_server_costs_a_bounded_wait_not_a_hang(
    server: RedisServer, clock: FakeClock
) -> None:
    store = RedisStore.from_url(f"{server.url}?timeout=0.5&connect_timeout=0.5")
    manager = SessionManager(store, SessionConfig(), clock=clock)
    with serve(create_shop(manager)) as url, Browser(url) as browser:
        assert browser.post("/cart/add", params={"item": "hat"}).status_code == 200
        assert server.process is not None
        server.kill(signal.SIGSTOP)
        try:
            started = time.monotonic()
            assert browser.get("/read").status_code == 503
            assert time.monotonic() - started < 2.5
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                store.get_sync("0" * 64)
            assert time.monotonic() - started < 2.5
            # A full pool is a bounded wait too: the second caller gives up on the slot.
            tight = RedisStore.from_url(f"{server.url}?timeout=0.3&max_connections=1")
            started = time.monotonic()
            results = asyncio.run(_concurrent_gets(tight, 2))
            assert all(isinstance(r, StoreUnavailable) for r in results), results
            assert any("no free connection" in str(r) for r in results)
            assert time.monotonic() - started < 1.5
            started = time.monotonic()  # the same on the sync path, from threads
            start = threading.Barrier(3)  # all three ask for the one slot at once
            with ThreadPoolExecutor(3) as pool:
                outcomes = list(pool.map(lambda _: _sync_get(tight, start), range(3)))
            assert all(isinstance(r, StoreUnavailable) for r in outcomes), outcomes
            assert any("no free connection" in str(r) for r in outcomes), outcomes
            assert time.monotonic() - started < 1.5
        finally:
            server.kill(signal.SIGCONT)
        response = browser.get("/read")
        assert response.status_code == 200
        assert response.json()["data"] == {"cart": ["hat"]}
    store.close_sync()


def _sync_get(store: RedisStore, start: threading.Barrier) -> object:
    start.wait()
    try:
        return store.get_sync("0" * 64)
    except StoreUnavailable as exc:
        return exc


async def _concurrent_gets(store: RedisStore, count: int) -> list[object]:
    try:
        return await asyncio.gather(
            *(store.get("0" * 64) for _ in range(count)), return_exceptions=True
        )
    finally:
        await store.close()


def test_wrong_credentials_are_unavailable_not_a_crash(tmp_path: Path) -> None:
    with RedisServer(
        tmp_path / "acl",
        *("--user", "default", "off"),
        *("--user", "app", "on", ">s3cret", "~*", "&*", "+@all", "-@dangerous"),
        client_kwargs={"username": "app", "password": "s3cret"},
    ).start() as private:
        good = RedisStore.from_url(f"redis://app:s3cret@127.0.0.1:{private.port}/0")
        record = SessionRecord(
            key=tokens.storage_key(tokens.new_token()),
            handle=tokens.new_handle(),
            data={"a": 1},
            created_at=NOW,
            last_seen_at=NOW,
            expires_at=NOW + 60,
            absolute_at=NOW + 600,
            user_id="alice",
        )
        # Everything the store does works for a user without the @dangerous commands.
        good.create_sync(record)
        new_key = tokens.storage_key(tokens.new_token())
        assert good.rename_sync(record.key, new_key, Patch(fields={"last_seen_at": NOW + 1}))
        assert [r.key for r in good.list_user_sync("alice", NOW)] == [new_key]
        assert good.count_sync(NOW) == 1
        assert good.purge_expired_sync(NOW + 61, 10) == 1
        assert good.delete_user_sync("alice") == 0
        bad = RedisStore.from_url(f"redis://app:wrong@127.0.0.1:{private.port}/0?timeout=1")
        with pytest.raises(StoreUnavailable):
            bad.get_sync(new_key)
        good.close_sync()
        bad.close_sync()


def test_tls_with_rediss(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=certs, check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj")
    ec += ("/CN=coatcheck test",)
    openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=coatcheck test CA",
    )
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr")
    (certs / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "san.ext",
    )  # fmt: skip
    port = free_port()
    ca = str(certs / "ca.crt")
    with RedisServer(
        tmp_path / "tls",
        "--port", "0", "--tls-port", str(port),
        "--tls-cert-file", str(certs / "server.crt"),
        "--tls-key-file", str(certs / "server.key"),
        "--tls-ca-cert-file", ca,
        "--tls-auth-clients", "no",
        port=port,
        client_kwargs={"ssl": True, "ssl_ca_certs": ca},
    ).start():  # fmt: skip
        store = RedisStore.from_url(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}")
        record = SessionRecord(
            key=tokens.storage_key(tokens.new_token()),
            handle=tokens.new_handle(),
            data={"over": "tls"},
            created_at=NOW,
            last_seen_at=NOW,
            expires_at=NOW + 60,
            absolute_at=NOW + 600,
        )
        store.create_sync(record)
        loaded = asyncio.run(_get_and_close(store, record.key))
        assert loaded is not None and loaded.data == {"over": "tls"}
        # Without the CA the server's certificate is refused: unavailable, not insecure.
        untrusted = RedisStore.from_url(f"rediss://127.0.0.1:{port}/0?timeout=1")
        with pytest.raises(StoreUnavailable):
            untrusted.get_sync(record.key)
        store.close_sync()
        untrusted.close_sync()


async def _get_and_close(store: RedisStore, key: str) -> SessionRecord | None:
    try:
        return await store.get(key)
    finally:
        await store.close()


# -- concurrency through the middleware ------------------------------------------------------
@pytest.fixture(params=["redis", "redis-cluster"])
def any_topology(request: pytest.FixtureRequest) -> Iterator[str]:
    name = request.param
    base = shared_redis_url() if name == "redis" else SHARED.cluster()
    prefix = unique_prefix()
    yield f"{base}?prefix={prefix}"
    delete_prefix(base, prefix)


async def test_fifty_concurrent_requests_setting_different_keys_all_survive(
    any_topology: str, clock: FakeClock
) -> None:
    store = RedisStore.from_url(any_topology)
    manager = SessionManager(store, SessionConfig(), clock=clock)
    with serve(create_shop(manager, barrier_size=50)) as url:
        with Browser(url) as browser:
            assert browser.post("/set", json={"start": True}).status_code == 200
            headers = {"cookie": f"{COOKIE}={browser.cookies[COOKIE]}"}
            if browser.csrf_path is not None:  # a token, as the page would hold it
                headers["X-CSRF-Token"] = browser.csrf_token()
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            # Every request loads the session before any of them writes (a barrier).
            requests = [
                client.post("/together", params={"key": f"k{i}"}, headers=headers)
                for i in range(50)
            ]
            responses = await asyncio.gather(*requests)
            assert [r.status_code for r in responses] == [200] * 50
            data = (await client.get("/read", headers=headers)).json()["data"]
    assert data == {"start": True, **{f"k{i}": f"k{i}" for i in range(50)}}
    store.close_sync()


# -- URLs ----------------------------------------------------------------------------------
def test_url_forms() -> None:
    plain = RedisOptions.from_url(
        "redis://app:p%40ss@cache.internal:6380/3?timeout=2&connect_timeout=1"
        "&max_connections=20&prefix=shop:"
    )
    assert (plain.mode, plain.hosts, plain.db, plain.tls) == (
        "standalone",
        (("cache.internal", 6380),),
        3,
        False,
    )
    assert (plain.username, plain.password, plain.prefix) == ("app", "p@ss", "shop:")
    assert (plain.timeout, plain.connect_timeout, plain.max_connections) == (2.0, 1.0, 20)
    assert "p@ss" not in repr(plain)

    tls = RedisOptions.from_url("rediss://:secret@redis.example.com?ssl_ca_certs=/ca.pem")
    assert tls.tls and tls.password == "secret" and tls.username is None
    assert tls.hosts == (("redis.example.com", 6379),) and tls.ssl == {"ssl_ca_certs": "/ca.pem"}

    sentinel = RedisOptions.from_url(
        "redis+sentinel://h1:26379,h2,[::1]:26380/mymaster?db=2&sentinel_password=s"
    )
    assert sentinel.mode == "sentinel" and sentinel.service_name == "mymaster"
    assert sentinel.hosts == (("h1", 26379), ("h2", 26379), ("::1", 26380))
    assert (sentinel.db, sentinel.sentinel_password) == (2, "s")

    cluster = RedisOptions.from_url("redis+cluster://n1:7000,n2:7001?ssl=true")
    assert cluster.mode == "cluster" and cluster.tls
    assert cluster.hosts == (("n1", 7000), ("n2", 7001))

    assert coatcheck.stores.RedisStore is RedisStore  # exported lazily
    for scheme in ("redis", "rediss", "redis+sentinel", "redis+cluster"):
        store = from_url(f"{scheme}://127.0.0.1:1/{'m' if 'sentinel' in scheme else ''}")
        assert isinstance(store, RedisStore)  # built without connecting


BAD_URLS = [
    ("redis://h?colour=red", "unknown Redis URL option 'colour'"),
    ("redis://h?timeout=soon", "option timeout='soon' is not a number"),
    ("redis://h?max_connections=2.5", "option max_connections='2.5' is not a whole number"),
    ("redis://h?db=one", "option db='one' is not a whole number"),
    ("rediss://h?ssl_check_hostname=maybe", "option ssl_check_hostname='maybe' is not a yes or no"),
    ("redis+cluster://h:7000?ssl=perhaps", "option ssl='perhaps' is not a yes or no"),
    ("redis://h:63a79", "port '63a79' of h is not a number"),
    ("redis://h:70000", "port 70000 of h is not between 1 and 65535"),
    ("redis://h1,:6380", "empty host in ':6380'"),
    ("redis:///0", "a Redis URL needs at least one host"),
    ("redis://[::1:6379", "host '[::1:6379' opens [ without closing it"),
    ("redis://[::1]6379", "unexpected '6379' after [::1]"),
    ("redis://h/x/y", "unexpected path '/x/y' (expected /<database number>)"),
    ("redis://h/zero", "unexpected path '/zero'"),
    ("redis+sentinel://h1:26379", "a redis+sentinel URL names the master"),
    ("redis+cluster://h:7000/2", "Redis Cluster has only database 0"),
    ("redis://h?prefix=a{b}", "the key prefix must not contain { or }"),
    ("redis://h?timeout=0", "timeouts must be positive"),
    ("redis://h?connect_timeout=inf", "timeouts must be positive"),
    ("redis://h?timeout=nan", "timeouts must be positive"),
    ("redis://h?max_connections=0", "max_connections must be at least 1"),
    ("redis://h?db=-1", "database -1 is negative"),
    ("redis://h?sentinel_username=s", "option sentinel_username applies to redis+sentinel://"),
    ("redis://h?ssl_ca_certs=/ca.pem", "ssl_ca_certs without TLS: use rediss://"),
    ("redis+cluster://h:7000?ssl_certfile=c.pem", "ssl_certfile without TLS"),
]


@pytest.mark.parametrize(("url", "problem"), BAD_URLS)
def test_a_bad_url_is_a_store_url_error_naming_the_problem(url: str, problem: str) -> None:
    """Through the scheme registry, the package's from_url and RedisOptions alike: a
    StoreURLError (a configuration error at start-up, never a plain ValueError or a 503
    later) whose message shows the URL and says what is wrong with it."""
    import coatcheck.stores.redis as package

    for parse in (from_url, package.from_url, RedisOptions.from_url):
        with pytest.raises(StoreURLError) as caught:
            parse(url)
        assert type(caught.value) is StoreURLError
        assert str(caught.value).startswith(f"Redis store URL {url!r}: ")
        assert problem in str(caught.value)


def test_a_url_that_is_not_a_redis_url_is_refused_without_echoing_it() -> None:
    import coatcheck.stores.redis as package

    with pytest.raises(StoreURLError) as caught:
        package.from_url("http://cache:6379")
    assert str(caught.value) == (
        "Redis store URL 'http://cache:6379': scheme 'http' is not redis, rediss, "
        "redis+sentinel or redis+cluster"
    )
    # Without a scheme the text may be credentials alone: the message does not repeat it.
    with pytest.raises(StoreURLError) as caught:
        RedisOptions.from_url("app:hunter2@cache:6379")
    assert str(caught.value) == (
        "not a Redis store URL: expected redis://, rediss://, redis+sentinel:// or redis+cluster://"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://app:hunter2@h?colour=red", "redis://app:***@h?colour=red"),
        ("rediss://:hunter2@h:6380/0?db=x", "rediss://:***@h:6380/0?db=x"),
        # A raw "/" or "@" in the password (it should be %-escaped) is still masked.
        ("redis://app:hun/ter@2@h:bad", "redis://app:***@h:bad"),
        (
            "redis+sentinel://u:hunter2@h/m?sentinel_password=hunter2&colour=red",
            "redis+sentinel://u:***@h/m?sentinel_password=***&colour=red",
        ),
    ],
)
def test_a_bad_url_error_masks_every_password(url: str, shown: str) -> None:
    with pytest.raises(StoreURLError) as caught:
        from_url(url)
    assert str(caught.value).startswith(f"Redis store URL {shown!r}: ")
    assert "hunter2" not in str(caught.value) and "ter@2" not in str(caught.value)


def test_options_built_in_code_check_the_same_rules() -> None:
    with pytest.raises(ConfigError, match="at least one host"):
        RedisOptions(mode="standalone", hosts=())
    with pytest.raises(ConfigError, match="names the master"):
        RedisOptions(mode="sentinel", hosts=(("h", 26379),))
    # A username without a password, and a password with a "/", are not errors.
    assert RedisOptions.from_url("redis://app@h").username == "app"
    assert RedisOptions.from_url("redis://:a%2Fb@h").password == "a/b"


# -- coatcheck stats ------------------------------------------------------------------------
def test_coatcheck_stats_counts_live_sessions_per_user(server: RedisServer) -> None:
    store = RedisStore.from_url(server.url)
    check_stats(store, server.url)
    store.close_sync()


@pytest.mark.parametrize("mode", ["async", "sync"])
async def test_purge_reads_first_and_survives_an_empty_script_cache(
    tmp_path: Path, round_trips: RoundTrips, mode: str
) -> None:
    """A purge page reads the records' deadlines and runs its script only on those past
    them, by EVALSHA; after a restart (an empty script cache) the NOSCRIPT answers are
    sent again by EVAL and the purge still deletes exactly the expired records."""
    with RedisServer(tmp_path / "purge").start() as private:
        store = RedisStore.from_url(f"redis://127.0.0.1:{private.port}/0")
        paths = Paths(SessionManager(store), mode)
        records = [
            new_record({"i": i}, user_id=f"user{i % 4}", expires_in=60 if i % 3 == 0 else 6000)
            for i in range(30)
        ]
        for record in records:
            store.create_sync(record)
        expired = [r for r in records if r.expires_at == NOW + 60]  # a third of them
        await paths.get("0" * 64)  # open the connection (its handshake is not counted)
        client = private.client()
        client.script_flush()
        round_trips.take()
        # The clock of the purge is ahead of the records' TTLs (which Redis has not
        # reached), so the script deletes them here.
        assert await paths.store_purge(NOW + 61, 1000) == len(expired)
        # SCAN, the reads, the scripts, their retry by EVAL, the pointer/index cleanup.
        assert round_trips.take() == 5
        assert await paths.store_purge(NOW + 61, 1000) == 0
        assert round_trips.take() == 2  # SCAN and the reads: nothing is due, no script
        for record in records:
            kept = store.get_sync(record.key)
            assert (kept is None) == (record in expired)
            pointer = client.get(store.pointer_key(record.handle))
            assert (pointer is None) == (record in expired)
        for user in {r.user_id for r in records}:
            assert user is not None
            left = {h for h in client.zrange(store.user_key(user), 0, -1)}
            assert left == {r.handle for r in records if r.user_id == user} - {
                r.handle for r in expired
            }
        store.close_sync()
        await store.close()


def _two_records(store: RedisStore) -> tuple[SessionRecord, SessionRecord]:
    records = tuple(new_record({"owner": owner}, user_id=owner) for owner in ("alice", "bob"))
    for record in records:
        store.create_sync(record)
    return records[0], records[1]


async def test_a_cancelled_load_never_hands_its_late_reply_to_the_next(
    server: RedisServer,
) -> None:
    """A request cancelled while its load waits (the client went away) leaves a reply on
    its way. The kept connection must not serve it to the next request, which would get
    another user's session: with one connection, the next load still reads its own."""
    store = RedisStore.from_url(f"{server.url}?max_connections=1&timeout=5")
    alice, bob = _two_records(store)
    assert (await store.get(alice.key)) == alice  # the kept connection is open
    assert server.process is not None
    server.kill(signal.SIGSTOP)
    try:
        waiting = asyncio.create_task(store.get(alice.key))
        await asyncio.sleep(0.2)  # the command is sent; its reply is not
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    finally:
        server.kill(signal.SIGCONT)
    await asyncio.sleep(0.1)  # alice's reply arrives (on a connection now closed)
    assert (await store.get(bob.key)) == bob
    assert (await store.get(alice.key)) == alice
    await store.close()
    store.close_sync()


def test_a_timed_out_load_never_hands_its_late_reply_to_the_next(server: RedisServer) -> None:
    """The same on the sync path, where the caller gives up by its timeout."""
    store = RedisStore.from_url(f"{server.url}?max_connections=1&timeout=0.3")
    alice, bob = _two_records(store)
    assert store.get_sync(alice.key) == alice
    assert server.process is not None
    server.kill(signal.SIGSTOP)
    try:
        with pytest.raises(StoreUnavailable):
            store.get_sync(alice.key)
    finally:
        server.kill(signal.SIGCONT)
    time.sleep(0.1)
    assert store.get_sync(bob.key) == bob
    assert store.get_sync(alice.key) == alice
    store.close_sync()


def test_every_script_compiles_and_carries_the_helpers_it_calls(shared_url: str) -> None:
    """Scripts include only the Lua helpers they name; one calling a helper it left out
    would fail only when that branch runs (a rare re-index, say)."""
    with raw(shared_url) as client:
        for script in (APPLY, APPLY_IF_HANDLE, TAKE, RENAME, DELETE, DROP_IF, DROP_EXPIRED, UNLINK):
            for name in LUA_HELPERS:
                if re.search(rf"(?<!function )\b{name}\(", script.text):
                    assert f"local function {name}(" in script.text, (name, script.text)
            assert client.script_load(script.text) == script.sha


def test_a_forked_worker_never_talks_on_its_parents_connections(shared_url: str) -> None:
    """A pre-forking server (gunicorn --preload) forks after the app has used the store:
    parent and child each read their own replies, so each gets its own session."""
    store = RedisStore.from_url(f"{shared_url}&max_connections=1")  # always the same one
    alice, bob = _two_records(store)
    assert_each_process_reads_its_own(store, alice, bob)
    store.close_sync()


@pytest.mark.parametrize(
    ("field", "value"),
    [("d:cart", "{not json"), ("m", "[1, 2]"), ("m", '{"h": "x", "c": "soon"}'), ("e", "later")],
)
async def test_a_record_damaged_in_redis_is_a_fresh_session_not_an_error(
    shared_url: str, field: str, value: str
) -> None:
    """Bad data in the store (an operator's edit, another program's key under the prefix)
    gives a fresh session, as an unknown token does: never a traceback."""
    store = RedisStore.from_url(shared_url)
    manager = SessionManager(store)
    session = await manager.load(None)
    session["cart"] = ["hat"]
    token = (await manager.commit(session)).token
    assert token is not None
    with raw(shared_url) as client:
        client.hset(store.record_key(tokens.storage_key(token)), field, value)
    assert await store.get(tokens.storage_key(token)) is None
    again = await manager.load(token)
    assert again.is_new and dict(again) == {}
    await store.close()
    store.close_sync()


@pytest.mark.parametrize("mode", ["async", "sync"])
async def test_a_purge_with_the_apps_clock_ahead_touches_only_what_is_due(
    tmp_path: Path, mode: str
) -> None:
    """Issue 18: the app's clock runs ahead of the server's (here by weeks: NOW is in the
    server's future), so records past their deadline on the app's clock are still in
    Redis. The purge deletes exactly those, with their handle pointers and index entries,
    and the deletions cost no more than they must: each due record is in exactly one
    script and no other record in any, all of a page's due records go in one script (not
    one each), their pointers (one DEL) and index entries go with the next page's reads
    (or in one last pipeline), and the purge rests once per page, exactly as often as a purge that
    finds nothing due.
    Counted as the operations the purge sends, never as seconds."""
    with RedisServer(tmp_path / "skew").start() as private:
        store = RedisStore.from_url(f"redis://127.0.0.1:{private.port}/0")
        records = [
            new_record({"i": i}, user_id=f"user{i % 4}", expires_in=60 if i % 3 else 6000)
            for i in range(300)
        ]
        for record in records:
            store.create_sync(record)
        due = {store.record_key(r.key) for r in records if r.expires_at == NOW + 60}
        assert len(due) == 200
        ops: list[Any] = []

        def recorded(execute: Any) -> Any:
            if mode == "sync":

                def run_sync(op: Any) -> Any:
                    result = execute(op)
                    ops.append((op, result))
                    return result

                return run_sync

            async def run_async(op: Any) -> Any:
                result = await execute(op)
                ops.append((op, result))
                return result

            return run_async

        async def purge(now: float) -> int:
            ops.clear()
            if mode == "sync":
                return drive_sync(store._purge(now, 1000), recorded(store._sync.run))
            return await drive_async(store._purge(now, 1000), recorded(store._async.run))

        def pages() -> list[list[tuple[Any, Any]]]:
            """The recorded operations, split at each SCAN page."""
            out: list[list[tuple[Any, Any]]] = []
            for op, result in ops:
                if isinstance(op, ScanPage):
                    out.append([])
                out[-1].append((op, result))
            return out

        # In sync: nothing due, one rest per page, no script.
        assert await purge(NOW - 10_000) == 0
        unskewed = pages()
        assert all(sum(isinstance(op, Pause) for op, _ in page) == 1 for page in unskewed)
        assert not any(
            isinstance(s, Eval) for op, _ in ops if isinstance(op, Batch) for s in op.steps
        )

        assert await purge(NOW + 61) == len(due)
        scripted: list[str] = []
        cleanup: list[tuple[Any, ...]] = []
        expected_cleanup: list[tuple[Any, ...]] = []
        by_key = {store.record_key(r.key): r for r in records}
        all_pages = pages()
        assert len(all_pages) > 1  # the cleanup of a page goes with the next one's reads
        for number, page in enumerate(all_pages):
            _, (_, keys) = page[0]
            page_due = [k for k in keys if k in due]
            # Every operation that goes to the server (a command, a script, a pipeline).
            wire = [op for op, _ in page[1:] if isinstance(op, Batch | Cmd | Eval)]
            assert sum(isinstance(op, Pause) for op, _ in page) == 1
            if number == len(all_pages) - 1 and wire:
                # What is left of the cleanup goes in one last pipeline (no reads in it).
                final = wire[-1]
                if isinstance(final, Batch) and all(
                    s.args[0] != "PEXPIRETIME" for s in final.steps
                ):
                    wire = wire[:-1]
                    cleanup += [s.args for s in final.steps]
            if not keys:
                assert wire == []
                continue
            reads, rest = wire[0], wire[1:]
            assert isinstance(reads, Batch)
            args = [s.args for s in reads.steps]
            # The previous page's cleanup, then this page's reads, in one round trip.
            assert args[len(args) - len(keys) :] == [("PEXPIRETIME", k) for k in keys]
            cleanup += args[: len(args) - len(keys)]
            if not page_due:
                assert rest == []
                continue
            assert len(rest) == 1
            (script,) = rest
            assert isinstance(script, Eval), "one script for all of a page's due records"
            assert sorted(script.keys) == sorted(page_due)
            scripted += script.keys
            for key in script.keys:
                record = by_key[key]
                expected_cleanup.append(("DEL", store.pointer_key(record.handle)))
                expected_cleanup.append(("ZREM", store.user_key(record.user_id), record.handle))
        assert sorted(scripted) == sorted(due)
        # One DEL for every pointer a page leaves; one ZREM per index entry.
        assert all(args[0] in ("DEL", "ZREM") for args in cleanup)
        flat = [("DEL", key) for args in cleanup if args[0] == "DEL" for key in args[1:]]
        flat += [args for args in cleanup if args[0] == "ZREM"]
        assert sorted(flat) == sorted(expected_cleanup)
        deletes = sum(args[0] == "DEL" for args in cleanup)
        assert deletes == sum(1 for page in all_pages if any(k in due for k in page[0][1][1]))

        client = private.client()
        try:
            for record in records:
                gone = store.record_key(record.key) in due
                assert (store.get_sync(record.key) is None) == gone
                assert (client.get(store.pointer_key(record.handle)) is None) == gone
                if not gone:
                    assert store.get_sync(record.key) == record
            for user in {r.user_id for r in records}:
                assert user is not None
                left = set(client.zrange(store.user_key(user), 0, -1))
                kept = {r.handle for r in records if r.user_id == user}
                assert left == kept - {r.handle for r in records if store.record_key(r.key) in due}
        finally:
            client.close()
        assert await purge(NOW + 61) == 0
        store.close_sync()
        await store.close()


def test_data_keys_come_back_in_one_stable_order_once_the_hash_is_large() -> None:
    """A hash turned into a hashtable (a long value) loses its insertion order in Redis;
    the store then returns the keys sorted, the same order on every load (Django's own
    cycle_key test compares the items' order before and after)."""
    import redis as redis_client

    from coatcheck import SessionConfig, SessionManager
    from tests.support.redis_servers import delete_prefix, shared_redis_url, unique_prefix

    url, prefix = shared_redis_url(), unique_prefix()
    store = RedisStore.from_url(f"{url}?prefix={prefix}")
    try:
        manager = SessionManager(store, SessionConfig())
        session = manager.load_sync(None)
        session["b"] = 1
        session["a"] = "x" * 100  # past hash-max-listpack-value: a hashtable
        session["c"] = 3
        token = manager.commit_sync(session).token
        raw = redis_client.Redis.from_url(url)
        (key,) = [k for k in raw.scan_iter(match=f"{prefix}s:*")]
        assert raw.object("encoding", key) == b"hashtable"
        raw.close()
        assert [list(manager.load_sync(token)) for _ in range(3)] == [["a", "b", "c"]] * 3
    finally:
        store.close_sync()
        delete_prefix(url, prefix)


@pytest.mark.parametrize(
    "args",
    [
        ("HGETALL", "p:s:" + "a" * 64),
        ("EVALSHA", "5dec" * 10, 1, "p:s:k", "1796701918244", 0, 3, "d:n", "2", "l", 1.5),
        ("HSET", "p:s:k", "d:café", '"\u00e9\u4e2d\U0001f600"', "d:b", b"\x00\xff", -7, 2**70),
        ("SET", "k", 0.1 + 0.2),  # a float with a long repr
    ],
)
def test_the_kept_connections_put_the_same_bytes_on_the_wire_as_redis_py(
    args: tuple[Any, ...],
) -> None:
    """The request's own commands are packed by hiredis directly, skipping redis-py's
    per-argument encoder: the bytes must be redis-py's own, for every argument type the
    store sends."""
    from coatcheck.stores.redis.clients import packed

    for connection in (redis.connection.Connection(), redis.asyncio.connection.Connection()):
        assert b"".join(packed(connection, args)) == b"".join(connection.pack_command(*args))


def test_an_argument_hiredis_refuses_gets_redis_pys_error_not_a_half_sent_command() -> None:
    from coatcheck.stores.redis.clients import packed

    with pytest.raises(redis.exceptions.DataError, match="bool"):
        packed(redis.connection.Connection(), ("SET", "k", True))
    # A command name of two words is split by redis-py's packer, as it always was.
    two = packed(redis.connection.Connection(), ("CLIENT SETNAME", "x"))
    assert b"".join(two) == b"*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$1\r\nx\r\n"
