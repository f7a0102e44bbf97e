"""MemcachedStore against a private memcached started for this test process.

Every test gets a fresh key prefix, so the shared server needs no flushing between tests
and a leftover item of one test can never satisfy another's assertion.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from coatcheck.stores.memcached import MemcachedStore, from_url
from tests.support.memcached_server import fresh_prefix, shared_memcached


@contextlib.contextmanager
def memcached_store(tmp_path: Path) -> Iterator[MemcachedStore]:
    server = shared_memcached()
    store = from_url(f"{server.url}?prefix={fresh_prefix()}&timeout=2&connect_timeout=2")
    try:
        yield store
    finally:
        store.close_sync()


FACTORIES = {"memcached": memcached_store}
