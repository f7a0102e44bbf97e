"""The per-session lock (``coatcheck.engine.locking``) over every store that declares
``Lockable``, on both paths: read-modify-write requests of one session serialize, a lock
held past ``lock_timeout`` is a ``SessionLocked`` (409), a crashed holder's lock ends
with its lease, and a store without the capability is refused when the app starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from coatcheck.core.config import SessionConfig
from coatcheck.engine.locking import SessionLocks, session_locks
from coatcheck.engine.manager import SessionManager
from coatcheck.errors import MissingCapability, SessionLocked
from coatcheck.stores import CookieStore, Lockable, MemoryStore, SQLiteStore, Store, capabilities
from tests.conformance.conftest import STORE_FACTORIES, store_class
from tests.support.clock import FakeClock
from tests.support.core_store import CoreOnlyStore

LOCKABLE = [n for n, f in STORE_FACTORIES.items() if Lockable in capabilities(store_class(f))]
KEY = "w2s4eRzFttw0lqDOYJHm4WBEvRKbVM0ULpCr_XLHryo"


def test_every_server_side_store_but_the_core_only_one_is_lockable() -> None:
    assert sorted(LOCKABLE) == [
        "encrypted-memcached",  # the encrypted wrapper passes the inner store's lock through
        "encrypted-postgres",
        "encrypted-redis",
        "encrypted-sqlite",
        "memcached",
        "memory",
        "postgres",
        "redis",
        "redis-cluster",
        "redis-sentinel",
        "sqlite",
    ]


@contextlib.contextmanager
def lockable_store(name: str, tmp_path: Path) -> Iterator[Store]:
    with STORE_FACTORIES[name](tmp_path) as store:
        yield store


def started(manager: SessionManager) -> str:
    """A stored session with an empty cart; its token."""
    session = manager.load_sync(None)
    session["cart"] = []
    token = manager.commit_sync(session).token
    assert token is not None
    return token


def cart_of(manager: SessionManager, token: str) -> list[int]:
    return list(manager.load_sync(token)["cart"])


@pytest.mark.parametrize("name", LOCKABLE)
async def test_fifty_concurrent_cart_additions_keep_all_fifty_async(
    name: str, tmp_path: Path
) -> None:
    """The plain read-modify-write of a cart, fifty at once on one session: each request
    yields to the others between its load and its commit, as a handler doing I/O would."""
    with lockable_store(name, tmp_path) as store:
        manager = SessionManager(store, SessionConfig(lock_sessions=True))
        locks = session_locks(manager)
        token = started(manager)

        async def add(item: int) -> None:
            held = await locks.acquire(token)
            try:
                session = await manager.load(token)
                await asyncio.sleep(0)
                session["cart"] = session.get("cart", []) + [item]  # noqa: RUF005 (as apps write it)
                await manager.commit(session)
            finally:
                await locks.release(held)

        await asyncio.gather(*(add(i) for i in range(50)))
        assert sorted(cart_of(manager, token)) == list(range(50))
        await store.close()


@pytest.mark.parametrize("name", LOCKABLE)
def test_fifty_concurrent_cart_additions_keep_all_fifty_sync(name: str, tmp_path: Path) -> None:
    """The same on the sync path: fifty threads, started together by a barrier."""
    with lockable_store(name, tmp_path) as store:
        manager = SessionManager(store, SessionConfig(lock_sessions=True))
        locks = session_locks(manager)
        token = started(manager)
        barrier = threading.Barrier(50)
        errors: list[BaseException] = []

        def add(item: int) -> None:
            try:
                barrier.wait()
                held = locks.acquire_sync(token)
                try:
                    session = manager.load_sync(token)
                    session["cart"] = session.get("cart", []) + [item]  # noqa: RUF005 (as apps write it)
                    manager.commit_sync(session)
                finally:
                    locks.release_sync(held)
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)

        threads = [threading.Thread(target=add, args=(i,)) for i in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sorted(cart_of(manager, token)) == list(range(50))


@pytest.mark.parametrize("name", LOCKABLE)
async def test_the_second_request_sees_the_first_ones_write(name: str, tmp_path: Path) -> None:
    """The second request asks for the lock while the first holds it; it loads only once
    the first committed and released, so it reads the first one's write."""
    with lockable_store(name, tmp_path) as store:
        manager = SessionManager(store, SessionConfig(lock_sessions=True))
        locks = session_locks(manager)
        token = started(manager)
        first = await locks.acquire(token)
        second = asyncio.ensure_future(locks.acquire(token))
        await asyncio.sleep(0.02)
        assert not second.done()  # waiting for the first
        session = await manager.load(token)
        session["cart"] = ["hat"]
        await manager.commit(session)
        await locks.release(first)
        held = await second
        assert (await manager.load(token))["cart"] == ["hat"]
        await locks.release(held)
        await store.close()


@pytest.mark.parametrize("name", LOCKABLE)
@pytest.mark.parametrize("mode", ["async", "sync"])
async def test_a_lock_held_past_lock_timeout_is_session_locked(
    name: str, mode: str, tmp_path: Path
) -> None:
    with lockable_store(name, tmp_path) as store:
        config = SessionConfig(lock_sessions=True, lock_timeout=0.05)
        manager = SessionManager(store, config)
        locks = session_locks(manager)
        token = started(manager)
        held = locks.acquire_sync(token)
        attempt = (
            locks.acquire(token)
            if mode == "async"
            else asyncio.to_thread(locks.acquire_sync, token)
        )
        with pytest.raises(SessionLocked) as refused:
            await attempt
        assert (refused.value.status, refused.value.retry_after) == (409, 1)
        locks.release_sync(held)
        assert locks.acquire_sync(token) is not None  # free again once released
        await store.close()


