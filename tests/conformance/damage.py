"""Damage a stored record the way the world does: through the store's own raw client.

Each store has a ``Damager`` that knows where a record lives (a row, a hash, an item) and
writes into it what coatcheck never writes: ``data`` that is not an object or not JSON,
a deadline that is text, missing or NaN, metadata of the wrong shape, a key of the wrong
type, garbage bytes. ``CASES`` names every damage; each damager says which ones its
storage can hold (a jsonb column cannot hold truncated JSON, a Redis hash has no
``data`` field to make a list of), and the suite runs exactly those.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from coatcheck.stores import MemoryStore, SQLiteStore, Store
from coatcheck.stores.memcached import MemcachedStore
from coatcheck.stores.postgres import PostgresStore
from coatcheck.stores.redis import RedisStore
from tests.support.postgres_server import SHARED_URL, store_url

CASES = (
    "data-not-an-object",
    "data-null",
    "data-truncated",
    "deadline-text",
    "deadline-missing",
    "deadline-nan",
    "meta-not-an-object",
    "meta-level-text",
    "meta-csrf-number",
    "meta-rotation-text",
    "meta-rotation-half",
    "handle-number",
    "remember-text",
    "key-is-a-string",
    "key-is-a-list",
    "garbage-bytes",
    "truncated-item",
)

BAD_META: dict[str, Any] = {
    "meta-not-an-object": [1, 2],
    "meta-level-text": {"level": "high"},
    "meta-csrf-number": {"csrf": 12345},
    "meta-rotation-text": {"rotated_to": "elsewhere", "rotated_at": "yesterday"},
    "meta-rotation-half": {"rotated_to": "elsewhere"},
}


class Damager:
    """Writes damage into the record filed under a storage key."""

    cases: frozenset[str] = frozenset()
    url: str | None = None
    """The store's URL, for the ``coatcheck`` command (None: the CLI cannot reach it)."""

    indexed_by_item = False
    """Whether the store keeps a user's sessions in an item of its own (``damage_index``)."""

    def damage(self, case: str, key: str) -> None:
        raise NotImplementedError

    def damage_index(self, user_id: str) -> None:
        """Replace the user's index item with one of another type or garbage."""
        raise NotImplementedError


class MemoryDamager(Damager):
    """The memory store's "raw client" is its own dict (what a debugger would poke)."""

    cases = frozenset({"data-truncated", *BAD_META})

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def damage(self, case: str, key: str) -> None:
        entry = self.store._entries[key]
        if case == "data-truncated":
            entry.data["cart"] = '["ha'
            entry.plain = None
        else:
            entry.meta = json.dumps(BAD_META[case])
            entry.plain_meta = None


class SQLiteDamager(Damager):
    cases = frozenset(
        {
            "data-not-an-object",
            "data-null",
            "data-truncated",
            "deadline-text",
            "deadline-missing",
            *BAD_META,
        }
    )
    """(No NaN: SQLite stores a NaN as NULL, which ``deadline-missing`` is.)"""

    def __init__(self, store: SQLiteStore) -> None:
        self.path = store.path
        self.url = f"sqlite:///{store.path}"

    def _set(self, key: str, column: str, value: object) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.execute(f"UPDATE coatcheck_sessions SET {column} = ? WHERE key = ?", (value, key))

    def _allow_nulls(self) -> None:
        """What a hand-made or hand-edited table might be: no NOT NULL constraints."""
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            version = conn.execute("PRAGMA schema_version").fetchone()[0]
            conn.execute("PRAGMA writable_schema = ON")
            conn.execute(
                "UPDATE sqlite_schema SET sql = replace(sql, 'NOT NULL', '') "
                "WHERE name = 'coatcheck_sessions'"
            )
            conn.execute(f"PRAGMA schema_version = {version + 1}")  # others reload it
            conn.execute("PRAGMA writable_schema = OFF")
        finally:
            conn.close()

    def damage(self, case: str, key: str) -> None:
        if case == "data-not-an-object":
            self._set(key, "data", "[1, 2]")
        elif case == "data-null":
            self._allow_nulls()
            self._set(key, "data", None)
        elif case == "data-truncated":
            self._set(key, "data", '{"cart": ["ha')
        elif case == "deadline-text":
            self._set(key, "expires_at", "soon")
        elif case == "deadline-missing":
            self._allow_nulls()
            self._set(key, "expires_at", None)
        else:
            self._set(key, "meta", json.dumps(BAD_META[case]))


