"""PostgresStore against the shared server (127.0.0.1:5432, database ``test``), each test
in a table of its own that is dropped afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from coatcheck.stores.postgres import PostgresStore, from_url
from tests.support.postgres_server import scratch_table, store_url


@contextlib.contextmanager
def postgres_store(tmp_path: Path) -> Iterator[PostgresStore]:
    with scratch_table() as table:
        # A fixed-size pool, filled before the first operation: it never grows, so no
        # connection attempt is in flight when the test's event loop shuts down (the
        # suite cannot ``await store.close()`` on that loop; psycopg_pool's tasks must
        # not be left mid-connect). Four connections let the fifty concurrent patches
        # contend for the same row.
        store = from_url(store_url(table, pool_min=4, pool_max=4))
        try:
            yield store
        finally:
            store.close_sync()


FACTORIES = {"postgres": postgres_store}
