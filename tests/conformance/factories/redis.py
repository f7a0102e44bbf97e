"""Redis stores for the contract suite: standalone (the machine's server), a 3-master Cluster
and a master behind Sentinel (both private, started once per test session).

Each test gets its own random key prefix, deleted afterwards, so tests never see each
other's keys even on the shared server.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from coatcheck.stores.redis import RedisStore
from tests.support.redis_servers import SHARED, delete_prefix, shared_redis_url, unique_prefix


@contextlib.contextmanager
def _store(url: str, cleanup_url: str) -> Iterator[RedisStore]:
    prefix = unique_prefix()
    separator = "&" if "?" in url else "?"
    store = RedisStore.from_url(f"{url}{separator}prefix={prefix}")
    try:
        yield store
    finally:
        store.close_sync()
        delete_prefix(cleanup_url, prefix)


@contextlib.contextmanager
def redis_store(tmp_path: Path) -> Iterator[RedisStore]:
    url = shared_redis_url()
    with _store(url, url) as store:
        yield store


@contextlib.contextmanager
def redis_cluster_store(tmp_path: Path) -> Iterator[RedisStore]:
    url = SHARED.cluster()
    with _store(url, url) as store:
        yield store


@contextlib.contextmanager
def redis_sentinel_store(tmp_path: Path) -> Iterator[RedisStore]:
    url = SHARED.sentinel()
    with _store(url, SHARED.sentinel_master_url()) as store:
        yield store


FACTORIES = {
    "redis": redis_store,
    "redis-cluster": redis_cluster_store,
    "redis-sentinel": redis_sentinel_store,
}
