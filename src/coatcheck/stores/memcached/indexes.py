"""The memcached store's indexes: the handle pointers, the per-user lists and the registry.

Memcached cannot enumerate or query its items, so every way to reach a session other than
its key is an item the store maintains itself, rewritten with ``gets`` + ``cas`` so that
concurrent writers never lose each other's entries. Entries carry the session's absolute
deadline: the ones past it are dropped on every write and each item expires with the latest
deadline it lists, so indexes stay bounded without expiry notifications.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from coatcheck.errors import StoreUnavailable
from coatcheck.stores.memcached.codec import (
    EMPTY_INDEX_TTL,
    FETCH_CHUNK,
    INDEX_GRACE,
    Doc,
    Entries,
    chunks,
    dumps,
)
from coatcheck.stores.memcached.protocol import Items


class Indexes:
    """Index upkeep over raw item access; ``max_cas_attempts`` bounds each rewrite."""

    def __init__(self, items: Items, max_cas_attempts: int) -> None:
        self.items = items
        self.names = items.names
        self.max_cas_attempts = max_cas_attempts

    def _update(self, name: str, change: Callable[[Entries], Entries]) -> None:
        """Rewrite the JSON list under ``name`` with ``change`` in a gets/cas loop.

        Entries end with their absolute deadline; the ones past it are dropped on every
        write, and the item expires with the latest deadline it still lists.
        """
        call = self.items.call
        for _ in range(self.max_cas_attempts):
            raw, token = call("gets", name)
            # A damaged item (a warning) is rewritten with what this change leaves.
            current: Entries = [] if raw is None else (self.items.entries(name, raw) or [])
            horizon = time.time() - INDEX_GRACE
            wanted = [e for e in change(list(current)) if e[-1] > horizon]
            if raw is not None and wanted == current:
                return
            if raw is None and not wanted:
                return
            value = dumps(wanted)
            expire = self.items.exptime(max(e[-1] for e in wanted)) if wanted else EMPTY_INDEX_TTL
            if raw is None:
                if call("add", name, value, expire=expire):
                    return
            elif call("cas", name, value, token, expire=expire):
                return
        raise StoreUnavailable(f"memcached index {name!r}: too much write contention")

    def upsert(self, name: str, entry: list[Any]) -> None:
        def change(entries: Entries) -> Entries:
            for i, existing in enumerate(entries):
                if existing[0] == entry[0]:
                    entries[i] = entry
                    return entries
            return [*entries, entry]

        self._update(name, change)

    def remove(self, name: str, keys: set[str]) -> None:
        if keys:
            self._update(name, lambda entries: [e for e in entries if e[0] not in keys])

    def index_user(self, key: str, doc: Doc) -> None:
        if doc["user_id"] is not None:
            entry = [key, doc["handle"], doc["absolute_at"]]
            self.upsert(self.names.user(doc["user_id"]), entry)

    def register(self, key: str, doc: Doc) -> None:
        self.upsert(self.names.bucket(key), [key, doc["absolute_at"]])

    def point_handle(self, key: str, doc: Doc) -> None:
        name = self.names.handle(doc["handle"])
        expire = self.items.exptime(doc["absolute_at"])
        self.items.call("set", name, key.encode(), expire=expire)

    def drop_handle(self, handle: str, key: str) -> None:
        """Delete the handle entry if it still names ``key`` (a rename may have moved it)."""
        name = self.names.handle(handle)
        if self.items.call("get", name) == key.encode():
            self.items.delete(name)

    def delete_record(self, key: str, doc: Doc) -> bool:
        """Delete a record and its handle and user entries (the registry entry is
        pruned by purge_expired)."""
        deleted = self.items.delete(self.names.record(key))
        self.drop_handle(doc["handle"], key)
        if doc["user_id"] is not None:
            self.remove(self.names.user(doc["user_id"]), {key})
        return deleted

    def registered(self) -> Iterator[tuple[str, Entries]]:
        """Every non-empty registry bucket: (item name, entries)."""
        for chunk in chunks(self.names.all_buckets(), FETCH_CHUNK):
            values = self.items.call("get_many", chunk)
            for name in chunk:
                if name in values:
                    entries = self.items.entries(name, values[name])
                    if entries:
                        yield name, entries
