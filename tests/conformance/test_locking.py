"""The ``Lockable`` capability of the store contract, run against every store that declares
it (memory, SQLite, PostgreSQL, Redis on one node, Sentinel and a cluster, memcached), on
both paths.

A lock is one attempt, never a wait (the engine waits); an owner value only its holder
knows; a lease after which a lock left by a crashed holder is free again.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest

from coatcheck.core import tokens
from coatcheck.stores import Lockable
from tests.conformance.conftest import Driver, needs

pytestmark = needs(Lockable)

NOW = 1_800_000_000.0
LEASE = 30.0


def new_key() -> str:
    return tokens.storage_key(tokens.new_token())


def owner() -> str:
    return secrets.token_hex(16)


async def test_one_holder_at_a_time(store: Driver) -> None:
    key, first, second = new_key(), owner(), owner()
    assert await store.acquire_lock(key, first, NOW, LEASE) is True
    assert await store.acquire_lock(key, second, NOW, LEASE) is False
    assert await store.acquire_lock(key, first, NOW, LEASE) is False  # not re-entrant
    assert await store.release_lock(key, first) is True
    assert await store.acquire_lock(key, second, NOW, LEASE) is True


async def test_only_the_holder_releases(store: Driver) -> None:
    key, holder, other = new_key(), owner(), owner()
    assert await store.acquire_lock(key, holder, NOW, LEASE) is True
    assert await store.release_lock(key, other) is False
    assert await store.acquire_lock(key, other, NOW, LEASE) is False  # still held
    assert await store.release_lock(key, holder) is True
    assert await store.release_lock(key, holder) is False  # nothing left to release


async def test_locks_of_different_sessions_are_independent(store: Driver) -> None:
    one, two = new_key(), new_key()
    assert await store.acquire_lock(one, owner(), NOW, LEASE) is True
    assert await store.acquire_lock(two, owner(), NOW, LEASE) is True


async def test_a_lock_is_not_a_record(store: Driver) -> None:
    """Locking a session's key files nothing under the key itself."""
    key = new_key()
    assert await store.acquire_lock(key, owner(), NOW, LEASE) is True
    assert await store.get(key) is None


async def test_a_lease_that_ended_frees_the_lock_of_a_crashed_holder(store: Driver) -> None:
    """The holder never releases (it crashed). Stores that go by the manager's clock free
    the lock once ``now`` passes the lease; Redis goes by its own (``PX``), so the lease is
    short and the taker tries again, at most a few hundred times, until it is gone."""
    key, crashed, taker = new_key(), owner(), owner()
    lease = 0.05
    assert await store.acquire_lock(key, crashed, NOW, lease) is True
    assert await store.acquire_lock(key, taker, NOW, lease) is False  # the lease runs
    later = NOW + 1.0  # past the lease, by the clock passed in
    for _ in range(500):
        if await store.acquire_lock(key, taker, later, LEASE):
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the lock of a crashed holder was never freed")
    # The crashed holder, back, cannot release its successor's lock.
    assert await store.release_lock(key, crashed) is False
    assert await store.acquire_lock(key, owner(), later, LEASE) is False
    assert await store.release_lock(key, taker) is True


async def takers(store: Driver, key: str, now: float, count: int = 20) -> list[bool]:
    """``count`` takers at once: coroutines on the async path, threads on the sync one."""
    owners = [owner() for _ in range(count)]
    if store.mode == "sync":
        sync = store.store.acquire_lock_sync  # type: ignore[attr-defined]
        calls = (asyncio.to_thread(sync, key, o, now, LEASE) for o in owners)
    else:
        calls = (store.acquire_lock(key, o, now, LEASE) for o in owners)
    return list(await asyncio.gather(*calls))


async def test_two_takers_of_a_free_lock_one_winner(store: Driver) -> None:
    assert sum(await takers(store, new_key(), NOW)) == 1


async def test_two_takers_of_an_expired_lock_one_winner(store: Driver) -> None:
    key = new_key()
    assert await store.acquire_lock(key, owner(), NOW, 0.05) is True
    await asyncio.sleep(0.1)  # Redis: its own clock must see the lease end too
    assert sum(await takers(store, key, NOW + 1.0)) == 1