@pytest.mark.parametrize("kind", [MemoryStore, SQLiteStore])
def test_a_crashed_holders_lock_ends_with_its_lease(
    kind: type[Store], tmp_path: Path, clock: FakeClock
) -> None:
    """On the injected clock: the holder never releases; ``lock_lease`` later the lock is
    free. (Every store's own lease is the conformance suite's ``test_locking``.)"""
    store = MemoryStore() if kind is MemoryStore else SQLiteStore(tmp_path / "s.db")
    config = SessionConfig(lock_sessions=True, lock_timeout=0, lock_lease=30)
    manager = SessionManager(store, config, clock=clock)
    locks = session_locks(manager)
    token = started(manager)
    assert locks.acquire_sync(token) is not None  # and the holder crashes
    clock.advance(29.9)
    with pytest.raises(SessionLocked):
        locks.acquire_sync(token)
    clock.advance(0.1)
    assert locks.acquire_sync(token) is not None


def test_no_token_or_a_malformed_one_takes_no_lock() -> None:
    manager = SessionManager(MemoryStore(), SessionConfig(lock_sessions=True, lock_timeout=0))
    locks = session_locks(manager)
    assert locks.acquire_sync(None) is None
    assert locks.acquire_sync("not a token") is None
    locks.release_sync(None)  # nothing to release, nothing raised


def test_the_lock_is_filed_under_the_storage_key_never_the_token() -> None:
    store = MemoryStore()
    manager = SessionManager(store, SessionConfig(lock_sessions=True))
    token = started(manager)
    held = session_locks(manager).acquire_sync(token)
    assert held is not None
    record = manager.load_sync(token).record
    assert record is not None and held.key == record.key != token
    assert list(store._session_locks) == [record.key]


def test_a_store_without_locks_is_refused_when_the_app_starts() -> None:
    with pytest.raises(MissingCapability) as caught:
        SessionManager(CookieStore([KEY]), SessionConfig(lock_sessions=True))
    assert (caught.value.capability, caught.value.operation) == ("Lockable", "lock_sessions")
    assert "use a server-side store to run a session's requests one at a time" in str(caught.value)
    with pytest.raises(MissingCapability) as caught:
        SessionLocks(SessionManager(CoreOnlyStore()))  # a route marked locked, over it
    assert caught.value.capability == "Lockable"


@pytest.mark.parametrize(
    ("setting", "value"),
    [("lock_timeout", -1), ("lock_lease", 0), ("lock_sessions", "yes")],
)
def test_lock_settings_are_checked(setting: str, value: object) -> None:
    from coatcheck.errors import ConfigError

    with pytest.raises(ConfigError, match=setting):
        SessionConfig(**{setting: value})  # type: ignore[arg-type]


def test_lock_settings_from_the_environment() -> None:
    config = SessionConfig.from_env(
        {
            "COATCHECK_LOCK_SESSIONS": "true",
            "COATCHECK_LOCK_TIMEOUT": "2.5",
            "COATCHECK_LOCK_LEASE": "60",
        }
    )
    assert (config.lock_sessions, config.lock_timeout, config.lock_lease) == (True, 2.5, 60.0)


def test_a_sqlite_file_of_the_previous_schema_gains_the_locks_table(tmp_path: Path) -> None:
    """A database written before locks existed (schema 1, with a session in it) is brought
    up to date when the store opens it: the session is still there, and it locks."""
    import sqlite3

    from coatcheck.stores.sqlite import MIGRATIONS

    db = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.executescript(MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
    manager = SessionManager(SQLiteStore(db), SessionConfig(lock_sessions=True))
    token = started(manager)
    assert session_locks(manager).acquire_sync(token) is not None
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)


def test_a_postgres_table_of_the_previous_schema_gains_the_locks_table() -> None:
    import psycopg

    from coatcheck.stores.postgres import from_url
    from coatcheck.stores.postgres.migrations import migration_statements
    from coatcheck.stores.postgres.sql import Statements
    from tests.support.postgres_server import SHARED_URL, scratch_table, store_url

    with scratch_table() as table, psycopg.connect(SHARED_URL, autocommit=True) as admin:
        for statement in migration_statements(Statements([table]), 0):
            admin.execute(statement)
        admin.execute(
            "CREATE TABLE IF NOT EXISTS coatcheck_schema (name text PRIMARY KEY, "
            "version integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        admin.execute("INSERT INTO coatcheck_schema (name, version) VALUES (%s, 1)", (table,))
        store = from_url(store_url(table))
        try:
            manager = SessionManager(store, SessionConfig(lock_sessions=True))
            token = started(manager)
            assert session_locks(manager).acquire_sync(token) is not None
        finally:
            store.close_sync()
        version = admin.execute(
            "SELECT version FROM coatcheck_schema WHERE name = %s", (table,)
        ).fetchone()
        assert version == (2,)
