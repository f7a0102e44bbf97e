"""MemcachedStore: the store contract over memcached items (layout and limits: see the package
docstring), its async path the same sync code offloaded to worker threads.

The async API is defined once over the sync one: ``_offloaded(get_sync)`` is ``get``, and
so on for every method of the contract, so the two paths cannot drift apart and adding a
method to the contract costs one line here.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from coatcheck.core.record import Patch, SessionRecord
from coatcheck.errors import StoreUnavailable
from coatcheck.stores.base import Countable, HandleIndex, Lockable, Purgeable, Store, UserIndex
from coatcheck.stores.memcached.codec import (
    DEFAULT_MAX_TTL,
    NAME_PART,
    TOMBSTONE_TTL,
    Names,
    chunks,
    dumps,
    live_doc,
    patched,
    to_doc,
    to_record,
    tombstone,
)
from coatcheck.stores.memcached.indexes import Indexes
from coatcheck.stores.memcached.protocol import Connections, Items, WorkerThreads

T = TypeVar("T")
P = ParamSpec("P")
S = TypeVar("S", bound="MemcachedStore")


def _offloaded(
    sync: Callable[Concatenate[S, P], T],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """The async twin of a sync method: the same method, looked up by name at call time
    (so a subclass's override is the one that runs), on the store's worker threads."""
    name = sync.__name__

    async def offloaded(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        method = getattr(self, name)
        if kwargs:
            return await self._threads.run(functools.partial(method, *args, **kwargs))
        return await self._threads.run(method, *args)  # no partial on the hot path

    offloaded.__name__ = offloaded.__qualname__ = name.removesuffix("_sync")
    offloaded.__doc__ = f"``{name}`` on a worker thread."
    return offloaded


class MemcachedStore(Store, HandleIndex, UserIndex, Purgeable, Countable, Lockable):
    """Sessions in one memcached server (see the package docstring for what that means).

    ``prefix`` namespaces every item name, so several applications (or test runs) can share
    a server. ``timeout`` and ``connect_timeout`` are in seconds; ``pool_size`` bounds the
    connections and the threads that serve the async methods, and ``max_queued`` the
    async calls that may wait for one of those threads (beyond it: StoreUnavailable at
    once; a call that waited ``connect_timeout + timeout`` fails too, as on the sync path).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 11211,
        *,
        prefix: str = "coatcheck:",
        timeout: float = 1.0,
        connect_timeout: float = 1.0,
        pool_size: int = 10,
        max_ttl: float = DEFAULT_MAX_TTL,
        max_cas_attempts: int = 256,
        max_queued: int = 256,
    ) -> None:
        if len(prefix) > 100 or any(c.isspace() or ord(c) < 33 or ord(c) > 126 for c in prefix):
            raise ValueError(
                f"memcached prefix must be at most 100 printable ASCII characters without "
                f"spaces, got {prefix!r}"
            )
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError("memcached timeouts must be positive")
        if pool_size < 1:
            raise ValueError("memcached pool_size must be at least 1")
        if max_ttl < 1 or max_cas_attempts < 1:
            raise ValueError("max_ttl and max_cas_attempts must be at least 1")
        if max_queued < 0:
            raise ValueError("memcached max_queued must not be negative")
        self.prefix = prefix
        self.host, self.port = host, port
        self.timeout, self.connect_timeout, self.pool_size = timeout, connect_timeout, pool_size
        self.max_ttl = max_ttl
        self.max_cas_attempts = max_cas_attempts
        self._names = Names(prefix)
        self._pool = Connections((host, port), pool_size, connect_timeout, timeout)
        self._items = Items(self._pool, self._names, max_ttl)
        self._indexes = Indexes(self._items, max_cas_attempts)
        self._threads = WorkerThreads(pool_size, max_queued, connect_timeout + timeout)

    # -- contract: sync path -----------------------------------------------------------
    def get_sync(self, key: str) -> SessionRecord | None:
        if not NAME_PART.fullmatch(key):
            return None
        raw = self._items.call("get", self._names.record(key))
        doc = None if raw is None else self._items.doc(raw)  # (damaged: a warning)
        return None if doc is None or "moved_to" in doc else to_record(key, doc)

    def create_sync(self, record: SessionRecord) -> None:
        if not (NAME_PART.fullmatch(record.key) and NAME_PART.fullmatch(record.handle)):
            raise ValueError("record key and handle must be URL-safe base64 or hex")
        doc = to_doc(record)
        value = dumps(doc)  # fails before any write if the record is not JSON
        self._indexes.register(record.key, doc)
        self._indexes.index_user(record.key, doc)
        self._indexes.point_handle(record.key, doc)
        name = self._names.record(record.key)
        exptime = self._items.exptime(record.expires_at)
        self._items.call("set", name, value, expire=exptime)

    def apply_sync(self, key: str, patch: Patch) -> bool:
        if not NAME_PART.fullmatch(key):
            return False
        name = self._names.record(key)
        indexed: set[tuple[Any, Any]] = set()
        for _ in range(self.max_cas_attempts):
            raw, token = self._items.call("gets", name)
            if raw is None:
                return False
            doc = live_doc(raw)
            if doc is None or not patch.fits(doc["handle"]):
                return False
            new = patched(doc, patch)
            moved = (new["user_id"], new["absolute_at"]) != (doc["user_id"], doc["absolute_at"])
            if moved and (new["user_id"], new["absolute_at"]) not in indexed:
                # Index first: the new owner's index must never miss this session.
                self._indexes.index_user(key, new)
                self._indexes.register(key, new)
                indexed.add((new["user_id"], new["absolute_at"]))
            value = dumps(new)
            exptime = self._items.exptime(new["expires_at"])
            stored = self._items.call("cas", name, value, token, expire=exptime)
            if stored is None:
                return False  # deleted meanwhile: never resurrect
            if stored:
                break
        else:
            raise StoreUnavailable("memcached record: too much write contention")
        if moved:
            if doc["user_id"] is not None and doc["user_id"] != new["user_id"]:
                self._indexes.remove(self._names.user(doc["user_id"]), {key})
            self._indexes.point_handle(key, new)
        return True

    def rename_sync(self, old_key: str, new_key: str, patch: Patch) -> bool:
        if not NAME_PART.fullmatch(new_key):
            raise ValueError("the new key must be URL-safe base64 or hex")
        if not NAME_PART.fullmatch(old_key):
            return False
        old_name, new_name = self._names.record(old_key), self._names.record(new_key)
        indexed: set[tuple[Any, Any]] = set()
        for _ in range(self.max_cas_attempts):
            raw, token = self._items.call("gets", old_name)
            if raw is None:
                return False
            doc = live_doc(raw)
            if doc is None or not patch.fits(doc["handle"]):
                return False
            new = patched(doc, patch)
            if (new["user_id"], new["absolute_at"]) not in indexed:
                self._indexes.index_user(new_key, new)
                self._indexes.register(new_key, new)
                indexed.add((new["user_id"], new["absolute_at"]))
            value = dumps(new)
            exptime = self._items.exptime(new["expires_at"])
            self._items.call("set", new_name, value, expire=exptime)
            moved = self._items.call(
                "cas", old_name, tombstone(new_key), token, expire=TOMBSTONE_TTL
            )
            if moved:
                break
            # The old record changed (or vanished) after we read it: undo and start again.
            self._items.delete(new_name)
            if moved is None:
                return False
        else:
            self._items.delete(new_name)
            raise StoreUnavailable("memcached record: too much write contention")
        self._indexes.point_handle(new_key, new)
        if doc["user_id"] is not None:
            self._indexes.remove(self._names.user(doc["user_id"]), {old_key})
        self._items.delete(old_name)
        return True

    def delete_sync(self, key: str) -> bool:
        if not NAME_PART.fullmatch(key):
            return False
        doc = self._items.load_doc(key)
        if doc is None:
            return False
        if "moved_to" in doc:
            self._items.delete(self._names.record(key))
            return False
        return self._indexes.delete_record(key, doc)

    def get_by_handle_sync(self, handle: str) -> SessionRecord | None:
        if not NAME_PART.fullmatch(handle):
            return None
        name = self._names.handle(handle)
        raw = self._items.call("get", name)
        if raw is None:
            return None
        found = self._items.follow(raw)
        if found is None or found[1]["handle"] != handle:
            return None
        return to_record(*found)

    def list_user_sync(self, user_id: str, now: float) -> list[SessionRecord]:
        name = self._names.user(user_id)
        raw = self._items.call("get", name)
        if raw is None:
            return []
        entries = self._items.entries(name, raw)
        if entries is None:
            return []
        docs = self._items.load_docs(e[0] for e in entries)
        by_handle: dict[str, SessionRecord] = {}
        dead: set[str] = set()
        for key, *_ in entries:
            doc = docs.get(key)
            if doc is None or "moved_to" in doc or doc["user_id"] != user_id:
                dead.add(key)
            elif doc["expires_at"] <= now:
                dead.add(key)  # expired sessions never come back: forget them
            else:
                by_handle[doc["handle"]] = to_record(key, doc)  # later entry wins (rename)
        if dead:
            self._indexes.remove(name, dead)
        return sorted(by_handle.values(), key=lambda r: r.created_at)

    def delete_handle_sync(self, handle: str) -> SessionRecord | None:
        if not NAME_PART.fullmatch(handle):
            return None
        name = self._names.handle(handle)
        raw = self._items.call("get", name)
        if raw is None:
            return None
        found = self._items.follow(raw)
        if found is None or found[1]["handle"] != handle:
            self._indexes.drop_handle(handle, raw.decode("utf-8", "replace"))
            return None
        key, doc = found
        return to_record(key, doc) if self._indexes.delete_record(key, doc) else None

    def delete_user_sync(self, user_id: str, except_handle: str | None = None) -> int:
        """End the user's sessions, also one a rename is moving at this instant: the
        rename indexes the new key before it writes there, and the old key then holds a
        tombstone naming it, so each tombstone met is followed, and the index is read
        again until it lists no key not yet seen (a rename that completed between the
        first read of the index and the read of its records left only its new key)."""
        name = self._names.user(user_id)
        deleted = 0
        seen: set[str] = set()
        for _ in range(self.max_cas_attempts):
            raw = self._items.call("get", name)
            if raw is None:
                return deleted
            entries = self._items.entries(name, raw)
            if entries is None:  # damaged: find the user's sessions through the registry
                entries = self._user_entries(user_id)
            fresh = [e[0] for e in entries if e[0] not in seen]
            if not fresh:
                return deleted
            seen.update(fresh)
            deleted += self._delete_listed(user_id, fresh, except_handle, seen)
        raise StoreUnavailable("memcached user index: too much write contention")

    def _delete_listed(
        self, user_id: str, keys: list[str], except_handle: str | None, seen: set[str]
    ) -> int:
        """Delete the user's records under ``keys`` (following rename tombstones) but the
        one with ``except_handle``, and drop the entries that are gone from the index."""
        docs = self._items.load_docs(keys)
        deleted = 0
        gone: set[str] = set()
        for key in keys:
            doc = docs.get(key)
            if doc is not None and "moved_to" in doc:
                gone.add(key)  # a rename's old key: the session is where it points
                key = doc["moved_to"]
                seen.add(key)
                doc = self._items.load_doc(key)
            if doc is None or "moved_to" in doc or doc["user_id"] != user_id:
                gone.add(key)
                continue
            if doc["handle"] == except_handle:
                continue
            if self._items.delete(self._names.record(key)):
                deleted += 1
            self._indexes.drop_handle(doc["handle"], key)
            gone.add(key)
        self._indexes.remove(self._names.user(user_id), gone)
        return deleted

    def _user_entries(self, user_id: str) -> list[list[Any]]:
        """The user's records as index entries, found by reading every registered record:
        what ``delete_user_sync`` falls back on when the user's index item is damaged (a
        revocation must never miss a session because its index is unreadable)."""
        found: list[list[Any]] = []
        for _, entries in self._indexes.registered():
            docs = self._items.load_docs(e[0] for e in entries)
            found += [
                [key, doc["handle"], doc["absolute_at"]]
                for key, doc in docs.items()
                if "moved_to" not in doc and doc["user_id"] == user_id
            ]
        return found

    def purge_expired_sync(self, now: float, batch_size: int) -> int:
        """Delete records whose deadline is at or before ``now``.

        Memcached drops items at their deadline by itself; this sweep exists because the
        manager's clock (``now``) is authoritative, and to prune the registry and the user
        indexes of sessions that memcached already dropped. Records are read and deleted
        ``batch_size`` at a time; memcached never blocks readers for any of it.
        """
        total = 0
        for bucket, entries in self._indexes.registered():
            keys = [e[0] for e in entries]
            dead: set[str] = set()
            for batch in chunks(keys, max(1, batch_size)):
                docs = self._items.load_docs(batch)
                by_user: dict[str, set[str]] = {}
                for key in batch:
                    doc = docs.get(key)
                    if doc is None or "moved_to" in doc:
                        dead.add(key)
                    elif doc["expires_at"] <= now:
                        dead.add(key)
                        if self._items.delete(self._names.record(key)):
                            total += 1
                        self._indexes.drop_handle(doc["handle"], key)
                        if doc["user_id"] is not None:
                            by_user.setdefault(doc["user_id"], set()).add(key)
                for user_id, user_keys in by_user.items():
                    self._indexes.remove(self._names.user(user_id), user_keys)
            self._indexes.remove(bucket, dead)
        return total

    def count_sync(self, now: float) -> int:
        """Live records reachable through the registry (one pass over 4096 buckets and
        the records they list; a registry bucket lost to eviction makes this undercount)."""
        live = 0
        for _, entries in self._indexes.registered():
            docs = self._items.load_docs(e[0] for e in entries)
            live += sum(1 for d in docs.values() if "moved_to" not in d and d["expires_at"] > now)
        return live

    def acquire_lock_sync(self, key: str, owner: str, now: float, lease: float) -> bool:
        """``add`` (stored only if absent), with memcached's own expiry a second past the
        lease as the backstop for a crashed holder; the lease's end is also kept in the
        item (memcached's clock ticks in whole seconds), and a lock held past it is taken
        over by ``cas``, so only one of two takers wins it."""
        if not NAME_PART.fullmatch(key):
            return False
        name = self._names.lock(key)
        value = dumps([owner, now + lease])
        expire = math.ceil(lease) + 1
        if self._items.call("add", name, value, expire=expire):
            return True
        raw, token = self._items.call("gets", name)
        if raw is None:  # released (or expired) meanwhile: one more try
            return bool(self._items.call("add", name, value, expire=expire))
        held = _lock_item(raw)
        if held is not None and held[1] > now:
            return False
        return bool(self._items.call("cas", name, value, token, expire=expire))

    def release_lock_sync(self, key: str, owner: str) -> bool:
        """Compare and delete: ``gets``, then a ``cas`` that expires the item at once
        (memcached's ``delete`` takes no cas value), so a successor's lock is never
        deleted."""
        if not NAME_PART.fullmatch(key):
            return False
        name = self._names.lock(key)
        raw, token = self._items.call("gets", name)
        held = _lock_item(raw) if raw is not None else None
        if held is None or held[0] != owner:
            return False
        return bool(self._items.call("cas", name, b"[]", token, expire=-1))

    def close_sync(self) -> None:
        self._threads.shutdown()
        self._pool.close()

    # -- contract: async path, the sync code on the worker threads ----------------------
    get = _offloaded(get_sync)
    create = _offloaded(create_sync)
    apply = _offloaded(apply_sync)
    rename = _offloaded(rename_sync)
    delete = _offloaded(delete_sync)
    get_by_handle = _offloaded(get_by_handle_sync)
    list_user = _offloaded(list_user_sync)
    delete_handle = _offloaded(delete_handle_sync)
    delete_user = _offloaded(delete_user_sync)
    purge_expired = _offloaded(purge_expired_sync)
    count = _offloaded(count_sync)
    acquire_lock = _offloaded(acquire_lock_sync)
    release_lock = _offloaded(release_lock_sync)

    async def close(self) -> None:
        self.close_sync()


def _lock_item(raw: bytes) -> tuple[str, float] | None:
    """A lock item's (owner, lease end), or None for one this store did not write (a
    damaged item holds no lock: it is taken over by ``cas`` like an expired one)."""
    try:
        owner, until = json.loads(raw)
        return (owner, float(until)) if isinstance(owner, str) else None
    except (ValueError, TypeError):
        return None
