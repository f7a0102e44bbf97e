"""Minimisation by default, on every server store and the memory store: what the raw
stored record holds of a client is its truncated IP (IPv4 /24, IPv6 /48) and its reduced
user agent, never the full address or string; the client-change check keeps working on
those forms (and on the keyed hash of the full string when a key is set)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from pymemcache.client.base import Client as MemcacheClient

from coatcheck import SessionConfig, SessionManager
from coatcheck.core import events as ev
from coatcheck.core.client import ClientInfo, coarse_user_agent
from coatcheck.core.events import MemorySink
from coatcheck.core.tokens import storage_key
from coatcheck.privacy import minimise
from coatcheck.stores import MemoryStore, SQLiteStore, from_url
from coatcheck.stores.base import Store
from coatcheck.stores.memcached import from_url as memcached_from_url
from coatcheck.stores.redis import RedisStore
from tests.support.memcached_server import fresh_prefix, shared_memcached
from tests.support.postgres_server import admin_connect, scratch_table, store_url
from tests.support.redis_servers import delete_prefix, shared_redis_url, unique_prefix
from tests.support.user_agents import CHROME_WINDOWS, COARSE, FIREFOX_LINUX, KEPT

RawReader = Callable[[str], bytes]
"""Everything the store's backend holds for one storage key, as bytes."""


@contextlib.contextmanager
def sqlite_raw(tmp_path: Path) -> Iterator[tuple[Store, RawReader]]:
    store = SQLiteStore(tmp_path / "s.db")

    def raw(key: str) -> bytes:
        files = [tmp_path / "s.db", tmp_path / "s.db-wal"]
        return b"".join(f.read_bytes() for f in files if f.exists())  # every page

    yield store, raw
    store.close_sync()


@contextlib.contextmanager
def postgres_raw(tmp_path: Path) -> Iterator[tuple[Store, RawReader]]:
    with scratch_table() as table:
        store = from_url(store_url(table))

        def raw(key: str) -> bytes:
            with admin_connect() as conn:
                row = conn.execute(f"SELECT t::text FROM {table} t WHERE key = %s", (key,))
                return str(row.fetchone()).encode()

        try:
            yield store, raw
        finally:
            store.close_sync()


@contextlib.contextmanager
def redis_raw(tmp_path: Path) -> Iterator[tuple[Store, RawReader]]:
    url, prefix = shared_redis_url(), unique_prefix()
    store = RedisStore.from_url(f"{url}?prefix={prefix}")
    client = redis.Redis.from_url(url)

    def raw(key: str) -> bytes:
        name = f"{prefix}s:{key}"
        if client.type(name) == b"hash":
            return b"|".join(k + b"=" + v for k, v in client.hgetall(name).items())
        return bytes(client.get(name) or b"")

    try:
        yield store, raw
    finally:
        store.close_sync()
        delete_prefix(url, prefix)
        client.close()


@contextlib.contextmanager
def memcached_raw(tmp_path: Path) -> Iterator[tuple[Store, RawReader]]:
    server, prefix = shared_memcached(), fresh_prefix()
    store = memcached_from_url(f"{server.url}?prefix={prefix}&timeout=2&connect_timeout=2")
    host, port = server.url.removeprefix("memcached://").rsplit(":", 1)
    client = MemcacheClient((host, int(port)))

    def raw(key: str) -> bytes:
        return bytes(client.get(f"{prefix}s:{key}") or b"")

    try:
        yield store, raw
    finally:
        store.close_sync()
        client.close()


@contextlib.contextmanager
def memory_raw(tmp_path: Path) -> Iterator[tuple[Store, RawReader]]:
    store = MemoryStore()
    yield store, lambda key: repr(store.get_sync(key)).encode()


RAW = {
    "memory": memory_raw,
    "sqlite": sqlite_raw,
    "postgres": postgres_raw,
    "redis": redis_raw,
    "memcached": memcached_raw,
}


@pytest.fixture(params=sorted(RAW))
def raw_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, RawReader]]:
    with RAW[request.param](tmp_path) as pair:
        yield pair