class PostgresDamager(Damager):
    cases = frozenset(
        {"data-not-an-object", "data-null", "deadline-missing", "deadline-nan", *BAD_META}
    )

    def __init__(self, store: PostgresStore) -> None:
        self.table = store.table
        self.url = store_url(store.table)

    def _run(self, statement: str, *params: object) -> None:
        with psycopg.connect(SHARED_URL, autocommit=True) as conn:
            conn.execute(sql.SQL(statement).format(t=sql.Identifier(self.table)), params)

    def damage(self, case: str, key: str) -> None:
        if case == "data-not-an-object":
            self._run("UPDATE {t} SET data = '[1, 2]'::jsonb WHERE key = %s", key)
        elif case == "data-null":  # a jsonb null, and then SQL NULL in a loosened column
            self._run("UPDATE {t} SET data = 'null'::jsonb WHERE key = %s", key)
            self._run("ALTER TABLE {t} ALTER COLUMN data DROP NOT NULL")
            self._run("UPDATE {t} SET data = NULL WHERE key = %s", key)
        elif case == "deadline-missing":
            self._run("ALTER TABLE {t} ALTER COLUMN expires_at DROP NOT NULL")
            self._run("UPDATE {t} SET expires_at = NULL WHERE key = %s", key)
        elif case == "deadline-nan":
            self._run("UPDATE {t} SET expires_at = 'NaN'::float8 WHERE key = %s", key)
        else:
            meta = json.dumps(BAD_META[case])
            self._run("UPDATE {t} SET meta = %s::jsonb WHERE key = %s", meta, key)


