"""PostgresStore: sessions in one PostgreSQL table, shared by every node of an app.

Why it looks the way it does:

- **One statement per store call.** Loading is one ``SELECT``; a commit's delta is one
  ``UPDATE`` on a ``jsonb`` column, ``data = (data - removed) || changed``, with the metadata
  columns in the same statement, so two requests that change different keys never lose each
  other's work and a revoked session is never resurrected (``WHERE key = ...`` matches
  nothing). Connections run in autocommit: a statement is its own transaction, with no
  ``BEGIN``/``COMMIT`` round trips around it. psycopg prepares a statement on a connection
  once it has run a few times, so steady traffic skips parsing and planning (``sql.py``).
- **Written once, driven twice.** Each operation is a generator of SQL calls, run by the
  core drivers (``coatcheck.core.steps``) on a sync pool connection or an async one, so
  the sync and async paths cannot drift apart (``store.py``).
- **A bounded time, always, and recovering without a restart** (``pool.py``): every wait
  has a limit and every failure becomes ``StoreUnavailable`` (503 at the edge); connections
  a restarted server dropped are noticed at checkout without a round trip and replaced.
- **Several nodes at once.** Migrations run under a transaction-scoped advisory lock
  (``migrations.py``); ``purge_expired`` deletes batches chosen with ``FOR UPDATE SKIP
  LOCKED``, each batch its own transaction, so concurrent sweepers never delete a row twice,
  never wait for each other and cannot deadlock.

Limits of ``jsonb`` (documented, not hidden): strings may not contain U+0000 (refused as
SessionDataError, naming the key), and numbers are kept as exact decimals, so a float
written with an exponent (``1e20``) reads back as an equal ``int``.

This package may import errors, core, stores.base, psycopg and psycopg_pool; this module
only re-exports the names ``coatcheck.stores.postgres`` has always offered (the scheme
registry imports ``from_url`` from here).
"""

from __future__ import annotations

from coatcheck.stores.postgres.migrations import MIGRATION_LOCK, MIGRATIONS, SCHEMA_VERSION
from coatcheck.stores.postgres.sql import COLUMNS, DEFAULT_TABLE, VERSION_TABLE
from coatcheck.stores.postgres.store import PostgresStore
from coatcheck.stores.postgres.url import from_url

_COLUMNS = COLUMNS
"""The old private name, still read by bench/scale_stores.py."""

__all__ = [
    "DEFAULT_TABLE",
    "MIGRATIONS",
    "MIGRATION_LOCK",
    "SCHEMA_VERSION",
    "VERSION_TABLE",
    "PostgresStore",
    "from_url",
]