def test_the_raw_record_holds_only_the_minimised_client(
    raw_store: tuple[Store, RawReader],
) -> None:
    store, raw = raw_store
    manager = minimise.install(SessionManager(store))
    for address, kept in (
        ("203.0.113.77", "203.0.113.0"),
        ("2001:db8:abcd:12:3::9", "2001:db8:abcd::"),
    ):
        session = manager.load_sync(None, ClientInfo(FIREFOX_LINUX, address))
        session["cart"] = ["coat"]
        session.login("alice")
        token = manager.commit_sync(session).token
        assert token is not None
        stored = raw(storage_key(token))
        assert kept.encode() in stored and address.encode() not in stored
        assert KEPT[FIREFOX_LINUX].encode() in stored  # "Firefox 121 / Linux / desktop"
        assert b"Gecko/20100101" not in stored and b"(X11; Linux" not in stored


def test_ip_truncation_is_configurable(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    wider = SessionManager(store, SessionConfig(ip_truncation="16/32"))
    session = wider.load_sync(None, ClientInfo(FIREFOX_LINUX, "203.0.113.77"))
    session.login("a")
    wider.commit_sync(session)
    whole = SessionManager(store, SessionConfig(ip_truncation="none"))
    other = whole.load_sync(None, ClientInfo(FIREFOX_LINUX, "2001:db8:abcd:12:3::9"))
    other.login("b")
    whole.commit_sync(other)
    with contextlib.closing(sqlite3.connect(tmp_path / "s.db")) as conn:
        ips = dict(conn.execute("SELECT user_id, ip FROM coatcheck_sessions").fetchall())
    assert ips == {"a": "203.0.0.0", "b": "2001:db8:abcd:12:3::9"}
    store.close_sync()


def test_without_ua_parser_a_coarse_family_is_kept() -> None:
    assert {ua: coarse_user_agent(ua) for ua in COARSE} == COARSE


def change_events(
    manager: SessionManager, sink: MemorySink, token: str, client: ClientInfo
) -> list[str]:
    before = len(sink.events)
    manager.load_sync(token, client)
    return [e.detail["changed"] for e in sink.events[before:] if e.name == ev.CLIENT_CHANGED]


@pytest.mark.parametrize("key", [None, "a user agent key of at least sixteen characters"])
def test_client_change_works_on_the_reduced_forms(tmp_path: Path, key: str | None) -> None:
    if key is not None:
        read = SessionConfig.from_env({"COATCHECK_USER_AGENT_KEY": key})
        assert read.user_agent_key == key
    sink = MemorySink()
    store = SQLiteStore(tmp_path / "s.db")
    manager = minimise.install(
        SessionManager(store, SessionConfig(user_agent_key=key), events=[sink])
    )
    session = manager.load_sync(None, ClientInfo(FIREFOX_LINUX, "203.0.113.77"))
    session.login("alice")
    token = manager.commit_sync(session).token
    assert token is not None
    # Another host in the same /24, the same browser: the same client.
    assert change_events(manager, sink, token, ClientInfo(FIREFOX_LINUX, "203.0.113.5")) == []
    assert change_events(manager, sink, token, ClientInfo(CHROME_WINDOWS, "198.51.100.1")) == [
        "user_agent,ip_network"
    ]
    # The same reduced form (Firefox 121 on Linux) from a string that differs elsewhere:
    # only the keyed hash of the full string tells it apart.
    twin = FIREFOX_LINUX.replace("x86_64", "aarch64")
    expected = ["user_agent"] if key is not None else []
    assert change_events(manager, sink, token, ClientInfo(twin, "203.0.113.77")) == expected
    meta = store.get_sync(storage_key(token)).meta  # type: ignore[union-attr]
    assert ("uah" in meta) is (key is not None)
    if key is not None:
        assert len(meta["uah"]) == 32 and FIREFOX_LINUX not in str(meta)
    store.close_sync()


def test_the_readme_names_the_privacy_settings_with_their_defaults() -> None:
    config = SessionConfig()
    assert (config.ip_truncation, config.user_agent_key) == ("24/48", None)
    assert (config.consent_categories, config.consent_revision) == ((), 1)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for row in (
        '| `ip_truncation` | `"24/48"` |',
        "| `user_agent_key` | `None` |",
        "| `consent_categories` / `consent_revision` | `()` / `1` |",
    ):
        assert row in readme
