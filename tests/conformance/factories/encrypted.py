"""The server stores again, each wrapped by ``stores.encrypted`` (session data sealed at
rest under a data key ring): the whole contract must hold unchanged through the wrapper."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from coatcheck.security.sealing import new_key, parse_keys
from coatcheck.stores import SQLiteStore
from coatcheck.stores.encrypted import encrypted, encrypted_class
from coatcheck.stores.memcached import MemcachedStore
from coatcheck.stores.postgres import PostgresStore
from coatcheck.stores.redis import RedisStore

from . import local, memcached, postgres, redis

EncryptedSQLite = encrypted_class(SQLiteStore)
EncryptedPostgres = encrypted_class(PostgresStore)
EncryptedRedis = encrypted_class(RedisStore)
EncryptedMemcached = encrypted_class(MemcachedStore)

RING = parse_keys(f"new:{new_key()},old:{new_key()}")


@contextlib.contextmanager
def encrypted_sqlite(tmp_path: Path) -> Iterator[EncryptedSQLite]:  # type: ignore[valid-type]
    with local.sqlite_store(tmp_path) as inner:
        yield encrypted(inner, RING)


@contextlib.contextmanager
def encrypted_postgres(tmp_path: Path) -> Iterator[EncryptedPostgres]:  # type: ignore[valid-type]
    with postgres.postgres_store(tmp_path) as inner:
        yield encrypted(inner, RING)


@contextlib.contextmanager
def encrypted_redis(tmp_path: Path) -> Iterator[EncryptedRedis]:  # type: ignore[valid-type]
    with redis.redis_store(tmp_path) as inner:
        yield encrypted(inner, RING)


@contextlib.contextmanager
def encrypted_memcached(tmp_path: Path) -> Iterator[EncryptedMemcached]:  # type: ignore[valid-type]
    with memcached.memcached_store(tmp_path) as inner:
        yield encrypted(inner, RING)


FACTORIES = {
    "encrypted-sqlite": encrypted_sqlite,
    "encrypted-postgres": encrypted_postgres,
    "encrypted-redis": encrypted_redis,
    "encrypted-memcached": encrypted_memcached,
}