class RedisDamager(Damager):
    """Through the store's own redis-py client (a cluster client on a cluster)."""

    cases = frozenset(
        {
            "data-truncated",
            "deadline-text",
            "deadline-missing",
            "deadline-nan",
            "handle-number",
            "key-is-a-string",
            "key-is-a-list",
            "truncated-item",
            *BAD_META,
        }
    )

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.client: Any = store._sync.client()
        if store.options.mode == "standalone":
            host, port = store.options.hosts[0]
            self.url = f"redis://{host}:{port}/{store.options.db}?prefix={store.prefix}"

    indexed_by_item = True

    def damage_index(self, user_id: str) -> None:
        name = self.store.user_key(user_id)
        self.client.delete(name)
        self.client.set(name, "not a sorted set", ex=3600)

    def _meta(self, name: str, change: Callable[[dict[str, Any]], None]) -> None:
        packed = json.loads(self.client.hget(name, "m"))
        change(packed)
        self.client.hset(name, "m", json.dumps(packed))

    def damage(self, case: str, key: str) -> None:
        name = self.store.record_key(key)
        if case == "data-truncated":
            self.client.hset(name, "d:cart", '["ha')
        elif case == "deadline-text":
            self.client.hset(name, "e", "soon")
        elif case == "deadline-missing":
            self.client.hdel(name, "e")
        elif case == "deadline-nan":
            self.client.hset(name, "e", "nan")
        elif case == "handle-number":
            self._meta(name, lambda m: m.update(h=42))
        elif case == "truncated-item":  # the packed metadata, cut in half
            packed = self.client.hget(name, "m")
            self.client.hset(name, "m", packed[: len(packed) // 2])
        elif case in ("key-is-a-string", "key-is-a-list"):
            ttl = self.client.pttl(name)
            self.client.delete(name)
            if case == "key-is-a-string":
                self.client.set(name, "not a hash", px=ttl)
            else:
                self.client.rpush(name, "not", "a", "hash")
                self.client.pexpire(name, ttl)
        else:
            self._meta(name, lambda m: m.update(x=json.dumps(BAD_META[case])))


class MemcachedDamager(Damager):
    cases = frozenset(
        {
            "data-not-an-object",
            "data-null",
            "deadline-text",
            "deadline-missing",
            "deadline-nan",
            "handle-number",
            "remember-text",
            "garbage-bytes",
            "truncated-item",
            *BAD_META,
        }
    )

    def __init__(self, store: MemcachedStore) -> None:
        from pymemcache.client.base import Client  # type: ignore[import-untyped]

        self.store = store
        self.client = Client(
            (store.host, store.port), connect_timeout=2, timeout=2, default_noreply=False
        )
        self.url = f"memcached://{store.host}:{store.port}?prefix={store.prefix}"

    indexed_by_item = True

    def damage_index(self, user_id: str) -> None:
        self.client.set(self.store._names.user(user_id), b"\xff not a list", expire=3600)

    def _doc(self, key: str, change: Callable[[dict[str, Any]], None]) -> None:
        name = self.store._names.record(key)
        doc = json.loads(self.client.get(name))
        change(doc)
        self.client.set(name, json.dumps(doc).encode(), expire=3600)

    def damage(self, case: str, key: str) -> None:
        name = self.store._names.record(key)
        if case == "garbage-bytes":
            self.client.set(name, b"\xff\xfe\x00 garbage \x80", expire=3600)
        elif case == "truncated-item":
            raw = self.client.get(name)
            self.client.set(name, raw[: len(raw) // 2], expire=3600)
        elif case == "data-not-an-object":
            self._doc(key, lambda d: d.update(data=[1, 2]))
        elif case == "data-null":
            self._doc(key, lambda d: d.update(data=None))
        elif case == "deadline-text":
            self._doc(key, lambda d: d.update(expires_at="soon"))
        elif case == "deadline-missing":
            self._doc(key, lambda d: d.pop("expires_at"))
        elif case == "deadline-nan":
            self._doc(key, lambda d: d.update(expires_at=float("nan")))  # JSON's NaN
        elif case == "handle-number":
            self._doc(key, lambda d: d.update(handle=42))
        elif case == "remember-text":
            self._doc(key, lambda d: d.update(remember="yes"))
        else:
            self._doc(key, lambda d: d.update(meta=BAD_META[case]))


DAMAGERS: dict[type[Store], Callable[[Any], Damager]] = {
    MemoryStore: MemoryDamager,
    SQLiteStore: SQLiteDamager,
    PostgresStore: PostgresDamager,
    RedisStore: RedisDamager,
    MemcachedStore: MemcachedDamager,
}
"""The damager of each store class (``CoreOnlyStore``, a test double, has none)."""


def damager_class_cases(kind: type[Store]) -> frozenset[str]:
    """The damage cases a store class can hold (before any server is reached)."""
    damager = DAMAGERS.get(kind)
    return getattr(damager, "cases", frozenset())


def _through_the_wrapper() -> None:
    """An encrypted store (``stores.encrypted``) is damaged in its inner store: the records
    are the inner store's, and the wrapper must pass its verdict on (a fresh session, the
    store's warning). Stores whose wrappers share a class share its entry, which then
    holds the cases every one of them can hold."""
    from coatcheck.stores.encrypted import encrypted_class

    by_class: dict[type[Store], list[type[Store]]] = {}
    for kind in list(DAMAGERS):
        by_class.setdefault(encrypted_class(kind), []).append(kind)
    for wrapper, kinds in by_class.items():
        cases = frozenset.intersection(*(damager_class_cases(k) for k in kinds))

        def damager(store: Any) -> Damager:
            return DAMAGERS[type(store.inner)](store.inner)

        damager.cases = cases  # type: ignore[attr-defined]
        DAMAGERS[wrapper] = damager


_through_the_wrapper()
